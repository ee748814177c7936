//! Local fake peers on loopback, real TCP: an HTTP server (a warehouse API, a webhook relay, a
//! Slack webhook), an SMTP sink, both recording what they received, and a server that accepts
//! and never answers.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request an [`HttpPeer`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Arc<dyn Fn(&Received) -> (u16, String) + Send + Sync>;

/// An HTTP/1.1 server answering every request with its handler (one request per connection).
pub struct HttpPeer {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl HttpPeer {
    pub async fn start(
        handler: impl Fn(&Received) -> (u16, String) + Send + Sync + 'static,
    ) -> HttpPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log = received.clone();
        serve_each(listener, move |socket| {
            let handler = handler.clone();
            let log = log.clone();
            async move {
                let _ = read_request(socket, &handler, &log).await;
            }
        });
        HttpPeer { url, received }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// Accepts on `listener` until it fails, serving each connection on a task of its own.
fn serve_each<F, Fut>(listener: TcpListener, serve: F)
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
}

/// A server that accepts every connection and never answers: a job calling it waits in its
/// host call until cancelled (or the call times out). Counts the connections.
pub struct HangingPeer {
    pub url: String,
    accepted: Arc<AtomicUsize>,
}

impl HangingPeer {
    pub async fn start() -> HangingPeer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        serve_each(listener, move |socket| {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                let _held = socket;
                std::future::pending::<()>().await;
            }
        });
        HangingPeer { url, accepted }
    }

    /// The connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Reads a request's head (request line and headers, up to the blank line) from `socket`;
/// `None` if the connection ends first.
pub async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn read_request(
    mut socket: TcpStream,
    handler: &Handler,
    log: &Mutex<Vec<Received>>,
) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.lines();
        let mut first = lines.next()?.split_whitespace();
        let method = first.next()?.to_string();
        let target = first.next()?.to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < end + 4 + length {
            let n = socket.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
        let request = Received {
            method,
            target,
            headers,
            body,
        };
        let (status, body) = handler(&request);
        log.lock().unwrap().push(request);
        let response = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.ok()?;
        let _ = socket.shutdown().await;
        return Some(());
    }
}

/// One message an [`SmtpSink`] accepted: the envelope recipients and the DATA.
#[derive(Debug, Clone)]
pub struct Mail {
    pub recipients: Vec<String>,
    pub data: String,
}

/// A minimal SMTP server that accepts every message.
pub struct SmtpSink {
    pub port: u16,
    pub mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let log = mails.clone();
        serve_each(listener, move |socket| {
            let log = log.clone();
            async move {
                let _ = session(socket, &log).await;
            }
        });
        SmtpSink { port, mails }
    }

    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }
}

async fn session(socket: TcpStream, log: &Mutex<Vec<Mail>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut recipients = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            recipients.push(line[8..].trim().trim_matches(['<', '>']).to_string());
            write.write_all(b"250 ok\r\n").await?;
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(&line);
            }
            log.lock().unwrap().push(Mail {
                recipients: std::mem::take(&mut recipients),
                data,
            });
            write.write_all(b"250 queued as SINK42\r\n").await?;
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"250 ok\r\n").await?;
        }
    }
}
