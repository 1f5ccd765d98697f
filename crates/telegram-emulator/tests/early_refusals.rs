//! An answer the emulator gives before reading the parameters (unknown method, unknown token, an
//! injected fault) reaches a client that is still uploading a large multipart body.
//!
//! The client here is raw TCP on purpose: it writes the whole request, then reads the answer,
//! as aiogram's and most HTTP clients' upload paths do. Had the server answered and closed
//! without reading the body, the kernel would reset the connection while the client still sends,
//! and the client would see "broken pipe" or "connection reset" instead of the status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{config, start};
use telegram_emulator::FaultKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUNDS: usize = 50;
const FILE_BYTES: usize = 1 << 20;

/// Sends a `multipart/form-data` POST with a 1 MB file to `path` and returns the status line's
/// code and the body, or the I/O error the client met.
async fn upload(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let boundary = "tollgateboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::with_capacity(FILE_BYTES + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"chat_id\"\r\n\r\n1\r\n\
             --{boundary}\r\nContent-Disposition: form-data; name=\"document\"; filename=\"big.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend(std::iter::repeat_n(b'x', FILE_BYTES));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(head.as_bytes()).await?;
    // In pieces, as a client streaming a file does: the server's answer can come while the
    // client is still sending (a single write would mostly land in the socket buffers first).
    for piece in body.chunks(64 * 1024) {
        stream.write_all(piece).await?;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stream.flush().await?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((code, body))
}

async fn expect_every_time(addr: SocketAddr, path: &str, code: u16, description: &str) {
    for round in 0..ROUNDS {
        let answer = tokio::time::timeout(Duration::from_secs(20), upload(addr, path))
            .await
            .unwrap_or_else(|_| panic!("round {round}: no answer to {path} within 20 s"));
        let (status, body) =
            answer.unwrap_or_else(|error| panic!("round {round}: {path}: the client saw {error}"));
        assert_eq!(status, code, "round {round}: {path}: {body}");
        assert!(body.contains(description), "round {round}: {path}: {body}");
    }
}

#[tokio::test]
async fn an_unknown_method_answers_404_to_a_large_upload_every_time() {
    let emulator = start(config()).await;
    let path = format!("/bot{}/sendNothingAtAll", emulator.token());
    expect_every_time(emulator.addr(), &path, 404, "Not Found").await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_answers_401_to_a_large_upload_every_time() {
    let emulator = start(config()).await;
    expect_every_time(
        emulator.addr(),
        "/bot123:wrong-token/sendDocument",
        401,
        "Unauthorized",
    )
    .await;
    expect_every_time(emulator.addr(), "/not-a-bot-path/x", 404, "Not Found").await;
    emulator.shutdown().await;
}

#[tokio::test]
async fn an_injected_fault_answers_a_large_upload_every_time() {
    let emulator = start(config()).await;
    emulator
        .client()
        .inject_fault("sendPhoto", FaultKind::ServerError, ROUNDS as u32)
        .await
        .unwrap();
    let path = format!("/bot{}/sendPhoto", emulator.token());
    expect_every_time(emulator.addr(), &path, 500, "Internal Server Error").await;
    emulator.shutdown().await;
}
