//! The `tenure` binary: read `.env`, parse the command line and configuration, install
//! logging, hand over to the library.

use clap::Parser;

use tenure::cli::{self, Cli};
use tenure::config::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is normal; the environment alone is enough.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let config = Config::from_env()?;
    tenure::telemetry::init(config.log_format);
    cli::run(cli, config).await
}
