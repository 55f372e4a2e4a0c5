//! Configuration: one typed [`Config`], read from the environment (and `.env` through dotenvy
//! in `main`), validated once. An invalid value stops the start with a message naming the
//! variable.
//!
//! Each setting is declared once, below: its field and type, variable, default, parser,
//! whether it is secret, how the public view shows it, and (its doc comment) its help text.
//! The parsed [`Config`], its masked `Debug`, [`SETTINGS`], [`Config::public_settings`] (the
//! admin environment and `tenure config check`), the README's settings table and
//! `.env.example` ([`docs`], drift-checked by its tests) all come from that declaration.

#[macro_use]
mod declare;
pub mod docs;
pub mod parse;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

pub use declare::{Public, Setting, Shown};
use parse::{
    boolean, choice, cookie_name, count, database_url, ip_nets, off_or, optional, origins, path,
    positive_duration, secret, socket_addr, zero_or_count,
};
pub use parse::{parse_duration, parse_loose_bool, Choice};

settings! {
    /// `sqlite:FILE` (created if missing, WAL mode) or `postgres://` / `postgresql://`.
    /// Migrations run at start-up. This build has no TLS support for PostgreSQL connections.
    database_url: SecretString {
        var: "DATABASE_URL",
        default: "sqlite:tenure.db",
        parse: database_url,
        secret: true,
        public: Public::With(|url| json!(redact_url(url.expose_secret()))),
    }
    /// where the server listens (the container image sets `0.0.0.0:8080`)
    listen_addr: SocketAddr {
        var: "LISTEN_ADDR",
        default: "127.0.0.1:8080",
        parse: socket_addr("127.0.0.1:8080"),
    }
    /// the HS256 key, at least 32 bytes, used as literal bytes; unset: generated on first
    /// start and stored in the database, so restarts and replicas agree
    jwt_secret: Option<SecretString> {
        var: "JWT_SECRET",
        default: "",
        parse: secret(32, "must be at least 32 bytes (256 bits) for HS256"),
        secret: true,
    }
    /// `HS256` or `EdDSA` (Ed25519, published in the JWKS)
    jwt_algorithm: JwtAlgorithm {
        var: "JWT_ALGORITHM",
        default: "HS256",
        parse: choice,
    }
    /// a PEM (PKCS#8) Ed25519 private key, with `JWT_ALGORITHM=EdDSA`; unset: keys are
    /// generated and stored in the database
    jwt_private_key_file: Option<PathBuf> {
        var: "JWT_PRIVATE_KEY_FILE",
        default: "",
        parse: optional(path),
        public: Public::Hidden,
    }
    /// at least 16 bytes; encrypts the signing keys stored in the database
    key_encryption_secret: Option<SecretString> {
        var: "KEY_ENCRYPTION_SECRET",
        default: "",
        parse: secret(16, "must be at least 16 bytes"),
        secret: true,
    }
    /// `max-age` of the JWKS; a new key is published this long before it signs
    jwks_cache_ttl: Duration {
        var: "JWKS_CACHE_TTL",
        default: "5m",
        parse: positive_duration,
    }
    /// rotate the signing key automatically after it has signed this long; `off` disables it
    key_rotation_interval: Option<Duration> {
        var: "KEY_ROTATION_INTERVAL",
        default: "off",
        parse: off_or(positive_duration),
    }
    /// session token lifetime (24 hours); must be > 0
    jwt_ttl: Duration {
        var: "DF_JWT_TTL",
        default: "1440",
        parse: positive_duration,
    }
    /// how long after login an ordinary session can be refreshed (14 days); must be > 0
    jwt_refresh_ttl: Duration {
        var: "DF_JWT_REFRESH_TTL",
        default: "20160",
        parse: positive_duration,
    }
    /// clock skew tolerated on `iat`/`nbf` between replicas (never on `exp`)
    jwt_leeway: Duration {
        var: "JWT_LEEWAY",
        default: "5s",
        parse: parse_duration,
    }
    /// whether `remember_me` makes a forever session
    allow_forever_sessions: bool {
        var: "DF_ALLOW_FOREVER_SESSIONS",
        default: "false",
        parse: boolean,
    }
    /// enables `POST /api/v2/user/register`
    allow_open_registration: bool {
        var: "DF_ALLOW_OPEN_REGISTRATION",
        default: "false",
        parse: boolean,
    }
    /// `email` or `username` (then `tenure user create` needs `--username`)
    login_attribute: LoginAttribute {
        var: "DF_LOGIN_ATTRIBUTE",
        default: "email",
        parse: choice,
    }
    /// a session (forever or ordinary) not logged into or refreshed for this long can no
    /// longer be refreshed; `off`, `none` or `0` disables it
    session_idle_ttl: Option<Duration> {
        var: "SESSION_IDLE_TTL",
        default: "off",
        parse: off_or(positive_duration),
    }
    /// how long a replaced token still gets the same successor; `0` disables
    refresh_reuse_grace: Duration {
        var: "REFRESH_REUSE_GRACE",
        default: "10s",
        parse: parse_duration,
    }
    /// requests running longer are answered 503; must be > 0
    request_timeout: Duration {
        var: "REQUEST_TIMEOUT",
        default: "30s",
        parse: positive_duration,
    }
    /// a connection whose request headers have not all arrived this long after it started
    /// waiting for them (a new connection, or an idle keep-alive one) is closed; must be > 0
    header_read_timeout: Duration {
        var: "HEADER_READ_TIMEOUT",
        default: "10s",
        parse: positive_duration,
    }
    /// the most client connections open at once; further ones wait in the listen backlog.
    /// `0`: the open-file limit (raised to its hard limit at start) less what the database
    /// pool, the probes and the logs need
    max_connections: usize {
        var: "MAX_CONNECTIONS",
        default: "0",
        parse: zero_or_count(1_000_000),
    }
    /// minimum password length (1–1024) for registration and `tenure user create`
    password_min_length: usize {
        var: "PASSWORD_MIN_LENGTH",
        default: "8",
        parse: count(1024_usize),
    }
    /// `json` or `pretty`; unset means pretty on a terminal and JSON otherwise. `RUST_LOG`
    /// filters (default `info,sqlx=warn`).
    log_format: Option<LogFormat> {
        var: "LOG_FORMAT",
        default: "",
        parse: optional(choice),
    }
    /// live sessions one user may hold
    max_sessions_per_user: u32 {
        var: "MAX_SESSIONS_PER_USER",
        default: "100",
        parse: count(100_000_u32),
    }
    /// live sessions created from one client address (after `TRUSTED_PROXIES`), FairCom's
    /// `maxJsonApiSessionsPerIpAddress`; `off` disables it
    max_sessions_per_ip: Option<u32> {
        var: "MAX_SESSIONS_PER_IP",
        default: "off",
        parse: off_or(count(10_000_000_u32)),
    }
    /// live sessions in all, FairCom's `maxJsonApiSessions`; `off` disables it
    max_sessions: Option<u32> {
        var: "MAX_SESSIONS",
        default: "off",
        parse: off_or(count(1_000_000_000_u32)),
    }
    /// at any session cap, `evict_idle` ends the least recently seen session that counts
    /// against it; `reject` refuses the login with 409
    session_limit_policy: SessionLimitPolicy {
        var: "SESSION_LIMIT_POLICY",
        default: "evict_idle",
        parse: choice,
    }
    /// every `/api/v2` call but the environment must send an active app's API key
    /// (`X-DreamFactory-API-Key` or `?api_key=`); DreamFactory's 400 otherwise
    require_api_key: bool {
        var: "REQUIRE_API_KEY",
        default: "false",
        parse: boolean,
    }
    /// `last_seen_at` is written at most once per this interval per session
    last_seen_resolution: Duration {
        var: "LAST_SEEN_RESOLUTION",
        default: "60s",
        parse: parse_duration,
    }
    /// failed logins per account within the window before throttling
    login_max_failures: u32 {
        var: "LOGIN_MAX_FAILURES",
        default: "10",
        parse: count(1_000_000_u32),
    }
    /// failed logins per client address within the window before throttling
    login_max_failures_per_ip: u32 {
        var: "LOGIN_MAX_FAILURES_PER_IP",
        default: "100",
        parse: count(1_000_000_u32),
    }
    /// the counting window; a counter older than this starts again
    login_failure_window: Duration {
        var: "LOGIN_FAILURE_WINDOW",
        default: "15m",
        parse: positive_duration,
    }
    /// the first throttle delay; it doubles with each further failure
    login_backoff_base: Duration {
        var: "LOGIN_BACKOFF_BASE",
        default: "30s",
        parse: positive_duration,
    }
    /// the longest throttle delay (never a permanent lockout)
    login_backoff_max: Duration {
        var: "LOGIN_BACKOFF_MAX",
        default: "15m",
        parse: positive_duration,
    }
    /// comma-separated addresses or CIDR ranges whose `X-Forwarded-For` is believed
    trusted_proxies: Vec<ipnet::IpNet> {
        var: "TRUSTED_PROXIES",
        default: "",
        parse: ip_nets,
    }
    /// how long revoked sessions are kept (so their tokens keep answering with a reason)
    /// before the purge deletes them
    revoked_retention: Duration {
        var: "REVOKED_RETENTION",
        default: "7d",
        parse: parse_duration,
    }
    /// how often the background purge runs
    purge_interval: Duration {
        var: "PURGE_INTERVAL",
        default: "60s",
        parse: positive_duration,
    }
    /// comma-separated exact origins allowed by CORS (credentials allowed only for them);
    /// unset means no CORS headers
    cors_allowed_origins: Vec<String> {
        var: "CORS_ALLOWED_ORIGINS",
        default: "",
        parse: origins,
    }
    /// mark the refresh cookie `Secure` and prefix its name with `__Secure-`; `false` only for
    /// plain-http development (the server says so at start-up)
    cookie_secure: bool {
        var: "COOKIE_SECURE",
        default: "true",
        parse: boolean,
    }
    /// the refresh cookie's name (browser apps, `X-Tenure-Refresh: cookie`), without the
    /// `__Secure-` prefix that `COOKIE_SECURE` adds
    refresh_cookie_name: String {
        var: "REFRESH_COOKIE_NAME",
        default: "tenure-refresh",
        parse: cookie_name,
    }
    /// how long a request waits for a database connection before 503 (on PostgreSQL also the
    /// longest a session check's statement may take)
    database_acquire_timeout: Duration {
        var: "DATABASE_ACQUIRE_TIMEOUT",
        default: "2s",
        parse: positive_duration,
    }
    /// SQLite's durability: `full` answers a write once it is on disk; `normal` syncs less
    /// often and may lose the last writes on a power loss (never on a crash of tenure)
    sqlite_synchronous: SqliteSynchronous {
        var: "SQLITE_SYNCHRONOUS",
        default: "full",
        parse: choice,
    }
    /// how long the start waits for the database
    database_startup_timeout: Duration {
        var: "DATABASE_STARTUP_TIMEOUT",
        default: "60s",
        parse: positive_duration,
    }
    /// serve `/metrics` on this address instead of the main one
    metrics_addr: Option<SocketAddr> {
        var: "METRICS_ADDR",
        default: "",
        parse: optional(socket_addr("127.0.0.1:9090")),
    }
}

