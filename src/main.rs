//! The `linkbot` binary: parse the command line, set up logging, then hand over to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = linkbot::cli::Cli::parse();
    // The demo prints transcripts on stdout; its logs stay quiet unless RUST_LOG asks.
    let default_filter = match cli.command {
        linkbot::cli::Command::Demo => "warn",
        _ => "info,sqlx=warn,hyper=warn,reqwest=warn",
    };
    linkbot::telemetry::init(
        linkbot::config::log_format_is_json(),
        &linkbot::config::log_filter(default_filter),
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
            // One line for the person; the full chain goes to the log at debug level.
            tracing::debug!(error = ?e, "command failed");
            eprintln!("linkbot: {e:#}");
            ExitCode::from(1)
        }
    }
}
