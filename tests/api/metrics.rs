//! `GET /metrics`: Prometheus text whose counters move with what clients do. The recorder is
//! process-global (all tests' servers share it), so counters are compared before and after,
//! never as absolute values.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

/// One sample: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: its samples and the `# TYPE` of each family.
#[derive(Debug)]
struct Exposition {
    samples: Vec<Sample>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    /// The sum of the samples of `name` whose labels include all of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{k="v",...}` (with `\\`, `\"` and `\n` escapes); answers the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("no {")?;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let key = &rest[..eq];
        if !is_metric_name(key) || key.contains(':') {
            return Err(format!("bad label name {key:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c @ ('\\' | '"'))) => value.push(c),
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        labels.insert(key.to_owned(), value);
        rest = &rest[end + 1..];
        if !(rest.starts_with(',') || rest.starts_with('}')) {
            return Err("junk after a label".into());
        }
    }
}

/// Parses the Prometheus text format strictly enough: every line is blank, a comment
/// (`# TYPE`/`# HELP` well formed), or `name{labels} value [timestamp]` with a float value.
fn parse(text: &str) -> Exposition {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.split_whitespace().collect();
            match words.first() {
                Some(&"TYPE") => {
                    assert_eq!(words.len(), 3, "bad TYPE line: {line:?}");
                    assert!(is_metric_name(words[1]), "bad TYPE line: {line:?}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&words[2]),
                        "bad TYPE line: {line:?}"
                    );
                    types.insert(words[1].to_owned(), words[2].to_owned());
                }
                Some(&"HELP") => assert!(words.len() >= 2, "bad HELP line: {line:?}"),
                _ => {}
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let name = &line[..name_end];
        assert!(is_metric_name(name), "bad metric name in {line:?}");
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).unwrap_or_else(|e| panic!("{e}: {line:?}"))
        } else {
            (BTreeMap::new(), &line[name_end..])
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        assert!(
            rest.starts_with(' ') && (fields.len() == 1 || fields.len() == 2),
            "not `name{{labels}} value`: {line:?}"
        );
        let value =
            parse_value(fields[0]).unwrap_or_else(|| panic!("value is not a float: {line:?}"));
        if let Some(ts) = fields.get(1) {
            assert!(ts.parse::<i64>().is_ok(), "bad timestamp: {line:?}");
        }
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Exposition { samples, types }
}

/// GETs `/metrics` at `url` and parses it.
async fn scrape_url(client: &reqwest::Client, url: &str) -> (Exposition, String) {
    let response = client.get(url).send().await.expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.expect("body");
    (parse(&text), text)
}

async fn scrape(app: &TestApp) -> (Exposition, String) {
    scrape_url(&app.client, &app.url("/metrics")).await
}

/// The family a sample belongs to (histogram series carry suffixes).
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name)
}

