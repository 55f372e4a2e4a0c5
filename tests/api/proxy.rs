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
//!
//! Other faults (`set_fault`, cleared by `clear`): added latency on every chunk, a reset in the
//! middle of a statement (half of the chunk is forwarded, then both connections are closed
//! abruptly with RST), a slow trickle (a few bytes at a time). A black hole is a hold that is
//! never healed during the test: accepted connections and statements get no answer. A delay
//! ends at once when the fault is cleared.

use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// The fault applied to traffic that is not held.
    fault: watch::Sender<Fault>,
}

/// A fault the proxy applies to every chunk it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Each chunk waits this long before it is forwarded.
    Latency(Duration),
    /// The next chunk from tenure is cut in half and both connections are reset.
    Reset,
    /// Chunks are forwarded `TRICKLE_BYTES` at a time, `TRICKLE_PAUSE` apart.
    Trickle,
}

const TRICKLE_BYTES: usize = 4;
const TRICKLE_PAUSE: Duration = Duration::from_millis(100);

impl FaultProxy {
    /// A proxy on an ephemeral loopback port forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let shared = Arc::new(Shared {
            held: watch::channel(false).0,
            trigger: Mutex::new(None),
            fault: watch::channel(Fault::None).0,
        });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                // Set when either direction resets the connection: the other ends too.
                let reset = Arc::new(watch::channel(false).0);
                let shared = accepting.clone();
                tokio::spawn(pump(client_read, server_write, shared, true, reset.clone()));
                tokio::spawn(pump(
                    server_read,
                    client_write,
                    accepting.clone(),
                    false,
                    reset,
                ));
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

    /// Holds all traffic from now on (a black hole while it lasts).
    pub fn hold(&self) {
        self.shared.held.send_replace(true);
    }

    /// Applies `fault` to the traffic from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.fault.send_replace(fault);
    }

    /// Ends every fault and hold: traffic flows normally again.
    pub fn clear(&self) {
        self.set_fault(Fault::None);
        self.heal();
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

/// Copies one direction, chunk by chunk, waiting while the proxy holds and applying the fault.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    from_client: bool,
    reset: Arc<watch::Sender<bool>>,
) {
    let mut held = shared.held.subscribe();
    let mut fault = shared.fault.subscribe();
    let mut reset_seen = reset.subscribe();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = reset_seen.wait_for(|r| *r) => return abort(from, to),
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
        tokio::select! {
            waited = held.wait_for(|h| !h) => if waited.is_err() { break },
            _ = reset_seen.wait_for(|r| *r) => return abort(from, to),
        }
        let now = *fault.borrow_and_update();
        let written = match now {
            Fault::None => to.write_all(chunk).await,
            Fault::Latency(delay) => {
                // Cut short when the fault changes.
                let _ = tokio::time::timeout(delay, fault.changed()).await;
                to.write_all(chunk).await
            }
            Fault::Reset if from_client => {
                let _ = to.write_all(&chunk[..n / 2]).await;
                reset.send_replace(true);
                return abort(from, to);
            }
            Fault::Reset => to.write_all(chunk).await,
            Fault::Trickle => trickle(chunk, &mut to, &mut fault).await,
        };
        if written.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Writes `chunk` a few bytes at a time; the rest at once when the fault changes.
async fn trickle(
    chunk: &[u8],
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    fault: &mut watch::Receiver<Fault>,
) -> std::io::Result<()> {
    let mut rest = chunk;
    while !rest.is_empty() {
        let (piece, after) = rest.split_at(rest.len().min(TRICKLE_BYTES));
        to.write_all(piece).await?;
        rest = after;
        if tokio::time::timeout(TRICKLE_PAUSE, fault.changed())
            .await
            .is_ok()
        {
            break;
        }
    }
    to.write_all(rest).await
}

/// Closes both sockets of this direction abruptly: RST, not FIN, and nothing more written.
fn abort(from: tokio::net::tcp::OwnedReadHalf, to: tokio::net::tcp::OwnedWriteHalf) {
    let _ = from.as_ref().set_zero_linger();
    let _ = to.as_ref().set_zero_linger();
    to.forget();
}
