//! The `tenure` command line: serve (the default), migrate, and user administration.
//!
//! Exit status: 0 done; 1 failed (database unreachable, invalid configuration, anything
//! unexpected); 2 invalid usage or input (clap's own code for bad arguments, and input the
//! service refuses, such as a too-short password); 3 no user with the given email.

mod apps;

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::http::session::df_datetime;
use crate::session::{AdminGrant, RegisterRequest, SessionError};
use crate::store::{self, UserSummary};
use crate::AppState;

/// `tenure --version`: the package version and the git revision it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TENURE_GIT_REVISION"),
    ")"
);

/// What a server with no user logs at start: one line an operator can act on.
pub const NO_USER_HINT: &str = "no user exists yet; create the first administrator with: \
     tenure user create --email <email> --password-stdin --admin (the password is read from \
     standard input)";

#[derive(Debug, Parser)]
#[command(
    name = "tenure",
    version = VERSION,
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
    /// List users: id, email, name, admin, active, live sessions, dates.
    List {
        /// Only the user with this email (exit status 3 when there is none).
        #[arg(long)]
        email: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password, read from standard input (one line), and end all of their
    /// sessions.
    SetPassword {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required: passwords never go in arguments).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Refuse the user's logins and end all of their sessions.
    Deactivate {
        #[arg(long)]
        email: String,
    },
    /// Allow a deactivated user to log in again.
    Activate {
        #[arg(long)]
        email: String,
    },
    /// Delete a user and all of their sessions.
    Delete {
        #[arg(long)]
        email: String,
    },
}

/// Failures with an exit status of their own (see the module's documentation); every other
/// error exits with 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Input the service refused: exit 2, as clap's usage errors.
    #[error("{0}")]
    Invalid(String),
    /// Exit 3.
    #[error("no user with email {0} (see `tenure user list`)")]
    NoSuchUser(String),
}

/// The exit status for an error [`run`] answered.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    match err.downcast_ref::<CliError>() {
        Some(CliError::Invalid(_)) => ExitCode::from(2),
        Some(CliError::NoSuchUser(_)) => ExitCode::from(3),
        None => ExitCode::FAILURE,
    }
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
        Command::Openapi => {
            println!("{}", crate::http::openapi::document());
            Ok(())
        }
        Command::Migrate => {
            let store = store::connect(
                config.database_url.expose_secret(),
                config.database_acquire_timeout,
                config.sqlite_synchronous,
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
        Command::User { command } => user_command(command, config).await,
    }
}

