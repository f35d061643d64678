//! Logging setup: `tracing` to stderr, as text or (with `LINKBOT_LOG_FORMAT=json`) JSON lines.
//!
//! Called once by `main`. Nothing here reads secrets; callers never log them (they are
//! [`crate::secret::Secret`], whose `Debug`/`Display` redact). Log lines carry the spans they
//! are in (an envelope's id and type, a check's location, environment, id and build), so log
//! calls do not repeat those fields.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(json: bool, filter: &str) {
    if json {
        let _ = json_subscriber(filter, std::io::stderr).try_init();
    } else {
        let _ = fmt()
            .with_env_filter(env_filter(filter))
            .with_writer(std::io::stderr)
            .with_target(false)
            .compact()
            .try_init();
    }
}

/// The JSON lines [`init`] writes, to `writer`: one object per event, its fields flattened
/// into it, and `spans`, the spans it is in (outermost first), each with its fields.
pub fn json_subscriber<W>(filter: &str, writer: W) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fmt()
        .with_env_filter(env_filter(filter))
        .with_writer(writer)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .finish()
}

fn env_filter(filter: &str) -> EnvFilter {
    EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"))
}
