//! A tiny HTTP/1.0 origin on 127.0.0.1 to fetch through a proxy chain.
//!
//! Routes: `/` and `/hello` answer [`HELLO_BODY`]; `/bytes/N` answers N bytes (at most 64 MiB)
//! so traffic counters have something to count; anything else is 404. Every answer closes the
//! connection.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The body of `/hello`.
pub const HELLO_BODY: &str = "hello from the tollgate test origin\n";
const MAX_BYTES: usize = 64 << 20;

/// A running origin; stops when dropped.
#[derive(Debug)]
pub struct Origin {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Origin {
    /// Binds a free 127.0.0.1 port and serves until dropped.
    pub async fn start() -> io::Result<Origin> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(30), serve(stream, &counter))
                        .await;
                });
            }
        });
        Ok(Origin {
            addr,
            requests,
            task,
        })
    }

    /// The origin's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Requests served so far (any route).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, requests: &AtomicUsize) -> io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    requests.fetch_add(1, Ordering::SeqCst);
    let text = String::from_utf8_lossy(&head);
    let path = text.split_whitespace().nth(1).unwrap_or("/");
    let (status, body): (&str, Vec<u8>) = match path {
        "/" | "/hello" => ("200 OK", HELLO_BODY.as_bytes().to_vec()),
        _ => match path
            .strip_prefix("/bytes/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(n) if n <= MAX_BYTES => ("200 OK", (0..n).map(|i| (i % 251) as u8).collect()),
            _ => ("404 Not Found", b"not found\n".to_vec()),
        },
    };
    let header = format!(
        "HTTP/1.0 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.shutdown().await
}
