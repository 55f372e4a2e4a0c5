//! The parsers the settings are declared with. Each takes the trimmed text (or the default)
//! and answers the value or a message; the caller adds the variable's name. A parser of a
//! secret never echoes the text.

use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

/// Ten years is far beyond any sensible setting and keeps timestamp arithmetic in range.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A duration: a bare integer is minutes (DreamFactory's unit); otherwise whatever `humantime`
/// reads (`30s`, `15m`, `12h`, `7d`, `1h 30m`, `2w`), in whole seconds, up to ten years.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let bad = || format!("{text:?} is not a duration (use minutes, or 30s, 15m, 12h, 7d)");
    let duration = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<u64>()
            .ok()
            .and_then(|minutes| minutes.checked_mul(60))
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is longer than ten years"))?
    } else {
        match humantime::parse_duration(text) {
            Ok(duration) => duration,
            Err(humantime::DurationError::NumberOverflow) => {
                return Err(format!("{text:?} is longer than ten years"))
            }
            Err(_) => return Err(bad()),
        }
    };
    if duration > MAX_DURATION {
        return Err(format!("{text:?} is longer than ten years"));
    }
    if duration.subsec_nanos() != 0 {
        return Err(format!("{text:?} is not a whole number of seconds"));
    }
    Ok(duration)
}

/// A duration greater than zero.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d => Ok(d),
    }
}

/// `off`, `none` or `0` turn the setting off; anything else is read by `parse`.
pub fn off_or<T>(
    parse: impl Fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Option<T>, String> {
    move |text| match text.to_ascii_lowercase().as_str() {
        "off" | "none" | "0" => Ok(None),
        _ => parse(text).map(Some),
    }
}

/// Unset (empty) is `None`; anything else is read by `parse`.
pub fn optional<T>(
    parse: impl Fn(&str) -> Result<T, String>,
) -> impl Fn(&str) -> Result<Option<T>, String> {
    move |text| match text {
        "" => Ok(None),
        _ => parse(text).map(Some),
    }
}

/// The one reading of a loose boolean, shared by the configuration and the HTTP layer (query
/// flags, DreamFactory's loose JSON booleans): `true`, `1`, `yes`, `on` and `false`, `0`, `no`,
/// `off`, in any case. Anything else, the empty string included, is `None`.
pub fn parse_loose_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "1", "yes", "on"];
    const FALSE: [&str; 4] = ["false", "0", "no", "off"];
    let text = text.trim();
    if TRUE.iter().any(|t| text.eq_ignore_ascii_case(t)) {
        Some(true)
    } else if FALSE.iter().any(|f| text.eq_ignore_ascii_case(f)) {
        Some(false)
    } else {
        None
    }
}

/// A boolean setting.
pub fn boolean(text: &str) -> Result<bool, String> {
    parse_loose_bool(text).ok_or_else(|| format!("{text:?} is not true or false"))
}

/// A whole number from 1 to `max`.
pub fn count<T>(max: T) -> impl Fn(&str) -> Result<T, String>
where
    T: FromStr + PartialOrd + From<u8> + Display + Copy,
{
    move |text| {
        text.parse::<T>()
            .ok()
            .filter(|n| *n >= T::from(1) && *n <= max)
            .ok_or_else(|| format!("expected a number from 1 to {max}"))
    }
}

/// A number from 0 (the setting's automatic value) to `max`.
pub fn zero_or_count(max: usize) -> impl Fn(&str) -> Result<usize, String> {
    move |text| {
        text.parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("expected 0 (automatic) or a number up to {max}"))
    }
}

/// An address and port, such as `example`.
pub fn socket_addr(example: &'static str) -> impl Fn(&str) -> Result<SocketAddr, String> {
    move |text| {
        text.parse()
            .map_err(|_| format!("expected an address such as {example}"))
    }
}

/// One of a fixed set of names, in any case.
pub fn choice<T: Choice>(text: &str) -> Result<T, String> {
    T::CHOICES
        .iter()
        .find(|(_, name)| text.eq_ignore_ascii_case(name))
        .map(|(value, _)| *value)
        .ok_or_else(|| {
            let names: Vec<&str> = T::CHOICES.iter().map(|(_, name)| *name).collect();
            match names.split_last() {
                Some((last, [])) => format!("expected {last}"),
                Some((last, rest)) => format!("expected {} or {last}", rest.join(", ")),
                None => "no value is accepted".into(),
            }
        })
}

