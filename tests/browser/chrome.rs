//! Headless Chromium through chromedriver. Each test starts its own chromedriver on a free
//! port, in its own process group (so the browsers under it end with it, even when a test
//! panics), and opens one WebDriver session per browser profile: a fresh `--user-data-dir`,
//! so two profiles share no cookies and are two devices to tenure.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use crate::helpers::{free_port, try_poll_until};

const INSTALL_HINT: &str = "The browser tests need Chromium and its WebDriver. Install them with \
     `apt-get install -y chromium chromium-driver` (Debian/Ubuntu, as root; `bash .ci/run` does \
     this when they are missing), or set CHROMIUM and CHROMEDRIVER to the paths of a Chromium \
     (or Chrome) binary and a matching chromedriver.";

/// The flags every profile's Chromium runs with: headless, no sandbox (CI runs as root), and
/// nothing that reaches the network behind the test's back.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--password-store=basic",
];

/// A desktop-sized window unless a test asks for another.
pub const DESKTOP: (u32, u32) = (1280, 900);

/// A chromedriver this test started, with the Chromium it drives.
pub struct Chrome {
    driver: Child,
    url: String,
    chromium: PathBuf,
    dir: tempfile::TempDir,
}

/// `$env`, else `default` when it exists, else the first of `names` on `PATH`.
fn find_binary(env: &str, default: &str, names: &[&str]) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{env}={} does not exist", path.display()))
        };
    }
    if Path::new(default).is_file() {
        return Ok(default.into());
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&search) {
        for name in names {
            if dir.join(name).is_file() {
                return Ok(dir.join(name));
            }
        }
    }
    Err(format!(
        "no {} found (looked at {env}, {default} and PATH)",
        names[0]
    ))
}

fn binaries() -> (PathBuf, PathBuf) {
    let chromium = find_binary(
        "CHROMIUM",
        "/usr/bin/chromium",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find_binary("CHROMEDRIVER", "/usr/bin/chromedriver", &["chromedriver"]);
    match (chromium, driver) {
        (Ok(chromium), Ok(driver)) => (chromium, driver),
        (chromium, driver) => {
            let missing: Vec<String> = [chromium.err(), driver.err()]
                .into_iter()
                .flatten()
                .collect();
            panic!("{}.\n{INSTALL_HINT}", missing.join("; "))
        }
    }
}

impl Chrome {
    /// Starts chromedriver and waits until it answers `/status` as ready.
    pub async fn start() -> Chrome {
        let (chromium, driver_bin) = binaries();
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("chromedriver.log");
        let mut last_failure = String::new();
        // The port was free a moment ago; another process may take it first: try again.
        for _ in 0..3 {
            let port = free_port();
            let mut driver = Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {}: {e}\n{INSTALL_HINT}", driver_bin.display())
                });
            let url = format!("http://127.0.0.1:{port}/");
            let http = reqwest::Client::new();
            let status = format!("{url}status");
            // Ok(Ok) ready, Ok(Err) exited (no use waiting longer), Err what /status said.
            let probe = async || -> Result<Result<(), String>, String> {
                if let Ok(Some(exit)) = driver.try_wait() {
                    return Ok(Err(format!("chromedriver exited ({exit})")));
                }
                let answer = http.get(&status).send().await.map_err(|e| e.to_string())?;
                let body: Value = answer.json().await.map_err(|e| e.to_string())?;
                if body["value"]["ready"] == true {
                    Ok(Ok(()))
                } else {
                    Err(body.to_string())
                }
            };
            let ready = try_poll_until("chromedriver to be ready", Duration::from_secs(30), probe)
                .await
                .and_then(|(outcome, _)| outcome);
            match ready {
                Ok(_) => {
                    return Chrome {
                        driver,
                        url,
                        chromium,
                        dir,
                    }
                }
                Err(why) => {
                    kill_group(&mut driver);
                    last_failure = why;
                }
            }
        }
        panic!(
            "chromedriver did not start: {last_failure}\n{}\n{INSTALL_HINT}",
            log_tail(&log)
        );
    }

    /// A new browser profile (a device): its own Chromium with an empty user-data-dir, in a
    /// desktop-sized window.
    pub async fn profile(&self, base: &str) -> Browser {
        self.start_profile(base, None).await
    }

    /// A new profile that is a phone: Chromium's mobile emulation, `width` × `height` CSS
    /// pixels, touch, and the viewport meta tag honoured.
    pub async fn phone(&self, base: &str, width: u32, height: u32) -> Browser {
        self.start_profile(base, Some((width, height))).await
    }

    async fn start_profile(&self, base: &str, phone: Option<(u32, u32)>) -> Browser {
        let profile = tempfile::tempdir_in(self.dir.path()).expect("profile dir");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let mut options = json!({ "binary": self.chromium, "args": args });
        if let Some((width, height)) = phone {
            options["mobileEmulation"] = json!({
                "deviceMetrics": {
                    "width": width, "height": height, "pixelRatio": 2.0,
                    "mobile": true, "touch": true,
                },
            });
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": options,
            // Console messages (CSP violations, script errors) for `Browser::console_errors`.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let caps: Capabilities = caps;
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "chromedriver could not start {}: {e}\n{}\n{INSTALL_HINT}",
                    self.chromium.display(),
                    log_tail(&self.dir.path().join("chromedriver.log"))
                )
            });
        Browser {
            client,
            base: base.trim_end_matches('/').to_owned(),
            _profile: profile,
        }
    }
}

impl Drop for Chrome {
    fn drop(&mut self) {
        kill_group(&mut self.driver);
    }
}

/// Ends chromedriver and every browser it started (its process group, which this test made).
fn kill_group(driver: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", driver.id())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = driver.kill();
    let _ = driver.wait();
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(30)..].join("\n");
    format!("chromedriver log ({}), last lines:\n{tail}", log.display())
}

/// One browser profile: a WebDriver session and the tenure it is pointed at.
pub struct Browser {
    pub client: Client,
    pub base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Ends the WebDriver session (its Chromium exits).
    pub async fn close(self) {
        let _ = self.client.close().await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the current page.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// The console's errors since the last call, network failures aside (a 401 answer is logged
    /// by Chromium as a failed resource; it is how a signed-out page learns it is signed out).
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("read the browser log");
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE" && e["source"] != "network")
            .map(|e| format!("{} {}", e["source"], e["message"]))
            .collect()
    }
}

/// chromedriver's `POST /session/{id}/se/log {"type": "browser"}`: the console since last read.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}
