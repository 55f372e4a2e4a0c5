//! The parsed configuration: defaults, errors naming their variable, the public view's shape,
//! secrets kept out of it.

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

#[test]
fn every_default_parses_and_every_variable_is_declared_once() {
    let mut seen = std::collections::HashSet::new();
    for setting in SETTINGS {
        assert!(
            seen.insert(setting.var),
            "{} is declared twice",
            setting.var
        );
        assert!(!setting.help().is_empty(), "{} has no help", setting.var);
        let c = config(&[(setting.var, setting.default)]);
        assert!(c.is_ok(), "{}={:?}: {c:?}", setting.var, setting.default);
    }
}

#[test]
fn the_public_view_keeps_its_shape() {
    let c = config(&[]).unwrap();
    let view = c.public_settings();
    let mut keys: Vec<&str> = view
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "allow_forever_sessions",
            "allow_open_registration",
            "cookie_secure",
            "cors_allowed_origins",
            "database_acquire_timeout_seconds",
            "database_backend",
            "database_startup_timeout_seconds",
            "database_url",
            "header_read_timeout_seconds",
            "jwks_cache_ttl_seconds",
            "jwt_algorithm",
            "jwt_key_source",
            "jwt_leeway_seconds",
            "jwt_refresh_ttl_seconds",
            "jwt_ttl_seconds",
            "key_rotation_interval_seconds",
            "last_seen_resolution_seconds",
            "listen_addr",
            "log_format",
            "login_attribute",
            "login_backoff_base_seconds",
            "login_backoff_max_seconds",
            "login_failure_window_seconds",
            "login_max_failures",
            "login_max_failures_per_ip",
            "max_connections",
            "max_sessions",
            "max_sessions_per_ip",
            "max_sessions_per_user",
            "metrics_addr",
            "password_min_length",
            "purge_interval_seconds",
            "refresh_cookie_name",
            "refresh_reuse_grace_seconds",
            "request_timeout_seconds",
            "require_api_key",
            "revoked_retention_seconds",
            "session_idle_ttl_seconds",
            "session_limit_policy",
            "sqlite_synchronous",
            "stored_keys_encrypted",
            "trusted_proxies",
        ]
    );
    assert_eq!(view["jwt_ttl_seconds"], json!(86_400));
    assert_eq!(view["session_idle_ttl_seconds"], json!(null));
    assert_eq!(view["jwt_algorithm"], json!("HS256"));
    assert_eq!(view["session_limit_policy"], json!("evict_idle"));
    assert_eq!(view["listen_addr"], json!("127.0.0.1:8080"));
    assert_eq!(view["log_format"], json!(null));
    assert_eq!(view["jwt_key_source"], json!("database"));
    assert_eq!(view["stored_keys_encrypted"], json!(false));
    let c = config(&[
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ("LOG_FORMAT", "JSON"),
        ("METRICS_ADDR", "127.0.0.1:9090"),
        ("SESSION_IDLE_TTL", "2h"),
    ])
    .unwrap();
    let view = c.public_settings();
    assert_eq!(view["trusted_proxies"], json!(["10.0.0.0/8"]));
    assert_eq!(view["log_format"], json!("json"));
    assert_eq!(view["metrics_addr"], json!("127.0.0.1:9090"));
    assert_eq!(view["session_idle_ttl_seconds"], json!(7200));
}

#[test]
fn secrets_stay_out_of_the_public_view_and_errors() {
    let c = config(&[
        ("DATABASE_URL", "postgres://app:hunter2hunter2@db/tenure"),
        ("JWT_SECRET", "a-very-long-secret-of-at-least-32-bytes!!"),
        ("KEY_ENCRYPTION_SECRET", "another-secret-value"),
    ])
    .unwrap();
    let shown = c.public_settings().to_string();
    for secret in ["hunter2", "a-very-long-secret", "another-secret-value"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(!shown.to_ascii_lowercase().contains("secret"), "{shown}");
    let printed = format!("{c:?}");
    assert!(!printed.contains("another-secret-value"), "{printed}");
    for setting in SETTINGS.iter().filter(|s| s.secret) {
        let value = "bad:hunter2";
        let err = config(&[(setting.var, value)]).unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{}: {err}", setting.var);
    }
}