/// An enumerated setting: each value with the one name it is written and shown as.
pub trait Choice: Copy + PartialEq + 'static {
    const CHOICES: &'static [(Self, &'static str)];

    fn name(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(value, _)| *value == self)
            .map_or("", |(_, name)| name)
    }
}

/// A secret of at least `min_bytes`; unset is `None`. The message never holds the text.
pub fn secret(
    min_bytes: usize,
    too_short: &'static str,
) -> impl Fn(&str) -> Result<Option<SecretString>, String> {
    move |text| match text {
        "" => Ok(None),
        s if s.len() < min_bytes => Err(too_short.into()),
        s => Ok(Some(SecretString::from(s))),
    }
}

/// `sqlite:…`, `postgres://…` or `postgresql://…`. The message never holds the URL (it may
/// hold a password).
pub fn database_url(text: &str) -> Result<SecretString, String> {
    if ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|scheme| text.starts_with(scheme))
    {
        Ok(SecretString::from(text))
    } else {
        Err("must start with sqlite:, postgres:// or postgresql://".into())
    }
}

/// Comma-separated addresses or CIDR ranges.
pub fn ip_nets(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    comma_separated(text)
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
        })
        .collect()
}

/// Comma-separated exact origins (`https://app.example.com`); a trailing `/` is dropped.
pub fn origins(text: &str) -> Result<Vec<String>, String> {
    comma_separated(text)
        .map(|o| o.trim_end_matches('/'))
        .filter(|o| !o.is_empty())
        .map(|o| {
            let valid = (o.starts_with("http://") || o.starts_with("https://"))
                && o.parse::<axum::http::HeaderValue>().is_ok();
            if valid {
                Ok(o.to_owned())
            } else {
                Err(format!(
                    "{o:?} is not an exact origin such as https://app.example.com"
                ))
            }
        })
        .collect()
}

/// A file path.
pub fn path(text: &str) -> Result<std::path::PathBuf, String> {
    Ok(text.into())
}

fn comma_separated(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// A cookie name: a non-empty RFC 6265 token of at most 64 characters.
pub fn cookie_name(text: &str) -> Result<String, String> {
    let valid = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if valid {
        Ok(text.to_owned())
    } else {
        Err("must be 1 to 64 letters, digits or !#$%&'*+-.^_`|~".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_default_to_minutes_and_accept_units() {
        let secs = |text| parse_duration(text).map(|d| d.as_secs());
        assert_eq!(secs("1440"), Ok(86_400));
        assert_eq!(secs("0"), Ok(0));
        assert_eq!(secs("30s"), Ok(30));
        assert_eq!(secs("15m"), Ok(900));
        assert_eq!(secs("12h"), Ok(43_200));
        assert_eq!(secs("7d"), Ok(604_800));
        assert_eq!(secs("1h 30m"), Ok(5_400));
        assert_eq!(secs("1.5h"), Ok(5_400));
        assert_eq!(secs("2w"), Ok(1_209_600));
        for bad in [
            "",
            "s",
            "-1",
            "10x",
            "1500ms",
            "99999999999999999999",
            "99999999999999999999s",
            "3650000d",
            "11y",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn loose_booleans_are_read_one_way() {
        for yes in ["true", "TRUE", "1", "yes", "On", " on "] {
            assert_eq!(parse_loose_bool(yes), Some(true), "{yes:?}");
        }
        for no in ["false", "0", "No", "off"] {
            assert_eq!(parse_loose_bool(no), Some(false), "{no:?}");
        }
        for neither in ["", "maybe", "2", "truee"] {
            assert_eq!(parse_loose_bool(neither), None, "{neither:?}");
        }
    }

    #[test]
    fn secrets_are_never_echoed() {
        let err = secret(32, "must be at least 32 bytes")("hunter2").unwrap_err();
        assert!(!err.contains("hunter2"));
        let err = database_url("mysql://app:hunter2@db/x").unwrap_err();
        assert!(!err.contains("hunter2"));
    }
}