both_backends! {
    async fn metrics_parse_as_prometheus_text_with_every_family_typed(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        // Something for every family: a login (hashing), a refresh, requests.
        let token = app.login_token("jane@example.com", true).await;
        app.refresh_token(&token).await;
        let (metrics, text) = scrape(&app).await;
        assert!(!metrics.samples.is_empty(), "{text}");
        for (name, kind) in [
            ("tenure_http_requests_total", "counter"),
            ("tenure_http_request_duration_seconds", "histogram"),
            ("tenure_logins_total", "counter"),
            ("tenure_refreshes_total", "counter"),
            ("tenure_active_sessions", "gauge"),
            ("tenure_db_pool_connections", "gauge"),
            ("tenure_password_hash_queue", "gauge"),
            ("tenure_password_hash_seconds", "histogram"),
        ] {
            assert_eq!(metrics.types.get(name).map(String::as_str), Some(kind),
                "no `# TYPE {name} {kind}` in:\n{text}");
        }
        // Every sample belongs to a typed family.
        for sample in &metrics.samples {
            assert!(metrics.types.contains_key(family(&sample.name)), "untyped {sample:?}");
        }
        // Latency histograms are per route and have buckets up to +Inf.
        let buckets: Vec<&Sample> = metrics
            .matching("tenure_http_request_duration_seconds_bucket",
                      &[("route", "/api/v2/user/session"), ("method", "POST")])
            .collect();
        assert!(buckets.iter().any(|s| s.labels.get("le").map(String::as_str) == Some("+Inf")),
            "{text}");
        // The pool has both states.
        for state in ["in_use", "idle"] {
            assert_eq!(metrics.matching("tenure_db_pool_connections", &[("state", state)]).count(),
                1, "{text}");
        }
        assert!(metrics.sum("tenure_active_sessions", &[]) >= 1.0, "{text}");
    }

    async fn counters_move_with_logins_refreshes_replays_and_failures(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let (before, _) = scrape(&app).await;

        // A login, a failed login, a refresh, and a replay of the replaced token past the grace.
        let first = app.login_token("jane@example.com", true).await;
        assert_error(app.login("jane@example.com", "Wrong-Password-1", true).await,
            StatusCode::UNAUTHORIZED).await;
        let second = app.refresh_token(&first).await;
        app.clock.advance(11);
        let (_, reason) = assert_error(app.refresh(&first).await, StatusCode::UNAUTHORIZED).await;
        assert_eq!(reason, "token_reuse");
        let _ = second;

        let (after, text) = scrape(&app).await;
        let delta = |name: &str, labels: &[(&str, &str)]| {
            after.sum(name, labels) - before.sum(name, labels)
        };
        assert!(delta("tenure_logins_total", &[("outcome", "success")]) >= 1.0, "{text}");
        assert!(delta("tenure_logins_total", &[("outcome", "invalid_credentials")]) >= 1.0,
            "{text}");
        assert!(delta("tenure_refreshes_total", &[("outcome", "success")]) >= 1.0, "{text}");
        assert!(delta("tenure_refreshes_total", &[("outcome", "refused"), ("reason", "token_reuse")])
            >= 1.0, "{text}");
        // Requests by route and status.
        assert!(delta("tenure_http_requests_total",
            &[("method", "POST"), ("route", "/api/v2/user/session"), ("status", "200")]) >= 1.0,
            "{text}");
        assert!(delta("tenure_http_requests_total",
            &[("method", "POST"), ("route", "/api/v2/user/session"), ("status", "401")]) >= 1.0,
            "{text}");
        assert!(delta("tenure_http_requests_total",
            &[("method", "PUT"), ("route", "/api/v2/user/session"), ("status", "200")]) >= 1.0,
            "{text}");
        assert!(delta("tenure_http_requests_total",
            &[("method", "PUT"), ("route", "/api/v2/user/session"), ("status", "401")]) >= 1.0,
            "{text}");
        assert!(delta("tenure_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/api/v2/user/session")]) >= 2.0, "{text}");
        assert!(delta("tenure_password_hash_seconds_count", &[]) >= 2.0, "{text}");
    }

    async fn routes_are_templates_never_tokens_or_query_strings(backend) {
        let app = spawn_app(backend).await;
        app.create_user("jane@example.com", false).await;
        let token = app.login_token("jane@example.com", true).await;
        let other = app.login_token("jane@example.com", true).await;
        let other_sid = claims(&other)["sid"].as_str().unwrap().to_owned();

        // The token in the query string, a session id in the path, a token in an unknown path.
        let response = app.request(Method::GET, "/api/v2/user/session")
            .query(&[("session_token", &token)])
            .send().await.expect("get");
        assert_eq!(response.status(), StatusCode::OK);
        let response = app.session_call(Method::DELETE,
            &format!("/api/v2/user/sessions/{other_sid}"), &token).await;
        assert!(response.status().is_success(), "{}", response.status());
        let response = app.request(Method::GET, &format!("/api/v2/nothing/{token}?x=secret-query"))
            .send().await.expect("get");
        assert_error(response, StatusCode::NOT_FOUND).await;

        let (metrics, text) = scrape(&app).await;
        for part in token.split('.').chain(other.split('.')).chain([other_sid.as_str()]) {
            assert!(!text.contains(part), "a token or session id is in the metrics:\n{text}");
        }
        assert!(!text.contains("secret-query"), "{text}");
        let routes: Vec<&str> = metrics.samples.iter()
            .filter(|s| s.name == "tenure_http_requests_total")
            .filter_map(|s| s.labels.get("route").map(String::as_str))
            .collect();
        assert!(routes.contains(&"/api/v2/user/session"), "{routes:?}");
        assert!(routes.contains(&"/api/v2/user/sessions/{id}"), "{routes:?}");
        for route in &routes {
            assert!(!route.contains('?'), "a query string in a route: {route}");
            assert!(*route == "unmatched" || route.starts_with('/'), "{route}");
            assert!(!route.starts_with("/api/v2/nothing"), "a raw unknown path: {route}");
        }
        // Methods are real methods, statuses are three digits.
        for sample in metrics.samples.iter().filter(|s| s.name == "tenure_http_requests_total") {
            let status = &sample.labels["status"];
            assert!(status.len() == 3 && status.parse::<u16>().is_ok(), "{sample:?}");
            assert!(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
                .contains(&sample.labels["method"].as_str()), "{sample:?}");
        }
    }

    async fn a_separate_metrics_address_takes_metrics_off_the_main_one(backend) {
        let port = free_port();
        let metrics_addr = format!("127.0.0.1:{port}");
        let app = spawn_app_with(backend, TestConfig::new().var("METRICS_ADDR", &metrics_addr)).await;
        app.create_user("jane@example.com", false).await;
        app.login_token("jane@example.com", true).await;

        // Not on the main address: a JSON 404 like any unknown route.
        let response = app.request(Method::GET, "/metrics").send().await.expect("get");
        assert_error(response, StatusCode::NOT_FOUND).await;

        // On the metrics address (bound as the server starts: poll briefly).
        let client = reqwest::Client::new();
        let url = format!("http://{metrics_addr}/metrics");
        let what = format!("something to listen on METRICS_ADDR {metrics_addr}");
        poll_until(&what, std::time::Duration::from_secs(5), async || {
            client.get(&url).send().await.map(drop).map_err(|e| e.to_string())
        }).await;
        let (metrics, text) = scrape_url(&client, &url).await;
        assert!(metrics.types.contains_key("tenure_logins_total"), "{text}");
        assert!(metrics.sum("tenure_logins_total", &[("outcome", "success")]) >= 1.0, "{text}");
        // And only metrics there: the API is not served on it.
        let response = client.post(format!("http://{metrics_addr}/api/v2/user/session"))
            .json(&json!({ "email": "jane@example.com", "password": PASSWORD }))
            .send().await.expect("post");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let body = response.text().await.expect("body");
        assert!(!body.contains("session_token"), "{body}");
        let response = client.get(format!("http://{metrics_addr}/health/live"))
            .send().await.expect("get");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
