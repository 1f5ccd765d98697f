//! Tiny forward proxies on 127.0.0.1 for the `TELEGRAM_PROXY` tests: an HTTP proxy
//! (absolute-form requests and `CONNECT`), a SOCKS5 proxy (no auth or user/password), and
//! proxies that refuse or hang. Each counts the connections it carried and records the
//! credentials it was given, so a test can tell that traffic really went through it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Http,
    Socks5,
    Hang,
}

pub struct ForwardProxy {
    pub addr: SocketAddr,
    /// Connections that reached a target through the proxy.
    pub carried: Arc<AtomicUsize>,
    /// `user:password` pairs clients presented.
    pub credentials: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for ForwardProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ForwardProxy {
    /// An HTTP proxy; with `auth`, requests without those credentials get 407. `alias` maps a
    /// host name only the proxy knows to an address (so a call that went around the proxy
    /// could not reach it).
    pub async fn http(
        auth: Option<(&str, &str)>,
        alias: Option<(&str, SocketAddr)>,
    ) -> ForwardProxy {
        Self::start(Kind::Http, auth, alias).await
    }

    /// A SOCKS5 proxy; with `auth`, only username/password authentication with those.
    pub async fn socks5(
        auth: Option<(&str, &str)>,
        alias: Option<(&str, SocketAddr)>,
    ) -> ForwardProxy {
        Self::start(Kind::Socks5, auth, alias).await
    }

    /// Accepts connections, reads, never answers.
    pub async fn hanging() -> ForwardProxy {
        Self::start(Kind::Hang, None, None).await
    }

    pub fn carried(&self) -> usize {
        self.carried.load(Ordering::SeqCst)
    }

    async fn start(
        kind: Kind,
        auth: Option<(&str, &str)>,
        alias: Option<(&str, SocketAddr)>,
    ) -> ForwardProxy {
        let alias = alias.map(|(h, a)| (h.to_owned(), a));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let carried = Arc::new(AtomicUsize::new(0));
        let credentials = Arc::new(Mutex::new(Vec::new()));
        let ctx = Arc::new(Ctx {
            carried: carried.clone(),
            creds: credentials.clone(),
            auth: auth.map(|(u, p)| format!("{u}:{p}")),
            alias,
        });
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let _ = match kind {
                        Kind::Http => http_conn(stream, &ctx).await,
                        Kind::Socks5 => socks5_conn(stream, &ctx).await,
                        Kind::Hang => hang(stream).await,
                    };
                });
            }
        });
        ForwardProxy {
            addr,
            carried,
            credentials,
            task,
        }
    }
}

/// What a proxy's connections share: its counters, the credentials it wants, its alias.
struct Ctx {
    carried: Arc<AtomicUsize>,
    creds: Arc<Mutex<Vec<String>>>,
    auth: Option<String>,
    alias: Option<(String, SocketAddr)>,
}

/// Connects to `host:port`, or to the alias's address when `host` is the alias's name.
async fn connect(host: &str, port: u16, ctx: &Ctx) -> std::io::Result<TcpStream> {
    if let Some((name, addr)) = &ctx.alias
        && name == host
    {
        return TcpStream::connect(addr).await;
    }
    TcpStream::connect(format!("{host}:{port}")).await
}

fn split_authority(authority: &str) -> (String, u16) {
    match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse().unwrap_or(80)),
        None => (authority.to_owned(), 80),
    }
}

/// A local port nothing listens on (a proxy that refuses connections).
pub fn refused_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

async fn hang(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    while stream.read(&mut buf).await? > 0 {}
    Ok(())
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    Ok(head)
}

async fn http_conn(mut client: TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let head = read_head(&mut client).await?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let presented = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("proxy-authorization"))
        .and_then(|(_, v)| v.trim().strip_prefix("Basic ").map(str::to_owned))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    if let Some(p) = &presented {
        ctx.creds.lock().unwrap().push(p.clone());
    }
    if ctx.auth.is_some() && presented != ctx.auth {
        client
            .write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await?;
        return Ok(());
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    if method == "CONNECT" {
        let (host, port) = split_authority(&target);
        let mut upstream = connect(&host, port, ctx).await?;
        ctx.carried.fetch_add(1, Ordering::SeqCst);
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        return Ok(());
    }
    // Absolute form: `POST http://host:port/path HTTP/1.1`; the origin accepts it as it is.
    let authority = target
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default()
        .to_owned();
    let (host, port) = split_authority(&authority);
    let mut upstream = connect(&host, port, ctx).await?;
    ctx.carried.fetch_add(1, Ordering::SeqCst);
    upstream.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}

async fn socks5_conn(mut client: TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; usize::from(greeting[1])];
    client.read_exact(&mut methods).await?;
    if greeting[0] != 5 {
        return Ok(());
    }
    if let Some(expected) = &ctx.auth {
        if !methods.contains(&2) {
            client.write_all(&[5, 0xff]).await?;
            return Ok(());
        }
        client.write_all(&[5, 2]).await?;
        let mut ver_len = [0u8; 2];
        client.read_exact(&mut ver_len).await?;
        let mut user = vec![0u8; usize::from(ver_len[1])];
        client.read_exact(&mut user).await?;
        let mut plen = [0u8; 1];
        client.read_exact(&mut plen).await?;
        let mut pass = vec![0u8; usize::from(plen[0])];
        client.read_exact(&mut pass).await?;
        let presented = format!(
            "{}:{}",
            String::from_utf8_lossy(&user),
            String::from_utf8_lossy(&pass)
        );
        ctx.creds.lock().unwrap().push(presented.clone());
        if &presented != expected {
            client.write_all(&[1, 1]).await?;
            return Ok(());
        }
        client.write_all(&[1, 0]).await?;
    } else {
        client.write_all(&[5, 0]).await?;
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    let mut upstream = match connect(&host, port, ctx).await {
        Ok(s) => s,
        Err(_) => {
            client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    ctx.carried.fetch_add(1, Ordering::SeqCst);
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
    Ok(())
}
