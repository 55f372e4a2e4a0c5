//! The command line of moving in and out: `tenure user import`, `tenure user export` and
//! `tenure config from-dreamfactory`. These are `cli.rs`'s subcommands kept apart, and like it
//! they report with `anyhow`. Reading a file is here (`import/read.rs`); what an import may do
//! is the session service's (`session/import.rs`).

mod dreamfactory_env;
mod read;

use std::io::{Read as _, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Map, Value};

use crate::clock::SystemClock;
use crate::config::Config;
use crate::http::session::df_datetime;
use crate::session::ImportReport;
pub use read::{timestamp, Source};

/// `tenure user import --from SOURCE FILE [--dry-run] [--json]`.
pub async fn import(
    config: &Config,
    from: Source,
    file: &Path,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    let text = if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let read =
        read::read(from, &text).with_context(|| format!("cannot import {}", file.display()))?;
    let state = crate::build_state(config, Arc::new(SystemClock))
        .await
        .context("cannot open the database")?;
    let format = read.format;
    let report = state
        .service
        .import_users(read.rows, read.refused, dry_run)
        .await
        .context("the import failed and wrote nothing")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_report(&report, format));
    }
    Ok(())
}

/// The report as a person reads it.
fn render_report(report: &ImportReport, format: &str) -> String {
    let mut text = String::new();
    if report.dry_run {
        text.push_str("dry run: nothing was written\n");
    }
    text.push_str(&format!("read as {format}\n"));
    text.push_str(&format!("created:   {}\n", report.created));
    text.push_str(&format!("updated:   {}\n", report.updated));
    text.push_str(&format!("unchanged: {}\n", report.unchanged));
    text.push_str(&format!("refused:   {}\n", report.refused.len()));
    for r in &report.refused {
        let who = match (r.id, &r.email) {
            (Some(id), Some(email)) => format!(" (id {id}, {email})"),
            (Some(id), None) => format!(" (id {id})"),
            (None, Some(email)) => format!(" ({email})"),
            (None, None) => String::new(),
        };
        text.push_str(&format!("  record {}{who}: {}\n", r.record, r.reason));
    }
    if !report.login_disabled.is_empty() {
        text.push_str(&format!(
            "login disabled until a password is set: {}\n",
            report.login_disabled.len()
        ));
        for d in &report.login_disabled {
            text.push_str(&format!("  user {} <{}>: {}\n", d.id, d.email, d.reason));
        }
    }
    text
}

/// `tenure user export [--with-hashes]`: every user as `{"resource": […]}`, the shape
/// `tenure user import --from tenure` (or `--from dreamfactory`) reads.
pub async fn export(config: &Config, with_hashes: bool) -> anyhow::Result<()> {
    let state = crate::build_state(config, Arc::new(SystemClock))
        .await
        .context("cannot open the database")?;
    let users = state.service.export_users().await?;
    let resource: Vec<Value> = users
        .into_iter()
        .map(|u| {
            let mut user = Map::new();
            user.insert("id".into(), json!(u.id));
            user.insert("name".into(), json!(u.name));
            user.insert("first_name".into(), json!(u.first_name));
            user.insert("last_name".into(), json!(u.last_name));
            user.insert("email".into(), json!(u.email));
            user.insert("username".into(), json!(u.username));
            user.insert("is_active".into(), json!(u.is_active));
            user.insert("is_sys_admin".into(), json!(u.is_sys_admin));
            user.insert("created_date".into(), json!(df_datetime(u.created_at)));
            user.insert(
                "last_login_date".into(),
                json!(u.last_login_at.map(df_datetime)),
            );
            if with_hashes {
                user.insert("password".into(), json!(u.password_hash));
            }
            Value::Object(user)
        })
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, &json!({ "resource": resource }))?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// `tenure config from-dreamfactory PATH/.env`: prints the equivalent tenure settings.
pub fn config_from_dreamfactory(path: &Path) -> anyhow::Result<()> {
    let entries = dotenvy::from_path_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<(String, String)>, _>>()
        .with_context(|| format!("cannot parse {}", path.display()))?;
    let mut translation = dreamfactory_env::translate(&entries);
    // What is printed must start tenure: each value passes tenure's own checks, or is left out
    // with a note (DreamFactory takes DF_JWT_REFRESH_TTL=0, for one; tenure needs a window).
    let mut notes = Vec::new();
    translation.settings.retain(|(name, value)| {
        match Config::from_lookup(|wanted| (wanted == name).then(|| value.clone())) {
            Ok(_) => true,
            Err(err) => {
                notes.push(format!(
                    "{name} is left out, tenure's default applies: {err}"
                ));
                false
            }
        }
    });
    translation.notes.splice(0..0, notes);
    print!(
        "{}",
        dreamfactory_env::render(&path.display().to_string(), &translation)
    );
    Ok(())
}