/// Which user attribute identifies a user at login (`DF_LOGIN_ATTRIBUTE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttribute {
    Email,
    Username,
}

impl Choice for LoginAttribute {
    const CHOICES: &'static [(Self, &'static str)] =
        &[(Self::Email, "email"), (Self::Username, "username")];
}

impl LoginAttribute {
    pub fn as_str(self) -> &'static str {
        self.name()
    }
}

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

impl Choice for LogFormat {
    const CHOICES: &'static [(Self, &'static str)] =
        &[(Self::Json, "json"), (Self::Pretty, "pretty")];
}

/// SQLite's `synchronous` setting (`SQLITE_SYNCHRONOUS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSynchronous {
    /// Every commit is on disk before it is answered (the default).
    Full,
    /// WAL commits are synced at checkpoints: a power loss may lose the last writes.
    Normal,
}

impl Choice for SqliteSynchronous {
    const CHOICES: &'static [(Self, &'static str)] =
        &[(Self::Full, "full"), (Self::Normal, "normal")];
}

/// What a login does when the user already has `MAX_SESSIONS_PER_USER` live sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionLimitPolicy {
    /// End the least recently seen session to make room (the default).
    EvictIdle,
    /// Refuse the login with 409.
    Reject,
}

impl Choice for SessionLimitPolicy {
    const CHOICES: &'static [(Self, &'static str)] =
        &[(Self::EvictIdle, "evict_idle"), (Self::Reject, "reject")];
}

