//! Request extraction never panics: query strings and bodies (JSON or form) parse or give a
//! 4xx error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure::http::extract::{parse_body, Query};
use tenure::http::session::LoginBody;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(query) = Query::parse(Some(text)) {
            let _ = query.get("session_token");
            let _ = query.flag("login");
            let _ = query.param::<i64>("user_id");
        }
    }
    for is_form in [false, true] {
        if let Err(err) = parse_body::<LoginBody>(data, is_form) {
            assert!(err.status.is_client_error(), "{}", err.status);
        }
        if let Err(err) = parse_body::<serde_json::Value>(data, is_form) {
            assert!(err.status.is_client_error(), "{}", err.status);
        }
    }
});
