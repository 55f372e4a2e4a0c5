//! `tenure config from-dreamfactory PATH/.env`: the tenure settings a DreamFactory `.env`
//! stands for, as a `.env` of tenure's, and the names of the settings that have no
//! equivalent. Values of settings that are not carried over are never printed (some are
//! secrets: `APP_KEY`, `JWT_SECRET`).

use std::collections::BTreeMap;

/// DreamFactory settings tenure reads under the same name, with the same unit (minutes for the
/// TTLs) and the same meaning.
const SAME_NAME: [&str; 5] = [
    "DF_JWT_TTL",
    "DF_JWT_REFRESH_TTL",
    "DF_ALLOW_FOREVER_SESSIONS",
    "DF_LOGIN_ATTRIBUTE",
    "DF_ALLOW_OPEN_REGISTRATION",
];

/// The database settings, folded into `DATABASE_URL`.
const DATABASE: [&str; 6] = [
    "DB_CONNECTION",
    "DB_HOST",
    "DB_PORT",
    "DB_DATABASE",
    "DB_USERNAME",
    "DB_PASSWORD",
];

/// What a DreamFactory `.env` becomes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translation {
    /// tenure settings, in the order printed.
    pub settings: Vec<(String, String)>,
    /// Remarks printed as comments.
    pub notes: Vec<String>,
    /// Names of DreamFactory settings with no equivalent.
    pub unmapped: Vec<String>,
}

/// Translates the entries of a DreamFactory `.env`.
pub fn translate(entries: &[(String, String)]) -> Translation {
    let env: BTreeMap<&str, &str> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.trim()))
        .collect();
    let mut out = Translation::default();
    for name in SAME_NAME {
        let Some(value) = env.get(name) else {
            continue;
        };
        if value.is_empty() && !name.starts_with("DF_ALLOW_") {
            continue;
        }
        let value = match name {
            "DF_ALLOW_FOREVER_SESSIONS" | "DF_ALLOW_OPEN_REGISTRATION" => {
                let effect = php_bool(value);
                if !value.eq_ignore_ascii_case(&effect) {
                    out.notes.push(format!(
                        "{name}={value} is {effect} for DreamFactory (only false and (false) \
                         are false there), so it is {effect} here."
                    ));
                }
                effect
            }
            "DF_LOGIN_ATTRIBUTE" => value.to_ascii_lowercase(),
            _ => (*value).to_owned(),
        };
        out.settings.push((name.to_owned(), value));
    }
    database(&env, &mut out);
    out.unmapped = env
        .keys()
        .filter(|k| !SAME_NAME.contains(k) && !DATABASE.contains(k))
        .map(|k| (*k).to_owned())
        .collect();
    out
}

/// What DreamFactory makes of a boolean setting: Laravel's `env()` turns `false` and `(false)`
/// into false and keeps anything else as a string, and DreamFactory's check is `=== false`,
/// so `0`, `no` or an empty value mean true (reference: dreamfactory.md, configuration keys).
fn php_bool(value: &str) -> String {
    match value.to_ascii_lowercase().as_str() {
        "false" | "(false)" => "false",
        _ => "true",
    }
    .to_owned()
}

fn database(env: &BTreeMap<&str, &str>, out: &mut Translation) {
    let get = |name: &str| env.get(name).copied().filter(|v| !v.is_empty());
    let Some(connection) = get("DB_CONNECTION") else {
        return;
    };
    match connection {
        "pgsql" | "postgres" | "postgresql" => {
            let user = get("DB_USERNAME").unwrap_or("postgres");
            let userinfo = match get("DB_PASSWORD") {
                Some(password) => format!("{}:{}", encode(user), encode(password)),
                None => encode(user),
            };
            let url = format!(
                "postgres://{userinfo}@{}:{}/{}",
                get("DB_HOST").unwrap_or("localhost"),
                get("DB_PORT").unwrap_or("5432"),
                encode(get("DB_DATABASE").unwrap_or("dreamfactory")),
            );
            out.settings.push(("DATABASE_URL".into(), url));
            out.notes.push(
                "DATABASE_URL names DreamFactory's database (and holds its password): tenure's \
                 tables (users, sessions, settings, signing_keys, login_failures) would sit \
                 beside DreamFactory's. A database of its own on the same server keeps them \
                 apart: CREATE DATABASE tenure, and change the name at the end of the URL."
                    .into(),
            );
        }
        "sqlite" => {
            let path = get("DB_DATABASE").unwrap_or("storage/databases/database.sqlite");
            out.settings
                .push(("DATABASE_URL".into(), format!("sqlite:{path}")));
            out.notes.push(
                "DATABASE_URL names DreamFactory's SQLite file; a file of tenure's own \
                 (sqlite:tenure.db, the default) keeps the two apart."
                    .into(),
            );
        }
        other => out.notes.push(format!(
            "DB_CONNECTION={other}: tenure stores in PostgreSQL or SQLite, so DATABASE_URL is \
             not derived; set it to a PostgreSQL URL or a SQLite file."
        )),
    }
}

