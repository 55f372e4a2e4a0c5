//! `GET /health/live` and `GET /health/ready`: the probes Docker and Kubernetes call.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_backends;
use crate::helpers::*;

both_backends! {
    async fn liveness_answers_200_json(backend) {
        let app = spawn_app(backend).await;
        let response = app.request(Method::GET, "/health/live").send().await.expect("live");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ok", "{body}");
    }

    async fn readiness_answers_200_with_the_database_ok(backend) {
        let app = spawn_app(backend).await;
        let response = app.request(Method::GET, "/health/ready").send().await.expect("ready");
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let (status, body) = status_json(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "ready", "{body}");
        assert_eq!(body["checks"]["database"], "ok", "{body}");
        let expected = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(body["checks"]["backend"], json!(expected), "{body}");
    }

    async fn probes_need_no_token_and_refuse_other_methods(backend) {
        let app = spawn_app(backend).await;
        // A dead token does not matter to a probe.
        for path in ["/health/live", "/health/ready"] {
            let response = app.request(Method::GET, path)
                .bearer_auth("not.a.token")
                .send().await.expect("probe");
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let response = app.request(Method::POST, path).send().await.expect("probe");
            assert_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
        }
    }
}
