//! Configuration parsing never panics: every value either parses or names its variable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tenure::config::{parse_duration, Config, SETTINGS};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_duration(text);
    // The input as the value of each variable in turn.
    for setting in SETTINGS {
        let name = setting.var;
        if let Err(err) = Config::from_lookup(|k| (k == name).then(|| text.to_owned())) {
            assert!(err.to_string().contains(name), "{err} does not name {name}");
        }
    }
});
