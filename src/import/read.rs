//! Reading an export: the format from the content (JSON, CSV, or tab-separated as `mysql -B`
//! prints), the columns from the source (DreamFactory's `user` table and `system/user` API,
//! Django's `auth_user` table and `dumpdata`, or a tenure export, which has DreamFactory's
//! shape). Nothing is checked here but what a value is (an integer id, a boolean): the rules
//! are the session service's.

use std::collections::HashMap;

use serde_json::Value;

use crate::clock::UnixTime;
use crate::session::{ImportRow, Refusal};

/// Which system wrote the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// DreamFactory's `user` table (CSV, TSV) or `GET /api/v2/system/user` (`{"resource":[…]}`).
    Dreamfactory,
    /// Django's `auth_user` table (CSV, TSV) or `manage.py dumpdata auth.user` (JSON).
    Django,
    /// `tenure user export` (DreamFactory's JSON shape).
    Tenure,
}

/// The rows read, and the records refused while reading.
#[derive(Debug, Default)]
pub struct Read {
    pub format: &'static str,
    pub rows: Vec<ImportRow>,
    pub refused: Vec<Refusal>,
}

/// A file that cannot be read as an export at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not valid CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("{0}")]
    Shape(String),
}

/// One record: column name → value (`None` for NULL or empty).
type Record = HashMap<String, Option<String>>;

/// The format's name, and each record or why it is not one.
type Records = (&'static str, Vec<Result<Record, String>>);

/// Reads `text`, an export of `source`.
pub fn read(source: Source, text: &str) -> Result<Read, ReadError> {
    let text = text.trim_start_matches('\u{feff}');
    let (format, records) = match text.trim_start().chars().next() {
        Some('{' | '[') => json_records(text)?,
        Some(_) => delimited_records(text)?,
        None => return Err(ReadError::Shape("the file is empty".into())),
    };
    let mut read = Read {
        format,
        ..Read::default()
    };
    for (index, record) in records.into_iter().enumerate() {
        match record.and_then(|r| to_row(source, index + 1, &r)) {
            Ok(row) => read.rows.push(row),
            Err(reason) => read.refused.push(Refusal {
                record: index + 1,
                id: None,
                email: None,
                reason,
            }),
        }
    }
    Ok(read)
}

/// JSON: `{"resource": […]}` (DreamFactory, tenure), a list of `dumpdata` objects
/// (`{"model", "pk", "fields"}`), or a plain list of user objects.
fn json_records(text: &str) -> Result<Records, ReadError> {
    let value: Value = serde_json::from_str(text)?;
    let (format, items) = match value {
        Value::Object(mut object) => match object.remove("resource") {
            Some(Value::Array(items)) => ("JSON {\"resource\": […]}", items),
            _ => {
                return Err(ReadError::Shape(
                    "a JSON object must hold the users in \"resource\": […]".into(),
                ))
            }
        },
        Value::Array(items) => {
            let dumpdata = items.first().is_some_and(|i| i.get("fields").is_some());
            let format = if dumpdata {
                "JSON dumpdata"
            } else {
                "JSON list"
            };
            (format, items)
        }
        _ => return Err(ReadError::Shape("expected a JSON object or list".into())),
    };
    let records = items.into_iter().map(json_record).collect();
    Ok((format, records))
}

fn json_record(item: Value) -> Result<Record, String> {
    let Value::Object(mut object) = item else {
        return Err("not a JSON object".into());
    };
    // dumpdata: {"model": "auth.user", "pk": 1, "fields": {…}}
    if let Some(fields) = object.remove("fields") {
        let model = object
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !model.to_ascii_lowercase().ends_with("user") {
            return Err(format!("not a user record (model {model:?})"));
        }
        let Value::Object(fields) = fields else {
            return Err("\"fields\" is not an object".into());
        };
        let pk = object.remove("pk");
        object = fields;
        if let Some(pk) = pk {
            object.entry("id").or_insert(pk);
        }
    }
    Ok(object
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                Value::Null => None,
                Value::String(s) => Some(s),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                other => Some(other.to_string()),
            };
            (key, text.filter(|t| !t.is_empty()))
        })
        .collect())
}

