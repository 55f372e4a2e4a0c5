//! The OpenAPI document: served, identical to the checked-in `openapi.json`, and covering every
//! route the router serves.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::*;

fn checked_in() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");
    let text = std::fs::read_to_string(path).expect("openapi.json is checked in");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// Every API path given to `.route("…"` in the `.rs` files of `src/http/`. The account page
/// (`/account…`, `src/http/account.rs`) is HTML for people, not API, and is not documented.
fn routed_paths() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/http");
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/http") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(path).expect("source");
        for piece in text.split(".route(").skip(1) {
            if let Some(path) = piece
                .trim_start()
                .strip_prefix('"')
                .and_then(|p| p.split('"').next())
            {
                if path != "/account" && !path.starts_with("/account/") {
                    paths.push(path.to_owned());
                }
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_checked_in_one_and_covers_every_route() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app
        .request(Method::GET, "/api/v2/openapi.json")
        .send()
        .await
        .expect("request");
    let (status, served) = status_json(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served["openapi"], "3.1.0");
    assert!(
        served == checked_in(),
        "openapi.json is stale: regenerate it with `cargo run -- openapi > openapi.json`"
    );

    let documented = served["paths"].as_object().expect("paths");
    let routes = routed_paths();
    assert!(routes.len() >= 15, "found only {routes:?}");
    for route in &routes {
        assert!(
            documented.contains_key(route),
            "{route} is served but not documented"
        );
    }
    for path in documented.keys() {
        assert!(routes.contains(path), "{path} is documented but not served");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_response_is_documented_with_the_error_shape() {
    let doc = checked_in();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('4') || (status.starts_with('5') && path.starts_with("/api"))
                {
                    let schema = &response["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ErrorBody",
                        "{method} {path} {status} is not documented as ErrorBody"
                    );
                }
            }
        }
    }
}
