//! Dialect detection and deadlines against a tiny fake gRPC server (no v2ray needed).
//!
//! The fake answers every call "trailers-only" with a status chosen per path prefix, which is
//! exactly how a Go gRPC server answers an unknown service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderValue, Response, StatusCode, Uri};
use xray_api::{ClientOptions, Dialect, DialectChoice, ErrorKind, XrayClient};

#[derive(Clone, Copy)]
enum Answer {
    UnknownService,
    HandlerNotFound,
    Hang,
}

/// Serves h2c on a free port; `xray` / `v2ray` decide the answer for each path prefix.
async fn fake_core(xray: Answer, v2ray: Answer) -> SocketAddr {
    let app = Router::new().fallback(move |uri: Uri| async move {
        let path = uri.path().to_owned();
        let answer = if path.starts_with("/xray.") {
            xray
        } else {
            v2ray
        };
        let service = path
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let (code, message) = match answer {
            Answer::UnknownService => ("12", format!("unknown service {service}")),
            Answer::HandlerNotFound => (
                "2",
                "app/proxyman/command: failed to get handler: ".to_owned(),
            ),
            Answer::Hang => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                ("0", String::new())
            }
        };
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert(
            "grpc-message",
            HeaderValue::from_str(&message.replace(' ', "%20")).unwrap(),
        );
        response
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn falls_back_to_v2ray_when_xray_is_an_unknown_service() {
    let addr = fake_core(Answer::UnknownService, Answer::HandlerNotFound).await;
    let client = XrayClient::connect(&addr.to_string(), DialectChoice::Auto)
        .await
        .unwrap();
    assert_eq!(client.dialect(), Dialect::V2Ray);
}

#[tokio::test]
async fn picks_xray_when_the_xray_path_answers_even_if_v2ray_paths_do_too() {
    // Current Xray registers HandlerService under both names; xray. must win.
    let addr = fake_core(Answer::HandlerNotFound, Answer::HandlerNotFound).await;
    let client = XrayClient::connect(&format!("http://{addr}"), DialectChoice::Auto)
        .await
        .unwrap();
    assert_eq!(client.dialect(), Dialect::Xray);
}

#[tokio::test]
async fn no_dialect_answering_is_a_clear_unimplemented_error() {
    let addr = fake_core(Answer::UnknownService, Answer::UnknownService).await;
    let err = XrayClient::connect(&addr.to_string(), DialectChoice::Auto)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unimplemented, "{err}");
    assert!(err.to_string().contains("api.services"), "{err}");
    assert!(
        err.core_message()
            .contains("unknown service v2ray.core.app.proxyman.command.HandlerService"),
        "{err}"
    );
}

#[tokio::test]
async fn a_core_that_never_answers_hits_the_deadline() {
    let addr = fake_core(Answer::Hang, Answer::Hang).await;
    let options = ClientOptions {
        connect_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_millis(300),
    };
    let started = Instant::now();
    let err = XrayClient::connect_with(&addr.to_string(), DialectChoice::Auto, options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

    let client = XrayClient::connect_with(&addr.to_string(), DialectChoice::V2Ray, options)
        .await
        .unwrap();
    let err = client.sys_stats().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "deadlines were not enforced"
    );
}
