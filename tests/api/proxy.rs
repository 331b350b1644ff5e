//! A TCP proxy the test controls, between guise and PostgreSQL: it can reset every
//! connection through it (as a restart, a failover or a network fault does), refuse
//! new ones (an outage), and cut one connection just after the server answered its
//! `COMMIT` (the change committed; guise never hears so), without touching the shared
//! PostgreSQL server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub port: u16,
    reset: watch::Sender<u64>,
    down: Arc<AtomicBool>,
    cut_after_commit: Arc<std::sync::Mutex<Option<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listen on 127.0.0.1:0 and forward to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let (reset, _) = watch::channel(0u64);
        let down = Arc::new(AtomicBool::new(false));
        let cut_after_commit = Arc::new(std::sync::Mutex::new(None));
        let (resets, refusing, armed) = (reset.clone(), Arc::clone(&down), Arc::clone(&cut_after_commit));
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut reset = resets.subscribe();
                let (upstream, armed) = (upstream.clone(), Arc::clone(&armed));
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = relay(inbound, outbound, armed) => {}
                        _ = reset.changed() => {}
                    }
                });
            }
        });
        TcpProxy { port, reset, down, cut_after_commit, task }
    }

    /// The next connection to send a `COMMIT` after sending `marker` (a value the
    /// transaction writes) is closed once the server has answered that `COMMIT`, before
    /// the answer reaches guise: the transaction committed, and guise sees its
    /// connection lost.
    pub fn cut_after_commit_of(&self, marker: &str) {
        *self.cut_after_commit.lock().unwrap() = Some(marker.as_bytes().to_vec());
    }

    /// Drop every connection through the proxy (both sides see it closed).
    pub fn reset_all(&self) {
        self.reset.send_modify(|generation| *generation += 1);
    }

    /// Refuse (close at once) every new connection while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// `url` (a PostgreSQL URL) through this proxy.
    pub fn route(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a database URL");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(self.port)).expect("port");
        url.to_string()
    }

    /// [`TcpProxy::route`] without TLS (`sslmode=disable`), so that the proxy sees the
    /// protocol's messages (for [`TcpProxy::cut_after_commit_of`]).
    pub fn route_in_clear(&self, url: &str) -> String {
        let mut url = url::Url::parse(&self.route(url)).expect("a database URL");
        url.query_pairs_mut().append_pair("sslmode", "disable");
        url.to_string()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.reset_all();
        self.task.abort();
    }
}

/// Copy both ways until either side closes; while `armed` with a marker, the first
/// `COMMIT` (a simple query: PostgreSQL's `Q` message holds the text) after the marker
/// went by on this connection disarms it and ends the connection as soon as the
/// server's answer arrives, unforwarded.
async fn relay(inbound: TcpStream, outbound: TcpStream, armed: Arc<std::sync::Mutex<Option<Vec<u8>>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_server, mut to_server) = outbound.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let cutting = Arc::clone(&cut);
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut marked = false;
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let sent = &buf[..n];
            {
                let mut armed = armed.lock().unwrap();
                if let Some(marker) = armed.as_ref() {
                    marked |= sent.windows(marker.len()).any(|w| w == marker.as_slice());
                    if marked && sent.windows(6).any(|w| w == b"COMMIT") {
                        *armed = None;
                        cutting.store(true, Ordering::SeqCst);
                    }
                }
            }
            if to_server.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut.load(Ordering::SeqCst) {
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

/// `host:port` of the test PostgreSQL server.
pub fn postgres_address() -> String {
    let url = url::Url::parse(&crate::helpers::postgres_admin_url()).expect("GUISE_TEST_POSTGRES_URL");
    format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432))
}
