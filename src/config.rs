//! Configuration: one typed [`Config`], read from the environment (and `.env` through dotenvy
//! in `main`), validated once. An invalid value stops the start with a message naming the
//! variable.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Which user attribute identifies a user at login (`DF_LOGIN_ATTRIBUTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttribute {
    Email,
    Username,
}

impl LoginAttribute {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Username => "username",
        }
    }
}

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// What a login does when the user already has `MAX_SESSIONS_PER_USER` live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimitPolicy {
    /// End the least recently seen session to make room (the default).
    EvictIdle,
    /// Refuse the login with 409.
    Reject,
}

/// The whole configuration. `Debug` never prints a secret.
#[derive(Clone)]
pub struct Config {
    pub database_url: SecretString,
    pub listen_addr: SocketAddr,
    /// `JWT_SECRET`; when unset, a secret is generated on first start and kept in the database.
    pub jwt_secret: Option<SecretString>,
    pub jwt_ttl: Duration,
    pub jwt_refresh_ttl: Duration,
    /// Allowed clock skew for `nbf`/`iat` between replicas. `exp` is never stretched.
    pub jwt_leeway: Duration,
    pub allow_forever_sessions: bool,
    pub allow_open_registration: bool,
    pub login_attribute: LoginAttribute,
    pub session_idle_ttl: Option<Duration>,
    pub refresh_reuse_grace: Duration,
    pub request_timeout: Duration,
    pub password_min_length: usize,
    pub log_format: Option<LogFormat>,
    pub max_sessions_per_user: u32,
    pub session_limit_policy: SessionLimitPolicy,
    pub last_seen_resolution: Duration,
    pub login_max_failures: u32,
    pub login_max_failures_per_ip: u32,
    pub login_failure_window: Duration,
    pub login_backoff_base: Duration,
    pub login_backoff_max: Duration,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub revoked_retention: Duration,
    pub purge_interval: Duration,
    /// Exact origins allowed by CORS (credentials allowed only for them); empty: no CORS.
    pub cors_allowed_origins: Vec<String>,
    /// How long a request waits for a database connection before answering 503.
    pub database_acquire_timeout: Duration,
    /// How long the start waits for the database to answer.
    pub database_startup_timeout: Duration,
    /// Serve `/metrics` on this separate address instead of the main one.
    pub metrics_addr: Option<SocketAddr>,
    pub jwt_algorithm: JwtAlgorithm,
    /// `JWT_PRIVATE_KEY_FILE`: a PEM (PKCS#8) Ed25519 private key for `EdDSA`.
    pub jwt_private_key_file: Option<std::path::PathBuf>,
    /// `KEY_ENCRYPTION_SECRET`: encrypts the signing keys stored in the database.
    pub key_encryption_secret: Option<SecretString>,
    pub jwks_cache_ttl: Duration,
    pub key_rotation_interval: Option<Duration>,
}

/// The token signature algorithm (`JWT_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (DreamFactory's default).
    Hs256,
    /// Ed25519 signatures, verifiable by anyone with the JWKS.
    EdDsa,
}

/// An invalid configuration value; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        var,
        message: message.into(),
    }
}