async fn user_command(command: UserCommand, config: Config) -> anyhow::Result<()> {
    // Moving users in and out opens the database its own way (see `import.rs`).
    let command = match command {
        UserCommand::Import {
            from,
            file,
            dry_run,
            json,
        } => return crate::import::import(&config, from, &file, dry_run, json).await,
        UserCommand::Export { with_hashes } => {
            return crate::import::export(&config, with_hashes).await
        }
        other => other,
    };
    // The password comes first: a command that cannot run never opens the database.
    let password = match &command {
        UserCommand::Create { .. } | UserCommand::SetPassword { .. } => Some(read_password()?),
        _ => None,
    };
    let state = open(&config).await?;
    let service = &state.service;
    let grant = AdminGrant::operator();
    match command {
        UserCommand::Import { .. } | UserCommand::Export { .. } => {
            unreachable!("import and export are answered before the database opens")
        }
        UserCommand::Create {
            email,
            password_stdin: _,
            admin,
            name,
            first_name,
            last_name,
            username,
        } => {
            let request = RegisterRequest {
                email: Some(email.clone()),
                username,
                password,
                password_confirmation: None,
                name,
                first_name,
                last_name,
                is_sys_admin: admin,
            };
            let user = service
                .create_user(request)
                .await
                .map_err(|e| refused("cannot create the user", &email, e))?;
            println!(
                "created user {} <{}>{}",
                user.id,
                user.email,
                if user.is_sys_admin { " (admin)" } else { "" }
            );
        }
        UserCommand::List { email, json } => {
            let users = service.list_users(&grant, email.as_deref()).await?;
            if let (Some(email), true) = (&email, users.is_empty()) {
                return Err(CliError::NoSuchUser(email.clone()).into());
            }
            if json {
                let list: Vec<_> = users.iter().map(user_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if users.is_empty() {
                println!("no users yet; create one with `tenure user create`");
            } else {
                print_table(&users);
            }
        }
        UserCommand::SetPassword { email, .. } => {
            let password = password.context("no password read")?;
            let (user, ended) = service
                .admin_set_password(&grant, &email, password)
                .await
                .map_err(|e| refused("cannot set the password", &email, e))?;
            println!(
                "password set for user {} <{}>; ended {ended} session(s)",
                user.id, user.email
            );
        }
        UserCommand::Deactivate { email } => set_active(&state, &grant, &email, false).await?,
        UserCommand::Activate { email } => set_active(&state, &grant, &email, true).await?,
        UserCommand::Delete { email } => {
            let (user, ended) = service
                .admin_delete_user(&grant, &email)
                .await
                .map_err(|e| refused("cannot delete the user", &email, e))?;
            println!(
                "deleted user {} <{}>; ended {ended} session(s)",
                user.id, user.email
            );
        }
    }
    Ok(())
}

async fn set_active(
    state: &AppState,
    grant: &AdminGrant,
    email: &str,
    active: bool,
) -> anyhow::Result<()> {
    let service = &state.service;
    let user = service
        .find_user(email)
        .await?
        .ok_or_else(|| CliError::NoSuchUser(email.to_owned()))?;
    let was_active = user.is_active;
    let user = service
        .admin_set_user_active(grant, user.id, active)
        .await
        .map_err(|e| refused("cannot change the user", email, e))?;
    let who = format!("user {} <{}>", user.id, user.email);
    match (active, was_active) {
        (false, true) => {
            println!("deactivated {who}: their logins are refused and all of their sessions ended")
        }
        (false, false) => println!("{who} was already inactive"),
        (true, false) => println!("activated {who}: they can log in again"),
        (true, true) => println!("{who} was already active"),
    }
    Ok(())
}

/// A service refusal as the CLI reports it: invalid input exits 2, an unknown user 3.
fn refused(context: &str, email: &str, err: SessionError) -> anyhow::Error {
    match err {
        SessionError::Validation(fields) => {
            let problems: Vec<String> = fields
                .into_iter()
                .flat_map(|(field, messages)| {
                    messages.into_iter().map(move |m| format!("{field}: {m}"))
                })
                .collect();
            CliError::Invalid(format!("{context}: {}", problems.join("; "))).into()
        }
        SessionError::UserNotFound => CliError::NoSuchUser(email.to_owned()).into(),
        other => anyhow::Error::new(other).context(context.to_owned()),
    }
}

/// A user as `tenure user list --json` prints it: never the password hash. Dates as
/// DreamFactory writes them (`YYYY-MM-DD HH:MM:SS`, UTC).
fn user_json(summary: &UserSummary) -> serde_json::Value {
    let user = &summary.user;
    json!({
        "id": user.id,
        "email": user.email,
        "username": user.username,
        "name": user.name,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_sys_admin": user.is_sys_admin,
        "is_active": user.is_active,
        "live_sessions": summary.live_sessions,
        "created_date": df_datetime(user.created_at),
        "last_login_date": user.last_login_at.map(df_datetime),
        "password_changed_date": df_datetime(user.password_changed_at),
    })
}

/// The users as a table whose columns fit their contents.
fn print_table(users: &[UserSummary]) {
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_owned();
    let header = [
        "id",
        "email",
        "name",
        "admin",
        "active",
        "sessions",
        "created",
        "last login",
    ];
    let rows: Vec<[String; 8]> = users
        .iter()
        .map(|s| {
            let u = &s.user;
            [
                u.id.to_string(),
                u.email.clone(),
                u.name.clone(),
                yes_no(u.is_sys_admin),
                yes_no(u.is_active),
                s.live_sessions.to_string(),
                df_datetime(u.created_at),
                u.last_login_at
                    .map(df_datetime)
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// The application state the admin commands work on (migrations applied, keys loaded).
async fn open(config: &Config) -> anyhow::Result<AppState> {
    crate::build_state(config, Arc::new(SystemClock))
        .await
        .context("cannot open the database")
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
                None => Err(anyhow::Error::from(CliError::NoSuchUser(email))),
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
    // Informational: a failed check must not stop the start.
    if let Ok(false) = state.service.has_users().await {
        tracing::warn!("{NO_USER_HINT}");
    }
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
        return Err(CliError::Invalid(
            "no password on standard input (pipe it in: echo 'secret-password' | tenure user … \
             --password-stdin)"
                .into(),
        )
        .into());
    }
    Ok(SecretString::from(password))
}
