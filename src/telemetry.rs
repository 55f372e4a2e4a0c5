//! The one tracing subscriber: JSON for machines, human-readable on a terminal, filtered by
//! `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// The format to log in: `LOG_FORMAT` when set, else human-readable when standard error is a
/// terminal (someone is reading) and JSON when it is not (a log collector is).
pub fn choose_format(configured: Option<LogFormat>, stderr_is_terminal: bool) -> LogFormat {
    configured.unwrap_or(if stderr_is_terminal {
        LogFormat::Pretty
    } else {
        LogFormat::Json
    })
}

/// Installs the subscriber, writing to standard error; `format` None picks per
/// [`choose_format`]. Colours only on a terminal.
pub fn init(format: Option<LogFormat>) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let terminal = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match choose_format(format, terminal) {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.with_ansi(terminal).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_gets_readable_logs_and_anything_else_json_unless_configured() {
        assert_eq!(choose_format(None, true), LogFormat::Pretty);
        assert_eq!(choose_format(None, false), LogFormat::Json);
        assert_eq!(choose_format(Some(LogFormat::Json), true), LogFormat::Json);
        assert_eq!(
            choose_format(Some(LogFormat::Pretty), false),
            LogFormat::Pretty
        );
    }
}
