//! A SOCKS5 (no auth, CONNECT) HTTP/1.0 GET, so tests need no curl.
//!
//! How a refusal looks: V2Ray's SOCKS inbound confirms CONNECT at once, before its VLESS
//! outbound has been accepted or refused by the server. When the server refuses the id, the
//! client core closes the stream without a byte of HTTP: that is [`FetchError::Refused`].

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why a fetch failed.
#[derive(Debug)]
pub enum FetchError {
    /// The SOCKS port did not accept the connection.
    Connect(io::Error),
    /// The SOCKS handshake failed (what the proxy said).
    Socks(String),
    /// The proxy closed the stream without any HTTP response: the chain refused the request
    /// (e.g. the VLESS server does not know the id).
    Refused,
    /// No complete answer before the deadline.
    Timeout,
    /// Bytes came back but they are not an HTTP response.
    Malformed(String),
    /// A read or write failed midway.
    Io(io::Error),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Connect(e) => write!(f, "cannot connect to the SOCKS5 port: {e}"),
            FetchError::Socks(why) => write!(f, "SOCKS5 handshake failed: {why}"),
            FetchError::Refused => {
                f.write_str("the proxy closed the connection without an HTTP response (refused)")
            }
            FetchError::Timeout => f.write_str("no complete HTTP response before the deadline"),
            FetchError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
            FetchError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// GETs `url` (`http://host:port/path`) through the SOCKS5 proxy at `socks`, reading the
/// response to EOF, all within `timeout`.
pub async fn http_get_via_socks5(
    socks: SocketAddr,
    url: &str,
    timeout: Duration,
) -> Result<HttpResponse, FetchError> {
    let (host, port, path) = split_url(url)?;
    match tokio::time::timeout(timeout, fetch(socks, &host, port, &path)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout),
    }
}

async fn fetch(
    socks: SocketAddr,
    host: &str,
    port: u16,
    path: &str,
) -> Result<HttpResponse, FetchError> {
    let mut stream = TcpStream::connect(socks)
        .await
        .map_err(FetchError::Connect)?;
    stream.write_all(&[5, 1, 0]).await.map_err(FetchError::Io)?;
    let mut choice = [0u8; 2];
    stream
        .read_exact(&mut choice)
        .await
        .map_err(FetchError::Io)?;
    if choice != [5, 0] {
        return Err(FetchError::Socks(format!(
            "method selection answered {choice:?}"
        )));
    }
    let host_bytes = host.as_bytes();
    let host_len = u8::try_from(host_bytes.len())
        .map_err(|_| FetchError::Socks("host name too long".into()))?;
    let mut connect = vec![5, 1, 0, 3, host_len];
    connect.extend_from_slice(host_bytes);
    connect.extend_from_slice(&port.to_be_bytes());
    stream.write_all(&connect).await.map_err(FetchError::Io)?;
    let mut reply = [0u8; 4];
    stream
        .read_exact(&mut reply)
        .await
        .map_err(FetchError::Io)?;
    if reply[0] != 5 || reply[1] != 0 {
        return Err(FetchError::Socks(format!(
            "CONNECT answered code {}",
            reply[1]
        )));
    }
    let bound_len = match reply[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await.map_err(FetchError::Io)?;
            usize::from(len[0])
        }
        other => return Err(FetchError::Socks(format!("unknown address type {other}"))),
    };
    let mut bound = vec![0u8; bound_len + 2];
    stream
        .read_exact(&mut bound)
        .await
        .map_err(FetchError::Io)?;

    let request =
        format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(FetchError::Io)?;
    let raw = read_response(&mut stream).await?;
    parse_response(&raw)
}

/// Reads until the body is complete by `Content-Length`, or to EOF without one. Not waiting for
/// EOF matters: V2Ray keeps a stream open for its `uplinkOnly` policy time (2 s) after the
/// origin closed.
async fn read_response(stream: &mut TcpStream) -> Result<Vec<u8>, FetchError> {
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            // A reset before any byte is the same refusal as a clean close.
            Err(e) if raw.is_empty() && e.kind() == io::ErrorKind::ConnectionReset => {
                return Err(FetchError::Refused);
            }
            Err(e) => return Err(FetchError::Io(e)),
        };
        if n == 0 {
            return if raw.is_empty() {
                Err(FetchError::Refused)
            } else {
                Ok(raw)
            };
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(total) = expected_length(&raw)
            && raw.len() >= total
        {
            return Ok(raw);
        }
    }
}

/// Header length + `Content-Length`, once the headers are complete and carry one.
fn expected_length(raw: &[u8]) -> Option<usize> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    head.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            Some(split + 4 + value.trim().parse::<usize>().ok()?)
        } else {
            None
        }
    })
}

fn split_url(url: &str) -> Result<(String, u16, String), FetchError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        FetchError::Malformed(format!("only http:// URLs are supported, got {url}"))
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| FetchError::Malformed(format!("bad port in {url}")))?,
        ),
        None => (authority, 80),
    };
    Ok((
        host.trim_matches(['[', ']']).to_owned(),
        port,
        path.to_owned(),
    ))
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, FetchError> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            FetchError::Malformed(format!("no end of headers in {} bytes", raw.len()))
        })?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| FetchError::Malformed(format!("bad status line {status_line:?}")))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_port_path() {
        let (h, p, path) = split_url("http://127.0.0.1:8080/bytes/10").unwrap();
        assert_eq!(
            (h.as_str(), p, path.as_str()),
            ("127.0.0.1", 8080, "/bytes/10")
        );
        let (h, p, path) = split_url("http://example.test").unwrap();
        assert_eq!((h.as_str(), p, path.as_str()), ("example.test", 80, "/"));
        assert!(split_url("https://x/").is_err());
    }

    #[test]
    fn responses_parse() {
        let r = parse_response(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi").unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "hi");
        assert_eq!(
            r.headers,
            vec![("content-length".to_owned(), "2".to_owned())]
        );
        assert!(parse_response(b"garbage").is_err());
    }
}