/// Every variable with its default, in the order of `.env.example`.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("DATABASE_URL", "sqlite:tenure.db"),
    ("LISTEN_ADDR", "127.0.0.1:8080"),
    ("JWT_SECRET", ""),
    ("DF_JWT_TTL", "1440"),
    ("DF_JWT_REFRESH_TTL", "20160"),
    ("JWT_LEEWAY", "5s"),
    ("DF_ALLOW_FOREVER_SESSIONS", "false"),
    ("DF_ALLOW_OPEN_REGISTRATION", "false"),
    ("DF_LOGIN_ATTRIBUTE", "email"),
    ("SESSION_IDLE_TTL", "off"),
    ("REFRESH_REUSE_GRACE", "10s"),
    ("REQUEST_TIMEOUT", "30s"),
    ("PASSWORD_MIN_LENGTH", "8"),
    ("LOG_FORMAT", ""),
    ("MAX_SESSIONS_PER_USER", "100"),
    ("SESSION_LIMIT_POLICY", "evict_idle"),
    ("LAST_SEEN_RESOLUTION", "60s"),
    ("LOGIN_MAX_FAILURES", "10"),
    ("LOGIN_MAX_FAILURES_PER_IP", "100"),
    ("LOGIN_FAILURE_WINDOW", "15m"),
    ("LOGIN_BACKOFF_BASE", "30s"),
    ("LOGIN_BACKOFF_MAX", "15m"),
    ("TRUSTED_PROXIES", ""),
    ("REVOKED_RETENTION", "7d"),
    ("PURGE_INTERVAL", "60s"),
    ("CORS_ALLOWED_ORIGINS", ""),
    ("DATABASE_ACQUIRE_TIMEOUT", "2s"),
    ("DATABASE_STARTUP_TIMEOUT", "60s"),
    ("METRICS_ADDR", ""),
    ("JWT_ALGORITHM", "HS256"),
    ("JWT_PRIVATE_KEY_FILE", ""),
    ("KEY_ENCRYPTION_SECRET", ""),
    ("JWKS_CACHE_TTL", "5m"),
    ("KEY_ROTATION_INTERVAL", "off"),
];

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can supply variables without touching
    /// the process environment. Unset and empty values take the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| -> String {
            lookup(var)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default_of(var).to_owned())
        };

        let database_url = get("DATABASE_URL");
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let listen_addr = get("LISTEN_ADDR")
            .parse()
            .map_err(|_| invalid("LISTEN_ADDR", "expected an address such as 127.0.0.1:8080"))?;
        let jwt_secret = match get("JWT_SECRET") {
            s if s.is_empty() => None,
            s if s.len() < 32 => {
                return Err(invalid(
                    "JWT_SECRET",
                    "must be at least 32 bytes (256 bits) for HS256",
                ))
            }
            s => Some(SecretString::from(s)),
        };
        let positive = |var: &'static str| -> Result<Duration, ConfigError> {
            match parse_duration(&get(var)) {
                Ok(d) if d.is_zero() => Err(invalid(var, "must be greater than zero")),
                Ok(d) => Ok(d),
                Err(e) => Err(invalid(var, e)),
            }
        };
        let any_duration =
            |var: &'static str| parse_duration(&get(var)).map_err(|e| invalid(var, e));

        let session_idle_ttl = match get("SESSION_IDLE_TTL").to_ascii_lowercase().as_str() {
            "off" | "none" | "0" => None,
            _ => Some(positive("SESSION_IDLE_TTL")?),
        };
        let login_attribute = match get("DF_LOGIN_ATTRIBUTE").to_ascii_lowercase().as_str() {
            "email" => LoginAttribute::Email,
            "username" => LoginAttribute::Username,
            _ => return Err(invalid("DF_LOGIN_ATTRIBUTE", "expected email or username")),
        };
        let log_format = match get("LOG_FORMAT").to_ascii_lowercase().as_str() {
            "" => None,
            "json" => Some(LogFormat::Json),
            "pretty" => Some(LogFormat::Pretty),
            _ => return Err(invalid("LOG_FORMAT", "expected json or pretty")),
        };
        let password_min_length = get("PASSWORD_MIN_LENGTH")
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1024).contains(n))
            .ok_or_else(|| invalid("PASSWORD_MIN_LENGTH", "expected a number from 1 to 1024"))?;

        let count = |var: &'static str, max: u32| -> Result<u32, ConfigError> {
            get(var)
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| invalid(var, format!("expected a number from 1 to {max}")))
        };
        let session_limit_policy = match get("SESSION_LIMIT_POLICY").to_ascii_lowercase().as_str() {
            "evict_idle" => SessionLimitPolicy::EvictIdle,
            "reject" => SessionLimitPolicy::Reject,
            _ => {
                return Err(invalid(
                    "SESSION_LIMIT_POLICY",
                    "expected evict_idle or reject",
                ))
            }
        };
        let trusted_proxies = get("TRUSTED_PROXIES")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        invalid(
                            "TRUSTED_PROXIES",
                            format!("{s:?} is not an IP address or CIDR range"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let cors_allowed_origins = get("CORS_ALLOWED_ORIGINS")
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .map(|o| {
                let valid = (o.starts_with("http://") || o.starts_with("https://"))
                    && o.parse::<axum::http::HeaderValue>().is_ok()
                    && o != "*";
                if valid {
                    Ok(o)
                } else {
                    Err(invalid(
                        "CORS_ALLOWED_ORIGINS",
                        format!("{o:?} is not an exact origin such as https://app.example.com"),
                    ))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metrics_addr = match get("METRICS_ADDR") {
            a if a.is_empty() => None,
            a => Some(a.parse().map_err(|_| {
                invalid("METRICS_ADDR", "expected an address such as 127.0.0.1:9090")
            })?),
        };

        let jwt_algorithm = match get("JWT_ALGORITHM").to_ascii_uppercase().as_str() {
            "HS256" => JwtAlgorithm::Hs256,
            "EDDSA" => JwtAlgorithm::EdDsa,
            _ => return Err(invalid("JWT_ALGORITHM", "expected HS256 or EdDSA")),
        };
        let jwt_private_key_file = match get("JWT_PRIVATE_KEY_FILE") {
            f if f.is_empty() => None,
            f => Some(std::path::PathBuf::from(f)),
        };
        if jwt_algorithm == JwtAlgorithm::Hs256 && jwt_private_key_file.is_some() {
            return Err(invalid(
                "JWT_PRIVATE_KEY_FILE",
                "is an Ed25519 key: set JWT_ALGORITHM=EdDSA to use it",
            ));
        }
        if jwt_algorithm == JwtAlgorithm::EdDsa && jwt_secret.is_some() {
            return Err(invalid(
                "JWT_SECRET",
                "is an HS256 secret: with JWT_ALGORITHM=EdDSA use JWT_PRIVATE_KEY_FILE, or nothing",
            ));
        }
        let key_encryption_secret = match get("KEY_ENCRYPTION_SECRET") {
            s if s.is_empty() => None,
            s if s.len() < 16 => {
                return Err(invalid(
                    "KEY_ENCRYPTION_SECRET",
                    "must be at least 16 bytes",
                ))
            }
            s => Some(SecretString::from(s)),
        };
        let key_rotation_interval = match get("KEY_ROTATION_INTERVAL").to_ascii_lowercase().as_str()
        {
            "off" | "none" | "0" => None,
            _ => Some(positive("KEY_ROTATION_INTERVAL")?),
        };

        Ok(Self {
            cors_allowed_origins,
            database_acquire_timeout: positive("DATABASE_ACQUIRE_TIMEOUT")?,
            database_startup_timeout: positive("DATABASE_STARTUP_TIMEOUT")?,
            metrics_addr,
            jwt_algorithm,
            jwt_private_key_file,
            key_encryption_secret,
            jwks_cache_ttl: positive("JWKS_CACHE_TTL")?,
            key_rotation_interval,
            max_sessions_per_user: count("MAX_SESSIONS_PER_USER", 100_000)?,
            session_limit_policy,
            last_seen_resolution: any_duration("LAST_SEEN_RESOLUTION")?,
            login_max_failures: count("LOGIN_MAX_FAILURES", 1_000_000)?,
            login_max_failures_per_ip: count("LOGIN_MAX_FAILURES_PER_IP", 1_000_000)?,
            login_failure_window: positive("LOGIN_FAILURE_WINDOW")?,
            login_backoff_base: positive("LOGIN_BACKOFF_BASE")?,
            login_backoff_max: positive("LOGIN_BACKOFF_MAX")?,
            trusted_proxies,
            revoked_retention: any_duration("REVOKED_RETENTION")?,
            purge_interval: positive("PURGE_INTERVAL")?,
            database_url: SecretString::from(database_url),
            listen_addr,
            jwt_secret,
            jwt_ttl: positive("DF_JWT_TTL")?,
            jwt_refresh_ttl: positive("DF_JWT_REFRESH_TTL")?,
            jwt_leeway: any_duration("JWT_LEEWAY")?,
            allow_forever_sessions: parse_bool(
                "DF_ALLOW_FOREVER_SESSIONS",
                &get("DF_ALLOW_FOREVER_SESSIONS"),
            )?,
            allow_open_registration: parse_bool(
                "DF_ALLOW_OPEN_REGISTRATION",
                &get("DF_ALLOW_OPEN_REGISTRATION"),
            )?,
            login_attribute,
            session_idle_ttl,
            refresh_reuse_grace: any_duration("REFRESH_REUSE_GRACE")?,
            request_timeout: positive("REQUEST_TIMEOUT")?,
            password_min_length,
            log_format,
        })
    }

    /// The effective settings with durations in seconds and secrets masked: what
    /// `tenure config check` prints and what administrators see in the environment endpoint.
    pub fn public_settings(&self) -> serde_json::Value {
        let secs = |d: Duration| d.as_secs();
        serde_json::json!({
            "database_url": redact_url(self.database_url.expose_secret()),
            "database_backend": self.database_kind(),
            "listen_addr": self.listen_addr.to_string(),
            "jwt_algorithm": match self.jwt_algorithm {
                JwtAlgorithm::Hs256 => "HS256",
                JwtAlgorithm::EdDsa => "EdDSA",
            },
            // Where the signing key comes from; never the key.
            "jwt_key_source": if self.jwt_secret.is_some() || self.jwt_private_key_file.is_some() {
                "configured"
            } else {
                "database"
            },
            "stored_keys_encrypted": self.key_encryption_secret.is_some(),
            "jwks_cache_ttl_seconds": secs(self.jwks_cache_ttl),
            "key_rotation_interval_seconds": self.key_rotation_interval.map(secs),
            "log_format": self.log_format.map(|f| match f {
                LogFormat::Json => "json",
                LogFormat::Pretty => "pretty",
            }),
            "jwt_ttl_seconds": secs(self.jwt_ttl),
            "jwt_refresh_ttl_seconds": secs(self.jwt_refresh_ttl),
            "jwt_leeway_seconds": secs(self.jwt_leeway),
            "allow_forever_sessions": self.allow_forever_sessions,
            "allow_open_registration": self.allow_open_registration,
            "login_attribute": self.login_attribute.as_str(),
            "session_idle_ttl_seconds": self.session_idle_ttl.map(secs),
            "refresh_reuse_grace_seconds": secs(self.refresh_reuse_grace),
            "request_timeout_seconds": secs(self.request_timeout),
            "password_min_length": self.password_min_length,
            "max_sessions_per_user": self.max_sessions_per_user,
            "session_limit_policy": match self.session_limit_policy {
                SessionLimitPolicy::EvictIdle => "evict_idle",
                SessionLimitPolicy::Reject => "reject",
            },
            "last_seen_resolution_seconds": secs(self.last_seen_resolution),
            "login_max_failures": self.login_max_failures,
            "login_max_failures_per_ip": self.login_max_failures_per_ip,
            "login_failure_window_seconds": secs(self.login_failure_window),
            "login_backoff_base_seconds": secs(self.login_backoff_base),
            "login_backoff_max_seconds": secs(self.login_backoff_max),
            "trusted_proxies": self.trusted_proxies.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            "revoked_retention_seconds": secs(self.revoked_retention),
            "purge_interval_seconds": secs(self.purge_interval),
            "cors_allowed_origins": self.cors_allowed_origins,
            "database_acquire_timeout_seconds": secs(self.database_acquire_timeout),
            "database_startup_timeout_seconds": secs(self.database_startup_timeout),
            "metrics_addr": self.metrics_addr.map(|a| a.to_string()),
        })
    }

    /// `sqlite` or `postgres`, for logs and the environment endpoint.
    pub fn database_kind(&self) -> &'static str {
        if self.database_url.expose_secret().starts_with("sqlite:") {
            "sqlite"
        } else {
            "postgres"
        }
    }
}

fn default_of(var: &str) -> &'static str {
    DEFAULTS
        .iter()
        .find(|(name, _)| *name == var)
        .map_or("", |(_, default)| default)
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field(
                "database_url",
                &redact_url(self.database_url.expose_secret()),
            )
            .field("listen_addr", &self.listen_addr)
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("jwt_ttl", &self.jwt_ttl)
            .field("jwt_refresh_ttl", &self.jwt_refresh_ttl)
            .field("jwt_leeway", &self.jwt_leeway)
            .field("allow_forever_sessions", &self.allow_forever_sessions)
            .field("allow_open_registration", &self.allow_open_registration)
            .field("login_attribute", &self.login_attribute)
            .field("session_idle_ttl", &self.session_idle_ttl)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("request_timeout", &self.request_timeout)
            .field("password_min_length", &self.password_min_length)
            .field("log_format", &self.log_format)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .field("session_limit_policy", &self.session_limit_policy)
            .field("last_seen_resolution", &self.last_seen_resolution)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_max_failures_per_ip", &self.login_max_failures_per_ip)
            .field("login_failure_window", &self.login_failure_window)
            .field("login_backoff_base", &self.login_backoff_base)
            .field("login_backoff_max", &self.login_backoff_max)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("revoked_retention", &self.revoked_retention)
            .field("purge_interval", &self.purge_interval)
            .field("cors_allowed_origins", &self.cors_allowed_origins)
            .field("database_acquire_timeout", &self.database_acquire_timeout)
            .field("database_startup_timeout", &self.database_startup_timeout)
            .field("metrics_addr", &self.metrics_addr)
            .field("jwt_algorithm", &self.jwt_algorithm)
            .field("jwt_private_key_file", &self.jwt_private_key_file)
            .field(
                "key_encryption_secret",
                &self.key_encryption_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("jwks_cache_ttl", &self.jwks_cache_ttl)
            .field("key_rotation_interval", &self.key_rotation_interval)
            .finish()
    }
}

/// Hides the password of `postgres://user:password@host/db`.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    format!("{}://{}:[redacted]{}", &url[..scheme_end], user, &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A duration: a bare integer is minutes (DreamFactory's unit); `30s`, `15m`, `12h`, `7d` also work.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (digits, unit_seconds) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1),
        Some((i, 'm')) => (&text[..i], 60),
        Some((i, 'h')) => (&text[..i], 3_600),
        Some((i, 'd')) => (&text[..i], 86_400),
        _ => (text, 60),
    };
    let bad = || format!("{text:?} is not a duration (use minutes, or 30s, 15m, 12h, 7d)");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    // Ten years is far beyond any sensible setting and keeps timestamp arithmetic in range.
    const MAX_SECONDS: u64 = 10 * 365 * 86_400;
    n.checked_mul(unit_seconds)
        .filter(|s| *s <= MAX_SECONDS)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is longer than ten years"))
}

