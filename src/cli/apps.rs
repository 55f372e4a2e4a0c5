//! `tenure app …` and `tenure role …`: apps (DreamFactory's API keys) and roles, for the
//! operator. The rules are the session service's (`session/apps.rs`); this only prints.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::http::session::df_datetime;
use crate::session::{AdminGrant, SessionError};

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Create an app and print its API key (shown once here; administrators can read it in
    /// `GET /api/v2/system/app`).
    Create {
        #[arg(long)]
        name: String,
        /// The app's default role, by name.
        #[arg(long)]
        role: Option<String>,
    },
    /// List the apps (without their keys).
    List,
    /// Deactivate an app: its key is refused and its sessions end at once.
    Deactivate { name: String },
    /// Activate an app again.
    Activate { name: String },
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role.
    Create {
        #[arg(long)]
        name: String,
    },
}

pub async fn app_command(command: AppCommand, config: Config) -> anyhow::Result<()> {
    let state = crate::build_state(&config, Arc::new(SystemClock))
        .await
        .context("cannot open the database")?;
    let service = &state.service;
    match command {
        AppCommand::Create { name, role } => {
            let app = service
                .operator_create_app(&name, role.as_deref())
                .await
                .map_err(explain)?;
            println!("created app {} {:?}", app.id, app.name);
            println!("api key: {}", app.api_key);
        }
        AppCommand::List => {
            let grant = AdminGrant::operator();
            let roles: std::collections::HashMap<i64, String> = service
                .list_roles(&grant)
                .await?
                .into_iter()
                .map(|r| (r.id, r.name))
                .collect();
            println!(
                "{:<6}  {:<28}  {:<6}  {:<20}  {:<19}  url",
                "id", "name", "active", "role", "created"
            );
            for app in service.list_apps(&grant).await? {
                let role = app
                    .role_id
                    .map(|id| roles.get(&id).cloned().unwrap_or_else(|| id.to_string()))
                    .unwrap_or_default();
                println!(
                    "{:<6}  {:<28}  {:<6}  {:<20}  {:<19}  {}",
                    app.id,
                    app.name,
                    app.is_active,
                    role,
                    df_datetime(app.created_at),
                    app.url.unwrap_or_default()
                );
            }
        }
        AppCommand::Deactivate { name } => {
            service
                .operator_set_app_active(&name, false)
                .await
                .map_err(|e| not_found(e, &name))?;
            println!("deactivated app {name:?}: its key is refused and its sessions ended");
        }
        AppCommand::Activate { name } => {
            service
                .operator_set_app_active(&name, true)
                .await
                .map_err(|e| not_found(e, &name))?;
            println!("activated app {name:?}");
        }
    }
    Ok(())
}

pub async fn role_command(command: RoleCommand, config: Config) -> anyhow::Result<()> {
    let state = crate::build_state(&config, Arc::new(SystemClock))
        .await
        .context("cannot open the database")?;
    match command {
        RoleCommand::Create { name } => {
            let role = state
                .service
                .operator_create_role(&name)
                .await
                .map_err(explain)?;
            println!("created role {} {:?}", role.id, role.name);
        }
    }
    Ok(())
}

/// A validation error as one line naming each problem.
fn explain(err: SessionError) -> anyhow::Error {
    match err {
        SessionError::Validation(fields) => {
            let problems: Vec<String> = fields
                .into_iter()
                .flat_map(|(field, messages)| {
                    messages.into_iter().map(move |m| format!("{field}: {m}"))
                })
                .collect();
            anyhow::anyhow!("{}", problems.join("; "))
        }
        other => other.into(),
    }
}

fn not_found(err: SessionError, name: &str) -> anyhow::Error {
    match err {
        SessionError::AppNotFound(_) => anyhow::anyhow!("no app named {name:?}"),
        other => explain(other),
    }
}
