//! What guise's outbox delivers to, started by the tests on 127.0.0.1:0: an HTTP
//! receiver that records each request (and can be told to fail), and an SMTP sink that
//! speaks enough of RFC 5321 for a real client (lettre) and keeps each message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// An HTTP/1.1 receiver. Answers `500` to the first `fail_first` requests, then `200`.
#[derive(Clone)]
pub struct HttpReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    failures_left: Arc<Mutex<usize>>,
}

impl HttpReceiver {
    pub async fn start(fail_first: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let receiver = HttpReceiver {
            url,
            received: Arc::new(Mutex::new(Vec::new())),
            failures_left: Arc::new(Mutex::new(fail_first)),
        };
        let r = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let r = r.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let mut headers = HashMap::new();
                    loop {
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            headers.insert(name.trim().to_lowercase(), value.trim().to_owned());
                        }
                    }
                    let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
                    let mut body = vec![0u8; length];
                    stream.read_exact(&mut body).await.unwrap();
                    let fail = {
                        let mut left = r.failures_left.lock().unwrap();
                        let fail = *left > 0;
                        *left = left.saturating_sub(1);
                        fail
                    };
                    r.received.lock().unwrap().push(Received {
                        path,
                        headers,
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                    let status = if fail { "500 Internal Server Error" } else { "200 OK" };
                    let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    let _ = stream.get_mut().write_all(answer.as_bytes()).await;
                    let _ = stream.get_mut().shutdown().await;
                });
            }
        });
        receiver
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Wait (up to 20 s) until `done` holds for what was received.
    pub async fn wait_for(&self, what: &str, done: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..200 {
            let received = self.received();
            if done(&received) {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {what}: {:#?}", self.received());
    }
}

/// One message as the SMTP sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA, dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// A header's value (unfolded), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ").replace("\r\n\t", " ");
        head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    /// The body (after the header block), with quoted-printable soft breaks undone.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        body.replace("=\r\n", "").replace("=3D", "=")
    }
}

/// An SMTP server that accepts every message and keeps it.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = SmtpSink { port: listener.local_addr().unwrap().port(), mails: Arc::new(Mutex::new(Vec::new())) };
        let mails = Arc::clone(&sink.mails);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mails = Arc::clone(&mails);
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    let reply = |s: &'static str| s.as_bytes();
                    stream.get_mut().write_all(reply("220 sink.test ESMTP\r\n")).await.unwrap();
                    let (mut from, mut to) = (String::new(), Vec::new());
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let command = line.trim_end().to_owned();
                        let upper = command.to_uppercase();
                        let answer: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                            reply("250 sink.test\r\n")
                        } else if upper.starts_with("MAIL FROM:") {
                            from = command[10..].trim().to_owned();
                            reply("250 OK\r\n")
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(command[8..].trim().to_owned());
                            reply("250 OK\r\n")
                        } else if upper == "DATA" {
                            stream.get_mut().write_all(reply("354 go ahead\r\n")).await.unwrap();
                            let mut data = String::new();
                            loop {
                                let mut line = String::new();
                                if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                            }
                            let mail = Mail { from: from.clone(), to: std::mem::take(&mut to), data };
                            mails.lock().unwrap().push(mail);
                            reply("250 queued\r\n")
                        } else if upper == "QUIT" {
                            let _ = stream.get_mut().write_all(reply("221 bye\r\n")).await;
                            return;
                        } else if upper == "RSET" || upper == "NOOP" {
                            reply("250 OK\r\n")
                        } else {
                            reply("502 not implemented\r\n")
                        };
                        stream.get_mut().write_all(answer).await.unwrap();
                    }
                });
            }
        });
        sink
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    pub async fn wait_for(&self, count: usize) -> Vec<Mail> {
        for _ in 0..200 {
            let mails = self.mails();
            if mails.len() >= count {
                return mails;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out waiting for {count} mails: {:#?}", self.mails());
    }
}
