//! A small SMTP server on 127.0.0.1 that keeps what it is sent (`EHLO`/`HELO`, `MAIL`, `RCPT`,
//! `DATA`, `RSET`, `NOOP`, `QUIT`; no TLS, no authentication): the mail sink of
//! `janua bench --only mail` and of the integration tests. It can answer the next transactions
//! with a temporary failure (`451`) to exercise retries.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// One message as the sink received it.
#[derive(Clone, Debug)]
pub struct Envelope {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message (headers and body), dot-unstuffed, lines ending in CRLF.
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Envelope>>,
    arrived: Notify,
    /// Transactions still to refuse with `451`.
    fail_next: AtomicUsize,
    connections: AtomicUsize,
}

/// A running sink; stopped (every connection closed) when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    /// Starts on an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on(0).await
    }

    /// Starts on `port` of 127.0.0.1 (0: any).
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        if let Ok((stream, _)) = accepted {
                            s.connections.fetch_add(1, Ordering::Relaxed);
                            conns.spawn(converse(stream, s.clone()));
                        }
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `smtp://127.0.0.1:PORT?tls=none`: what `JANUA_SMTP_URL` is set to.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port())
    }

    /// Every message received so far.
    pub fn received(&self) -> Vec<Envelope> {
        self.shared.received.lock().expect("the sink's lock").clone()
    }

    /// How many messages were received.
    pub fn count(&self) -> usize {
        self.shared.received.lock().expect("the sink's lock").len()
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Refuses the next `n` transactions with `451` (a temporary failure).
    pub fn fail_next(&self, n: usize) {
        self.shared.fail_next.store(n, Ordering::Relaxed);
    }

    /// Waits until at least `n` messages arrived or `timeout` passed; whether they did.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.shared.arrived.notified();
            if self.count() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.count() >= n;
            }
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection until `QUIT` or the client goes.
async fn converse(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if reply(&mut write, "220 janua-sink ESMTP\r\n").await.is_err() {
        return;
    }
    let (mut from, mut to): (Option<String>, Vec<String>) = (None, Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let verb = command.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" => "250-janua-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n".to_owned(),
            "HELO" => "250 janua-sink\r\n".to_owned(),
            "MAIL" => {
                let refuse = shared
                    .fail_next
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok();
                if refuse {
                    "451 4.3.0 try again later\r\n".to_owned()
                } else {
                    from = Some(address_of(&command));
                    to.clear();
                    "250 2.1.0 OK\r\n".to_owned()
                }
            }
            "RCPT" if from.is_some() => {
                to.push(address_of(&command));
                "250 2.1.5 OK\r\n".to_owned()
            }
            "DATA" if from.is_some() && !to.is_empty() => {
                if reply(&mut write, "354 end data with <CR><LF>.<CR><LF>\r\n").await.is_err() {
                    return;
                }
                let Some(data) = read_data(&mut lines).await else { return };
                let envelope = Envelope {
                    mail_from: from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut to),
                    data,
                };
                shared.received.lock().expect("the sink's lock").push(envelope);
                shared.arrived.notify_waiters();
                "250 2.0.0 queued\r\n".to_owned()
            }
            "RSET" => {
                (from, to) = (None, Vec::new());
                "250 2.0.0 OK\r\n".to_owned()
            }
            "NOOP" => "250 2.0.0 OK\r\n".to_owned(),
            "QUIT" => {
                let _ = reply(&mut write, "221 2.0.0 bye\r\n").await;
                return;
            }
            "RCPT" | "DATA" => "503 5.5.1 bad sequence of commands\r\n".to_owned(),
            _ => "502 5.5.2 command not recognized\r\n".to_owned(),
        };
        if reply(&mut write, &answer).await.is_err() {
            return;
        }
    }
}

async fn reply(w: &mut tokio::net::tcp::OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    w.write_all(text.as_bytes()).await
}

/// The address between `<` and `>` of `MAIL FROM:<…>` / `RCPT TO:<…>`.
fn address_of(command: &str) -> String {
    let start = command.find('<').map_or(0, |i| i + 1);
    let end = command[start..].find('>').map_or(command.len(), |i| start + i);
    command[start..end].to_owned()
}

/// Reads a `DATA` body up to the line holding only `.`, undoing dot-stuffing.
async fn read_data(lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await.ok()? == 0 {
            return None;
        }
        if line == b".\r\n" || line == b".\n" {
            return Some(data);
        }
        let unstuffed = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        data.extend_from_slice(unstuffed);
    }
}
