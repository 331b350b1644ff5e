//! A TCP proxy the test controls, between guise and PostgreSQL: it can reset every
//! connection through it (as a restart, a failover or a network fault does), and refuse
//! new ones (an outage), without touching the shared PostgreSQL server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpProxy {
    pub port: u16,
    reset: watch::Sender<u64>,
    down: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listen on 127.0.0.1:0 and forward to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let port = listener.local_addr().expect("proxy address").port();
        let (reset, _) = watch::channel(0u64);
        let down = Arc::new(AtomicBool::new(false));
        let (resets, refusing) = (reset.clone(), Arc::clone(&down));
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if refusing.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut reset = resets.subscribe();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(&upstream).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = reset.changed() => {}
                    }
                });
            }
        });
        TcpProxy { port, reset, down, task }
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
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.reset_all();
        self.task.abort();
    }
}

/// `host:port` of the test PostgreSQL server.
pub fn postgres_address() -> String {
    let url = url::Url::parse(&crate::helpers::postgres_admin_url()).expect("GUISE_TEST_POSTGRES_URL");
    format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432))
}