fn parse_bool(var: &'static str, text: &str) -> Result<bool, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(var, format!("{text:?} is not true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn durations_default_to_minutes_and_accept_units() {
        assert_eq!(parse_duration("1440").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        for bad in [
            "",
            "s",
            "-1",
            "1.5h",
            "10 m",
            "1w",
            "99999999999999999999",
            "3650000d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn defaults_match_the_design() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_kind(), "sqlite");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.jwt_ttl, Duration::from_secs(1440 * 60));
        assert_eq!(c.jwt_refresh_ttl, Duration::from_secs(20160 * 60));
        assert!(!c.allow_forever_sessions);
        assert!(!c.allow_open_registration);
        assert_eq!(c.login_attribute, LoginAttribute::Email);
        assert_eq!(c.session_idle_ttl, None);
        assert_eq!(c.refresh_reuse_grace, Duration::from_secs(10));
        assert!(c.jwt_secret.is_none());
        assert_eq!(c.max_sessions_per_user, 100);
        assert_eq!(c.session_limit_policy, SessionLimitPolicy::EvictIdle);
        assert_eq!(c.last_seen_resolution, Duration::from_secs(60));
        assert_eq!(c.login_max_failures, 10);
        assert_eq!(c.login_failure_window, Duration::from_secs(900));
        assert_eq!(c.revoked_retention, Duration::from_secs(7 * 86_400));
        assert!(c.trusted_proxies.is_empty());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_ranges() {
        let c = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]).unwrap();
        assert_eq!(c.trusted_proxies.len(), 3);
    }

    #[test]
    fn an_invalid_value_names_its_variable() {
        for (var, value) in [
            ("DF_JWT_TTL", "soon"),
            ("DF_JWT_TTL", "0"),
            ("DF_ALLOW_FOREVER_SESSIONS", "maybe"),
            ("DF_LOGIN_ATTRIBUTE", "phone"),
            ("LISTEN_ADDR", "nowhere"),
            ("DATABASE_URL", "mysql://x"),
            ("JWT_SECRET", "short"),
            ("SESSION_IDLE_TTL", "forever"),
            ("REFRESH_REUSE_GRACE", "x"),
            ("MAX_SESSIONS_PER_USER", "0"),
            ("SESSION_LIMIT_POLICY", "drop"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, proxy.local"),
            ("LOGIN_MAX_FAILURES", "many"),
            ("CORS_ALLOWED_ORIGINS", "*"),
            ("CORS_ALLOWED_ORIGINS", "app.example.com"),
            ("METRICS_ADDR", "everywhere"),
            ("JWT_ALGORITHM", "RS256"),
            ("KEY_ENCRYPTION_SECRET", "short"),
            ("JWKS_CACHE_TTL", "0"),
        ] {
            let err = config(&[(var, value)]).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn debug_never_prints_secrets() {
        let c = config(&[
            ("DATABASE_URL", "postgres://app:hunter2hunter2@db/tenure"),
            ("JWT_SECRET", "a-very-long-secret-of-at-least-32-bytes!!"),
        ])
        .unwrap();
        let printed = format!("{c:?}");
        assert!(!printed.contains("hunter2"));
        assert!(!printed.contains("a-very-long-secret"));
        assert!(printed.contains("postgres://app:[redacted]@db/tenure"));
    }
}
