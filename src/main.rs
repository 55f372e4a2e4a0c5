//! The `tenure` binary: read `.env`, parse the command line and configuration, install
//! logging, hand over to the library. Errors print as one line; the exit status says which
//! kind of failure it was (`cli::exit_code`).

use std::process::ExitCode;

use clap::Parser;

use tenure::cli::{self, Cli};
use tenure::config::Config;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing .env is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    tenure::telemetry::init(config.log_format);
    match cli::run(cli, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // `{:#}` prints the whole chain of causes on one line.
            eprintln!("error: {err:#}");
            cli::exit_code(&err)
        }
    }
}
