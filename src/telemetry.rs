//! Logging setup: `tracing` to stderr, as text or (with `LINKBOT_LOG_FORMAT=json`) JSON lines.
//!
//! Called once by `main`. Nothing here reads secrets; callers never log them (they are
//! [`crate::secret::Secret`], whose `Debug`/`Display` redact).

use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Safe to call more than once (later calls do nothing).
pub fn init(json: bool, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.with_target(false).compact().try_init()
    };
}
