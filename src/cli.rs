//! The `tenure` command line: serve (the default), migrate, and user administration.

mod apps;

use std::io::BufRead;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::http::session::df_datetime;
use crate::session::{AdminGrant, RegisterRequest, SessionError};
use crate::store;

#[derive(Debug, Parser)]
#[command(
    name = "tenure",
    // `tenure --version`: the crate version and the git revision it was built from.
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("TENURE_GIT_REVISION"), ")"),
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
    /// Print the OpenAPI 3.1 document (as served at /api/v2/openapi.json).
    Openapi,
    /// Validate the configuration and print it, secrets masked (no database access).
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// List and revoke sessions.
    Session {
        #[command(subcommand)]
        command: SessionCommand,
    },
    /// Inspect and rotate signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage apps (DreamFactory's API keys).
    App {
        #[command(subcommand)]
        command: apps::AppCommand,
    },
    /// Manage roles.
    Role {
        #[command(subcommand)]
        command: apps::RoleCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show every key with its state (next / current / retiring / retired) and dates.
    List,
    /// Schedule a new key: published now, signing after JWKS_CACHE_TTL.
    Rotate,
}

#[derive(Debug, Subcommand)]
pub enum SessionCommand {
    /// List live sessions, newest first.
    List {
        /// Only this user's sessions.
        #[arg(long)]
        email: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Revoke one session by id, or every session of a user.
    Revoke {
        /// The session id (as `session list` shows it).
        #[arg(required_unless_present = "email", conflicts_with = "email")]
        id: Option<uuid::Uuid>,
        /// Revoke all of this user's sessions.
        #[arg(long)]
        email: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Exit 0 and print the effective settings when the configuration is valid.
    Check,
    /// Print the tenure settings equivalent to a DreamFactory .env, and what has none.
    FromDreamfactory {
        /// The DreamFactory .env file.
        path: std::path::PathBuf,
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
    /// Import users (ids and password hashes kept) from a DreamFactory, Django or tenure export.
    Import {
        /// The system that wrote FILE.
        #[arg(long, value_enum)]
        from: crate::import::Source,
        /// CSV with a header, tab-separated (mysql -B), or JSON; `-` reads standard input.
        file: std::path::PathBuf,
        /// Report what the import would do, and write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every user as JSON ({"resource": [...]}), the shape `user import` reads.
    Export {
        /// Include the password hashes.
        #[arg(long)]
        with_hashes: bool,
    },
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config).await,
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&config.public_settings())?
            );
            println!("configuration is valid");
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::FromDreamfactory { path },
        } => crate::import::config_from_dreamfactory(&path),
        Command::User {
            command:
                UserCommand::Import {
                    from,
                    file,
                    dry_run,
                    json,
                },
        } => crate::import::import(&config, from, &file, dry_run, json).await,
        Command::User {
            command: UserCommand::Export { with_hashes },
        } => crate::import::export(&config, with_hashes).await,
        Command::Openapi => {
            println!("{}", crate::http::openapi::document());
            Ok(())
        }
        Command::Migrate => {
            let store = store::connect(
                config.database_url.expose_secret(),
                config.database_acquire_timeout,
            )
            .await
            .context("cannot open the database")?;
            store.migrate().await.context("migration failed")?;
            println!("migrations applied ({})", store.backend());
            Ok(())
        }
        Command::Session { command } => session_command(command, config).await,
        Command::Keys { command } => keys_command(command, config).await,
        Command::App { command } => apps::app_command(command, config).await,
        Command::Role { command } => apps::role_command(command, config).await,
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

async fn session_command(command: SessionCommand, config: Config) -> anyhow::Result<()> {
    let state = crate::build_state(&config, Arc::new(SystemClock))
        .await
        .context("cannot open the database")?;
    let service = &state.service;
    let grant = AdminGrant::operator();
    let user_id = |email: Option<String>| async {
        match email {
            None => Ok(None),
            Some(email) => match service.find_user(&email).await? {
                Some(user) => Ok(Some(user.id)),
                None => bail!("no user with email {email}"),
            },
        }
    };
    match command {
        SessionCommand::List { email, limit } => {
            let user_id = user_id(email).await?;
            let page = service
                .admin_list_sessions(&grant, user_id, None, None, limit)
                .await?;
            println!(
                "{:<36}  {:<28}  {:<7}  {:<19}  {:<19}  device",
                "id", "email", "forever", "created", "last seen"
            );
            for view in page.sessions {
                let s = view.session;
                println!(
                    "{:<36}  {:<28}  {:<7}  {:<19}  {:<19}  {}",
                    s.id,
                    view.user.email,
                    s.forever,
                    df_datetime(s.created_at),
                    df_datetime(s.last_seen_at),
                    s.device.unwrap_or_default()
                );
            }
            if page.next.is_some() {
                println!("(more sessions exist; raise --limit)");
            }
            Ok(())
        }
        SessionCommand::Revoke { id: Some(id), .. } => {
            service.admin_revoke_session(&grant, id).await?;
            println!("revoked session {id}");
            Ok(())
        }
        SessionCommand::Revoke { id: None, email } => {
            let Some(user_id) = user_id(email).await? else {
                bail!("name a session id or --email");
            };
            let ended = service.admin_revoke_user_sessions(&grant, user_id).await?;
            println!("revoked {ended} session(s)");
            Ok(())
        }
    }
}

async fn keys_command(command: KeysCommand, config: Config) -> anyhow::Result<()> {
    let state = crate::build_state(&config, Arc::new(SystemClock))
        .await
        .context("cannot load the signing keys")?;
    let keys = state.service.keys();
    let now = state.service.now();
    if let KeysCommand::Rotate = command {
        let kid = keys.rotate(now).await?;
        println!(
            "new key {kid}: published now, signs from {} (after JWKS_CACHE_TTL)",
            df_datetime(now + keys.jwks_cache_ttl())
        );
    }
    println!(
        "{:<20}  {:<6}  {:<8}  {:<19}  {:<19}  {:<19}  unpublished",
        "kid", "alg", "state", "created", "signs from", "replaced"
    );
    let date = |t: Option<i64>| t.map(df_datetime).unwrap_or_else(|| "-".into());
    for key in keys.statuses(now) {
        println!(
            "{:<20}  {:<6}  {:<8}  {:<19}  {:<19}  {:<19}  {}",
            key.kid,
            key.algorithm,
            key.state.as_str(),
            df_datetime(key.created_at),
            df_datetime(key.activates_at),
            date(key.replaced_at),
            date(key.unpublished_at),
        );
    }
    Ok(())
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let state = crate::build_state(&config, Arc::new(SystemClock))
        .await
        .context("cannot start")?;
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
