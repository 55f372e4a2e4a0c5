//! The settings as people read them: the README's settings table and `.env.example`, both
//! rendered from [`SETTINGS`]. Tests fail when either file drifts from the declaration;
//! `BLESS=1 cargo test --lib config::docs` rewrites them.

use super::{Setting, SETTINGS};

/// The README lines between these markers are the rendered table.
pub const README_START: &str = "<!-- settings table: generated from src/config/mod.rs -->";
pub const README_END: &str = "<!-- end of settings table -->";

/// The default as the README shows it.
fn shown_default(setting: &Setting) -> String {
    match setting.default {
        "" => "unset".into(),
        default => format!("`{default}`"),
    }
}

/// The README's settings table (a Markdown table, one row per setting).
pub fn readme_table() -> String {
    let mut out = String::from("| variable | default | meaning |\n|---|---|---|\n");
    for setting in SETTINGS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            setting.var,
            shown_default(setting),
            setting.help().replace('|', "\\|"),
        ));
    }
    out
}

/// `.env.example`: every variable with its default, commented out, under its help text.
pub fn env_example() -> String {
    let mut out = String::from(
        "# tenure configuration. Copy to .env (read at start-up; real environment variables win).\n\
         # Unset or empty values take the default shown. Durations: a bare integer is minutes,\n\
         # or 30s / 15m / 12h / 7d / 1h 30m. Booleans: true/false, 1/0, yes/no, on/off.\n\
         # An invalid value stops the start with a message naming the variable.\n\
         # Generated from src/config/mod.rs (BLESS=1 cargo test --lib config::docs).\n",
    );
    for setting in SETTINGS {
        out.push('\n');
        for line in wrap(&setting.help(), 92) {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("# {}={}\n", setting.var, setting.default));
    }
    out
}

/// `text` in lines of at most `width` characters (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// `document` with the text between the markers replaced by `section`; `None` when a marker
/// is missing.
pub fn replace_section(document: &str, start: &str, end: &str, section: &str) -> Option<String> {
    let from = document.find(start)? + start.len();
    let to = from + document[from..].find(end)?;
    Some(format!(
        "{}\n{section}{}",
        &document[..from],
        &document[to..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    /// Compares `file` with `expected`; with `BLESS=1`, writes `expected` instead.
    fn check_or_bless(name: &str, actual: &str, expected: &str) {
        if actual == expected {
            return;
        }
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(repo_file(name), expected).expect("write");
            return;
        }
        let (line, found, wanted) = actual
            .lines()
            .map(Some)
            .chain(std::iter::repeat(None))
            .zip(expected.lines().map(Some).chain(std::iter::repeat(None)))
            .enumerate()
            .find(|(_, (a, e))| a != e)
            .map(|(i, (a, e))| (i + 1, a.unwrap_or_default(), e.unwrap_or_default()))
            .unwrap_or_default();
        panic!(
            "{name} has drifted from the settings declared in src/config/mod.rs; \
             run `BLESS=1 cargo test --lib config::docs` to rewrite it.\n\
             line {line}: {found}\nexpected: {wanted}"
        );
    }

    #[test]
    fn the_readme_settings_table_matches_the_declaration() {
        let readme = std::fs::read_to_string(repo_file("README.md")).expect("README.md");
        let expected = replace_section(&readme, README_START, README_END, &readme_table())
            .unwrap_or_else(|| panic!("README.md lacks the markers {README_START} … {README_END}"));
        check_or_bless("README.md", &readme, &expected);
    }

    #[test]
    fn env_example_matches_the_declaration() {
        let actual = std::fs::read_to_string(repo_file(".env.example")).unwrap_or_default();
        check_or_bless(".env.example", &actual, &env_example());
    }

    #[test]
    fn every_setting_has_a_row() {
        let table = readme_table();
        for setting in SETTINGS {
            assert!(table.contains(&format!("| `{}` |", setting.var)));
        }
        assert_eq!(table.lines().count(), SETTINGS.len() + 2);
    }

    #[test]
    fn sections_are_replaced_between_markers() {
        let doc = "a\n<s>\nold\n<e>\nb\n";
        assert_eq!(
            replace_section(doc, "<s>", "<e>", "new\n").as_deref(),
            Some("a\n<s>\nnew\n<e>\nb\n")
        );
        assert_eq!(replace_section(doc, "<x>", "<e>", "new\n"), None);
    }
}
