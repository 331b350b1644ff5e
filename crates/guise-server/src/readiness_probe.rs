//! `guise ready`: a `GET /readyz` against the local server over plain TCP, so a
//! container healthcheck needs nothing but the guise binary.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The address to probe for a `listen` setting: a wildcard host means this machine.
fn target(listen: &str) -> Result<SocketAddr, String> {
    let mut addr = listen
        .to_socket_addrs()
        .map_err(|e| format!("listen address {listen}: {e}"))?
        .next()
        .ok_or_else(|| format!("listen address {listen} resolves to nothing"))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    Ok(addr)
}

/// `Ok` when the server on `listen` answers `/readyz` with 200.
pub fn probe(listen: &str) -> Result<(), String> {
    let addr = target(listen)?;
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    write!(stream, "GET /readyz HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).map_err(|e| format!("{addr}: {e}"))?;
    let status_line = String::from_utf8_lossy(&head[..read]);
    match status_line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("{addr}/readyz answered {status}")),
        None => Err(format!("{addr}/readyz did not answer HTTP")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_probed_on_loopback() {
        assert_eq!(target("0.0.0.0:8080").ok(), "127.0.0.1:8080".parse().ok());
        assert_eq!(target("[::]:8080").ok(), "[::1]:8080".parse().ok());
        assert_eq!(target("10.1.2.3:9").ok(), "10.1.2.3:9".parse().ok());
        assert!(target("no port").is_err());
    }
}
