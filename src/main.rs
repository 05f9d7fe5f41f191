//! The `entitywatch` binary: parses the command line, sets up telemetry and hands the command
//! to the library ([`entitywatch::cli::dispatch`]). Nothing here decides anything.

use std::io::Write;
use std::process::ExitCode;

use entitywatch::cli::{describe_error, dispatch, exit_status, parse_command_line};
use entitywatch::config::{LogFormat, Settings};

fn main() -> ExitCode {
    let cli = match parse_command_line() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "entitywatch: {e}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::resolve(&cli.global, std::env::vars()) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "entitywatch: {e}");
            return ExitCode::from(2);
        }
    };
    entitywatch::telemetry::init_logging(&settings);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "entitywatch: cannot start the async runtime: {e}"
            );
            return ExitCode::FAILURE;
        }
    };
    let log_format = settings.log_format;
    match runtime.block_on(dispatch(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once on stderr: the log subscriber writes there too, so an error both logged and
            // printed would read twice. A log shipper reading JSON gets it as a JSON line.
            let line = describe_error(&e);
            match log_format {
                LogFormat::Human => {
                    let _ = writeln!(std::io::stderr(), "entitywatch: {line}");
                }
                LogFormat::Json => tracing::error!(error = %line, "entitywatch failed"),
            }
            ExitCode::from(exit_status(&e))
        }
    }
}
