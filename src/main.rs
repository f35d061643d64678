//! The `linkbot` binary: parse the command line, then hand over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = linkbot::cli::Cli::parse();
    linkbot::telemetry::init(
        linkbot::config::log_format_is_json(),
        &linkbot::config::log_filter(),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("linkbot: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(linkbot::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // One line for the person, the chain for whoever digs (in the log).
            tracing::debug!(error = ?e, "command failed");
            eprintln!("linkbot: {e:#}");
            ExitCode::from(1)
        }
    }
}
