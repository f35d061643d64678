//! Trust: the rustls client configuration every outbound TLS connection uses.
//!
//! The roots are the platform store PLUS `SSL_CERT_FILE`, every file of `SSL_CERT_DIR` and
//! `[tls] ca_file`. rustls-native-certs alone would read `SSL_CERT_FILE`/`SSL_CERT_DIR` itself
//! and then skip the platform store; here the platform store is read from its well-known paths
//! (on Linux) and the extra sources are added on top, so a company CA never hides the public
//! ones. This module never reads the environment (the values come from
//! [`crate::config::NetEnv`]) and never weakens verification.

use super::NetError;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the trusted roots came from, for the startup log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustSummary {
    /// Roots from the platform store.
    pub platform: usize,
    /// Roots from `SSL_CERT_FILE`, `SSL_CERT_DIR` and `[tls] ca_file` together.
    pub extra: usize,
}

/// One extra source of trusted certificates.
pub(super) struct Extra<'a> {
    /// What names it for people (`SSL_CERT_FILE`, `[tls] ca_file`, …).
    pub(super) name: &'static str,
    pub(super) path: &'a Path,
    pub(super) is_dir: bool,
}

/// Builds the client configuration (ring provider, safe default protocol versions).
pub(super) fn client_config(
    extras: &[Extra<'_>],
) -> Result<(Arc<ClientConfig>, TrustSummary), NetError> {
    let mut roots = RootCertStore::empty();
    let platform = platform_roots();
    let mut seen: std::collections::HashSet<Vec<u8>> =
        platform.iter().map(|c| c.as_ref().to_vec()).collect();
    let (platform_added, _) = roots.add_parsable_certificates(platform);
    let mut extra = 0;
    for source in extras {
        let certs = load(source)?;
        let (mut usable, mut duplicates) = (0, 0);
        for cert in certs {
            // The same CA from two sources (a bundle and its directory, or SSL_CERT_FILE
            // pointing at the platform bundle) is trusted once.
            if !seen.insert(cert.as_ref().to_vec()) {
                duplicates += 1;
                continue;
            }
            let (added, _) = roots.add_parsable_certificates([cert]);
            usable += added;
        }
        if usable == 0 && duplicates == 0 && !source.is_dir {
            return Err(NetError::CaFile {
                name: source.name,
                path: source.path.to_path_buf(),
                reason: "holds no usable CA certificate (PEM `BEGIN CERTIFICATE` blocks)".into(),
            });
        }
        extra += usable;
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(NetError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok((
        Arc::new(config),
        TrustSummary {
            platform: platform_added,
            extra,
        },
    ))
}

fn load(source: &Extra<'_>) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let err = |reason: String| NetError::CaFile {
        name: source.name,
        path: source.path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(source.path).map_err(|e| err(format!("cannot be read ({e})")))?;
    if source.is_dir != meta.is_dir() {
        return Err(err(if source.is_dir {
            "is not a directory".into()
        } else {
            "is not a file".into()
        }));
    }
    let result = if source.is_dir {
        rustls_native_certs::load_certs_from_paths(None, Some(source.path))
    } else {
        rustls_native_certs::load_certs_from_paths(Some(source.path), None)
    };
    if let Some(first) = result.errors.first() {
        return Err(err(format!("cannot be read ({first})")));
    }
    if result.certs.is_empty() && !source.is_dir {
        return Err(err(
            "holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks)".into(),
        ));
    }
    Ok(result.certs)
}

/// The platform's own roots, whatever `SSL_CERT_FILE`/`SSL_CERT_DIR` say.
#[cfg(all(unix, not(target_os = "macos")))]
fn platform_roots() -> Vec<CertificateDer<'static>> {
    // The bundle files openssl-probe knows for Linux and the BSDs (its list is private).
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/tls/cacert.pem",
        "/etc/ssl/cert.pem",
        "/opt/etc/ssl/certs/ca-certificates.crt",
        "/usr/local/etc/ssl/cert.pem",
    ];
    let mut certs = Vec::new();
    let bundle: Option<PathBuf> = BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file());
    if let Some(file) = bundle {
        let r = rustls_native_certs::load_certs_from_paths(Some(&file), None);
        for e in &r.errors {
            tracing::warn!(error = %e, "skipping part of the platform CA bundle");
        }
        certs.extend(r.certs);
    }
    for dir in openssl_probe::candidate_cert_dirs() {
        let r = rustls_native_certs::load_certs_from_paths(None, Some(dir));
        for e in &r.errors {
            tracing::debug!(error = %e, "skipping a file of the platform CA directory");
        }
        certs.extend(r.certs);
    }
    certs.sort_unstable_by(|a, b| a.as_ref().cmp(b.as_ref()));
    certs.dedup();
    certs
}

/// The platform's own roots (macOS keychain, Windows store). rustls-native-certs reads these
/// only when `SSL_CERT_FILE`/`SSL_CERT_DIR` are unset in the process; the extra sources are
/// added on top either way.
#[cfg(not(all(unix, not(target_os = "macos"))))]
fn platform_roots() -> Vec<CertificateDer<'static>> {
    let r = rustls_native_certs::load_native_certs();
    for e in &r.errors {
        tracing::warn!(error = %e, "skipping part of the platform trust store");
    }
    r.certs
}

/// The sentence for a rustls error on a connection to `host`, with the fix.
pub(super) fn describe(err: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => format!(
            "the certificate of {host} is not trusted (UnknownIssuer): add its CA with SSL_CERT_FILE or [tls] ca_file"
        ),
        rustls::Error::InvalidCertificate(c) => {
            let debug = format!("{c:?}");
            let name = short_name(&debug);
            format!(
                "the certificate of {host} is not valid ({name}): it must be current and issued for {host} by a CA in the platform store, SSL_CERT_FILE or [tls] ca_file"
            )
        }
        other => format!("the TLS handshake with {host} failed ({other})"),
    }
}

/// `NotValidForNameContext { … }` → `NotValidForNameContext`.
fn short_name(debug: &str) -> &str {
    debug
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .next()
        .unwrap_or(debug)
}