/// The token signature algorithm (`JWT_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    /// HMAC-SHA256 with a shared secret (DreamFactory's default).
    Hs256,
    /// Ed25519 signatures, verifiable by anyone with the JWKS.
    EdDsa,
}

impl Choice for JwtAlgorithm {
    const CHOICES: &'static [(Self, &'static str)] =
        &[(Self::Hs256, "HS256"), (Self::EdDsa, "EdDSA")];
}

/// An invalid configuration value; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup`, so tests can supply variables without touching
    /// the process environment. Unset and empty values take the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let config = Self::read_each(&lookup)?;
        config.check_combinations()?;
        Ok(config)
    }

    /// The rules that span settings.
    fn check_combinations(&self) -> Result<(), ConfigError> {
        let invalid = |var, message: &str| {
            Err(ConfigError {
                var,
                message: message.into(),
            })
        };
        match self.jwt_algorithm {
            JwtAlgorithm::Hs256 if self.jwt_private_key_file.is_some() => invalid(
                "JWT_PRIVATE_KEY_FILE",
                "is an Ed25519 key: set JWT_ALGORITHM=EdDSA to use it",
            ),
            JwtAlgorithm::EdDsa if self.jwt_secret.is_some() => invalid(
                "JWT_SECRET",
                "is an HS256 secret: with JWT_ALGORITHM=EdDSA use JWT_PRIVATE_KEY_FILE, or nothing",
            ),
            _ => Ok(()),
        }
    }

    /// The effective settings with durations in seconds and secrets left out or masked: what
    /// `tenure config check` prints and what administrators see in the environment endpoint.
    pub fn public_settings(&self) -> serde_json::Value {
        let mut view = self.public_each();
        // What the secrets imply, never the secrets.
        view.insert("database_backend".into(), json!(self.database_kind()));
        let configured = self.jwt_secret.is_some() || self.jwt_private_key_file.is_some();
        view.insert(
            "jwt_key_source".into(),
            json!(if configured { "configured" } else { "database" }),
        );
        view.insert(
            "stored_keys_encrypted".into(),
            json!(self.key_encryption_secret.is_some()),
        );
        serde_json::Value::Object(view)
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

#[cfg(test)]
mod tests;
