//! The `entitywatch` binary: parses the command line, sets up telemetry and hands the command
//! to the library ([`entitywatch::cli::dispatch`]). Nothing here decides anything.

use std::process::ExitCode;

use clap::Parser;

use entitywatch::cli::{dispatch, Cli};
use entitywatch::config::Settings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::resolve(&cli.global, std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("entitywatch: {e}");
            return ExitCode::from(2);
        }
    };
    entitywatch::telemetry::init_logging(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("entitywatch: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("entitywatch: {e:#}");
            ExitCode::FAILURE
        }
    }
}
