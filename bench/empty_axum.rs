//! Baseline: an empty axum handler on the same runtime settings as tenure, driven by the same
//! load generator. `cargo run --release --example empty_axum -- 127.0.0.1:9999`.

use axum::routing::get;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9999".into());
    let app = Router::new().route("/", get(|| async { "{}" }));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
