//! A TCP proxy between tenure and PostgreSQL that the tests can partition.
//!
//! While the proxy holds, nothing crosses it in either direction: what either side sends waits
//! (in the proxy and then in the kernel's buffers), as it does in a real partition while TCP
//! retransmits; when it heals, everything held is delivered in order. That is the dangerous
//! kind of partition: a statement sent during it reaches the database after all, late.
//!
//! A partition can start at a chosen moment: `hold_on(pattern)` makes the proxy hold from the
//! first client chunk that contains `pattern` (that chunk included), so a test can catch one
//! particular statement (its text travels in the protocol's Parse message) in the partition.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    /// Whether traffic is held.
    held: watch::Sender<bool>,
    /// Hold from the first client chunk containing this.
    trigger: Mutex<Option<Vec<u8>>>,
}

impl FaultProxy {
    /// A proxy on an ephemeral loopback port forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            held: watch::channel(false).0,
            trigger: Mutex::new(None),
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, accepting.clone(), true));
                tokio::spawn(pump(server_read, client_write, accepting.clone(), false));
            }
        });
        FaultProxy { port, shared, task }
    }

    /// The PostgreSQL URL `url` rewritten to go through this proxy.
    pub fn route(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_start = authority.rfind('@').map_or(0, |at| at + 1);
        format!(
            "{scheme}://{}127.0.0.1:{}/{path}",
            &authority[..host_start],
            self.port
        )
    }

    /// Holds all traffic from the first client chunk containing `pattern`.
    pub fn hold_on(&self, pattern: &str) {
        *self.shared.trigger.lock().expect("trigger") = Some(pattern.as_bytes().to_vec());
    }

    /// Whether the proxy is holding traffic now.
    pub fn is_holding(&self) -> bool {
        *self.shared.held.borrow()
    }

    /// Ends the partition: everything held is delivered.
    pub fn heal(&self) {
        *self.shared.trigger.lock().expect("trigger") = None;
        self.shared.held.send_replace(false);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `host:port` of a PostgreSQL URL.
pub fn upstream_of(url: &str) -> String {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split('/').next().expect("authority");
    authority.rsplit('@').next().expect("host").to_owned()
}

/// Copies one direction, chunk by chunk, waiting while the proxy holds.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    from_client: bool,
) {
    let mut held = shared.held.subscribe();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buffer[..n];
        if from_client {
            let mut trigger = shared.trigger.lock().expect("trigger");
            let fires = trigger
                .as_deref()
                .is_some_and(|p| chunk.windows(p.len()).any(|w| w == p));
            if fires {
                *trigger = None;
                shared.held.send_replace(true);
            }
        }
        if held.wait_for(|h| !h).await.is_err() {
            break;
        }
        if to.write_all(chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