/// CSV with a header (`psql \copy … CSV HEADER`, `sqlite3 -csv -header`, a spreadsheet), or
/// tab-separated when the header has tabs and no commas (`mysql -B`, whose `NULL` is a null
/// and whose `\t`, `\n`, `\\` are escapes).
fn delimited_records(text: &str) -> Result<Records, ReadError> {
    let header = text.lines().next().unwrap_or_default();
    let tabs = header.contains('\t') && !header.contains(',');
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(if tabs { b'\t' } else { b',' })
        .quoting(!tabs)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let mut records = Vec::new();
    for record in reader.records() {
        let record = record?;
        if record.len() != headers.len() {
            records.push(Err(format!(
                "{} fields where the header has {}",
                record.len(),
                headers.len()
            )));
            continue;
        }
        let fields = headers
            .iter()
            .zip(record.iter())
            .map(|(name, value)| {
                let value = if tabs {
                    (value != "NULL").then(|| unescape_mysql(value))
                } else {
                    Some(value.to_owned())
                };
                (name.clone(), value.filter(|v| !v.is_empty()))
            })
            .collect();
        records.push(Ok(fields));
    }
    let format = if tabs { "tab-separated" } else { "CSV" };
    Ok((format, records))
}

/// `mysql -B` writes a tab, a newline and a backslash inside a value as `\t`, `\n`, `\\`.
fn unescape_mysql(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The row a record stands for, by the source's column names.
fn to_row(source: Source, record: usize, r: &Record) -> Result<ImportRow, String> {
    let text = |name: &str| r.get(name).cloned().flatten();
    let first = |names: &[&str]| names.iter().find_map(|n| text(n));
    let id = match first(&["id", "pk"]) {
        None => None,
        Some(id) => Some(
            id.trim()
                .parse::<i64>()
                .map_err(|_| format!("the id {id:?} is not an integer"))?,
        ),
    };
    let flag = |name: &str, default: bool| -> Result<bool, String> {
        match text(name) {
            None => Ok(default),
            Some(v) => boolean(&v).ok_or_else(|| format!("{name} {v:?} is not a boolean")),
        }
    };
    let (admin, created, last_login) = match source {
        Source::Dreamfactory | Source::Tenure => {
            ("is_sys_admin", "created_date", "last_login_date")
        }
        Source::Django => ("is_superuser", "date_joined", "last_login"),
    };
    Ok(ImportRow {
        record,
        id,
        email: text("email"),
        username: text("username"),
        password: text("password"),
        name: match source {
            Source::Django => None,
            _ => text("name"),
        },
        first_name: text("first_name"),
        last_name: text("last_name"),
        is_active: flag("is_active", true)?,
        is_sys_admin: flag(admin, false)?,
        created_at: text(created).as_deref().and_then(timestamp),
        last_login_at: text(last_login).as_deref().and_then(timestamp),
    })
}

/// PHP's, PostgreSQL's, MySQL's and Python's ways of writing a boolean.
fn boolean(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

/// `2024-05-01 12:30:00` (DreamFactory, UTC), `2024-05-01T12:30:00.123456Z` (dumpdata),
/// `2024-05-01 12:30:00.123456+02` (psql); answers Unix seconds, or `None` when it is none of
/// those (the time is then the import's).
pub fn timestamp(value: &str) -> Option<UnixTime> {
    let value = value.trim();
    let (date, rest) = value.split_at_checked(10)?;
    let mut parts = date.split('-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u8 = parts.next()?.parse().ok()?;
    let day: u8 = parts.next()?.parse().ok()?;
    let date =
        time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
    let rest = rest.strip_prefix([' ', 'T']).unwrap_or(rest);
    let (clock, zone) = match rest.find(['Z', '+', '-']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let clock = clock.split('.').next().unwrap_or_default();
    let mut hms = clock.split(':').map(|p| p.parse::<u8>().ok());
    let (hour, minute, second) = if clock.is_empty() {
        (0, 0, 0)
    } else {
        (
            hms.next()??,
            hms.next()??,
            hms.next().flatten().unwrap_or(0),
        )
    };
    let time = time::Time::from_hms(hour, minute, second).ok()?;
    let offset_seconds = match zone {
        "" | "Z" => 0,
        zone => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            let hours: i32 = digits.get(..2)?.parse().ok()?;
            let minutes: i32 = digits.get(2..4).map_or(Some(0), |m| m.parse().ok())?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let utc = time::PrimitiveDateTime::new(date, time).assume_utc();
    Some(utc.unix_timestamp() - i64::from(offset_seconds))
}

#[cfg(test)]
#[path = "read_tests.rs"]
mod tests;
