//! The `tenure` command line: serve (the default), migrate, and user administration.

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::session::{RegisterRequest, SessionError};
use crate::store;

#[derive(Debug, Parser)]
#[command(
    name = "tenure",
    version,
    about = "Forever sessions over the DreamFactory session API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user a system administrator.
        #[arg(long)]
        admin: bool,
        /// Display name (defaults to first and last name, else the email's local part).
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        /// Needed when DF_LOGIN_ATTRIBUTE=username.
        #[arg(long)]
        username: Option<String>,
    },
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            use secrecy::ExposeSecret;
            let store = store::connect(config.database_url.expose_secret())
                .await
                .context("cannot open the database")?;
            store.migrate().await.context("migration failed")?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    email,
                    password_stdin: _,
                    admin,
                    name,
                    first_name,
                    last_name,
                    username,
                },
        } => {
            let password = read_password()?;
            let state = crate::build_state(&config, Arc::new(SystemClock))
                .await
                .context("cannot open the database")?;
            let request = RegisterRequest {
                email: Some(email),
                username,
                password: Some(password),
                password_confirmation: None,
                name,
                first_name,
                last_name,
                is_sys_admin: admin,
            };
            match state.service.create_user(request).await {
                Ok(user) => {
                    println!(
                        "created user {} <{}>{}",
                        user.id,
                        user.email,
                        if user.is_sys_admin { " (admin)" } else { "" }
                    );
                    Ok(())
                }
                Err(SessionError::Validation(fields)) => {
                    let problems: Vec<String> = fields
                        .into_iter()
                        .flat_map(|(field, messages)| {
                            messages.into_iter().map(move |m| format!("{field}: {m}"))
                        })
                        .collect();
                    bail!("cannot create the user: {}", problems.join("; "))
                }
                Err(other) => Err(other.into()),
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let state = crate::build_state(&config, Arc::new(SystemClock))
        .await
        .context("cannot open the database")?;
    let listener = tokio::net::TcpListener::bind(config.listen_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen_addr))?;
    tracing::info!(
        addr = %listener.local_addr()?,
        database = config.database_kind(),
        forever_sessions = config.allow_forever_sessions,
        "tenure listening"
    );
    crate::serve(listener, state, crate::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// One line from standard input, without its line ending.
fn read_password() -> anyhow::Result<SecretString> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (try: echo 'secret-password' | tenure user create --email … --password-stdin)");
    }
    Ok(SecretString::from(password))
}