/// Percent-encodes what a URL's userinfo or path cannot hold as is.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The `.env` text tenure reads: the settings, the notes and the unmapped names as comments.
pub fn render(source: &str, translation: &Translation) -> String {
    let mut text =
        format!("# tenure settings equivalent to the DreamFactory settings in {source}\n");
    if translation.settings.is_empty() {
        text.push_str("# (none set there: tenure's defaults are DreamFactory's)\n");
    }
    for (name, value) in &translation.settings {
        text.push_str(&format!("{name}={value}\n"));
    }
    for note in &translation.notes {
        text.push_str(&format!("# {note}\n"));
    }
    if !translation.unmapped.is_empty() {
        text.push_str("# No equivalent in tenure (not carried over):\n");
        for chunk in translation.unmapped.chunks(6) {
            text.push_str(&format!("#   {}\n", chunk.join(", ")));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn settings_keep_their_names_and_the_database_becomes_a_url() {
        let t = translate(&entries(&[
            ("APP_KEY", "base64:c2VjcmV0"),
            ("DB_CONNECTION", "pgsql"),
            ("DB_HOST", "db.internal"),
            ("DB_PORT", "5433"),
            ("DB_DATABASE", "df"),
            ("DB_USERNAME", "df_user"),
            ("DB_PASSWORD", "p@ss:w/rd"),
            ("DF_JWT_TTL", "60"),
            ("DF_JWT_REFRESH_TTL", "0"),
            ("DF_ALLOW_FOREVER_SESSIONS", "(true)"),
            ("DF_LOGIN_ATTRIBUTE", "Username"),
            ("CACHE_DRIVER", "file"),
        ]));
        assert_eq!(
            t.settings,
            entries(&[
                ("DF_JWT_TTL", "60"),
                ("DF_JWT_REFRESH_TTL", "0"),
                ("DF_ALLOW_FOREVER_SESSIONS", "true"),
                ("DF_LOGIN_ATTRIBUTE", "username"),
                (
                    "DATABASE_URL",
                    "postgres://df_user:p%40ss%3Aw%2Frd@db.internal:5433/df"
                ),
            ])
        );
        assert_eq!(t.unmapped, ["APP_KEY", "CACHE_DRIVER"]);
        let text = render(".env", &t);
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(text.contains("#   APP_KEY, CACHE_DRIVER\n"), "{text}");
    }

    #[test]
    fn mysql_and_sqlite() {
        let mysql = translate(&entries(&[("DB_CONNECTION", "mysql"), ("DB_HOST", "x")]));
        assert!(mysql.settings.is_empty());
        assert!(mysql.notes[0].contains("DB_CONNECTION=mysql"));
        let sqlite = translate(&entries(&[
            ("DB_CONNECTION", "sqlite"),
            ("DB_DATABASE", "/var/df/db.sqlite"),
            ("DF_ALLOW_OPEN_REGISTRATION", "false"),
        ]));
        assert_eq!(
            sqlite.settings,
            entries(&[
                ("DF_ALLOW_OPEN_REGISTRATION", "false"),
                ("DATABASE_URL", "sqlite:/var/df/db.sqlite")
            ])
        );
    }
}
