//! `TELEGRAM_PROXY`: every Bot API call and file upload goes through the proxy, with its
//! credentials, and a proxy that refuses or hangs gives the usual retries and an error that
//! names it (with its password masked).
//!
//! The service is the real binary (`tollgate echo`, polling) against the emulator. Where the
//! proxy can resolve names (HTTP, `socks5h`), the emulator is reached by a host name only the
//! proxy knows: a call that went around the proxy could not reach Telegram at all.

use std::time::Duration;

use crate::common::forward_proxy::{ForwardProxy, refused_addr};
use crate::common::service::Service;
use crate::common::telegram::{emulator, polling_env, started_user, wait_reply, with};
use crate::common::{TestDb, wait_for};
use telegram_emulator::RunningEmulator;

const HIDDEN_HOST: &str = "api.telegram.test";
const PROXY_PASSWORD: &str = "pr0xy-Secret-42";

/// An echo service whose Bot API is `api_url` through `proxy`, sending backups every second
/// to `admin`.
fn proxied_env(
    t: &TestDb,
    emu: &RunningEmulator,
    api_url: &str,
    proxy: &str,
    admin: i64,
) -> Vec<(String, String)> {
    with(
        polling_env(&t.url, emu),
        &[
            ("TELEGRAM_API_URL", api_url),
            ("TELEGRAM_PROXY", proxy),
            ("ADMIN_IDS", &admin.to_string()),
            ("BACKUP_INTERVAL", "1s"),
        ],
    )
}

/// Echo and a backup upload both arrive, through `proxy`; the password never reaches the log.
async fn echo_and_upload_through(
    emu: &RunningEmulator,
    env: &[(String, String)],
    admin: i64,
) -> Service {
    let svc = Service::start_command("echo", env).await;
    let tg = emu.client();
    tg.send_text(admin, "through the proxy").await.unwrap();
    wait_reply(&tg, admin, "echo: through the proxy").await;
    wait_for(
        "a backup document through the proxy",
        Duration::from_secs(30),
        || {
            let tg = tg.clone();
            async move {
                let t = tg.transcript(admin).await.ok()?;
                t.messages.iter().find(|m| m.kind == "document").map(|_| ())
            }
        },
    )
    .await;
    assert!(
        !svc.log().contains(PROXY_PASSWORD),
        "the proxy password leaked into the log"
    );
    svc
}

/// The bot and its backups through a proxy that asks for credentials and alone knows the
/// emulator's host name (`scheme` is how the service is told to speak to it).
async fn through_a_proxy_with_credentials(
    proxy: ForwardProxy,
    emu: &RunningEmulator,
    scheme: &str,
) {
    let t = TestDb::sqlite().await;
    let admin = started_user(emu, "Admin").await;
    let api_url = format!("http://{HIDDEN_HOST}:{}", emu.addr().port());
    let proxy_url = format!("{scheme}://tg:{PROXY_PASSWORD}@{}", proxy.addr);
    let env = proxied_env(&t, emu, &api_url, &proxy_url, admin);
    let mut svc = echo_and_upload_through(emu, &env, admin).await;
    assert!(proxy.carried() > 0);
    let creds = proxy.credentials.lock().unwrap().clone();
    assert!(
        !creds.is_empty() && creds.iter().all(|c| c == &format!("tg:{PROXY_PASSWORD}")),
        "{creds:?}"
    );
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_proxy_with_credentials_carries_every_call_and_upload() {
    let emu = emulator(false).await;
    let credentials = Some(("tg", PROXY_PASSWORD));
    let proxy = ForwardProxy::http(credentials, Some((HIDDEN_HOST, emu.addr()))).await;
    through_a_proxy_with_credentials(proxy, &emu, "http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks5h_proxy_with_credentials_carries_every_call_and_upload() {
    let emu = emulator(false).await;
    let credentials = Some(("tg", PROXY_PASSWORD));
    let proxy = ForwardProxy::socks5(credentials, Some((HIDDEN_HOST, emu.addr()))).await;
    through_a_proxy_with_credentials(proxy, &emu, "socks5h").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_socks5_proxy_carries_the_bot() {
    let t = TestDb::sqlite().await;
    let emu = emulator(false).await;
    let admin = started_user(&emu, "Admin").await;
    let proxy = ForwardProxy::socks5(None, None).await;
    let env = proxied_env(
        &t,
        &emu,
        &emu.api_url(),
        &format!("socks5://{}", proxy.addr),
        admin,
    );
    let mut svc = echo_and_upload_through(&emu, &env, admin).await;
    assert!(proxy.carried() > 0);
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}

/// Waits until the service's log has `needle` at least `times` times (retries), and checks the
/// service is still up and ready (the database decides readiness, not Telegram).
async fn failing_proxy_is_retried(svc: &mut Service, needle: &str, times: usize) {
    let log = wait_for(
        "the proxy failure to be logged and retried",
        Duration::from_secs(60),
        || {
            let log = svc.log();
            let n = log.matches(needle).count();
            async move { (n >= times).then_some(log) }
        },
    )
    .await;
    assert!(
        !log.contains(PROXY_PASSWORD),
        "the proxy password leaked: {log}"
    );
    assert!(svc.is_running(), "a failing proxy must not end the process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_proxy_is_retried_with_an_error_naming_it() {
    let t = TestDb::sqlite().await;
    let emu = emulator(false).await;
    let refused = refused_addr();
    let env = with(
        polling_env(&t.url, &emu),
        &[(
            "TELEGRAM_PROXY",
            &format!("http://tg:{PROXY_PASSWORD}@{refused}"),
        )],
    );
    let mut svc = Service::start_command("echo", &env).await;
    let needle = format!("cannot get through TELEGRAM_PROXY http://tg:***@{refused}");
    failing_proxy_is_retried(&mut svc, &needle, 3).await;
    let ready = crate::common::service::http_client()
        .get(svc.url("/readyz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(ready.contains("telegram unreachable"), "{ready}");
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_proxy_is_retried_with_an_error_naming_it() {
    let t = TestDb::sqlite().await;
    let emu = emulator(false).await;
    let proxy = ForwardProxy::hanging().await;
    let env = with(
        polling_env(&t.url, &emu),
        &[(
            "TELEGRAM_PROXY",
            &format!("socks5://tg:{PROXY_PASSWORD}@{}", proxy.addr),
        )],
    );
    let mut svc = Service::start_command("echo", &env).await;
    let needle = format!("TELEGRAM_PROXY socks5://tg:***@{}", proxy.addr);
    failing_proxy_is_retried(&mut svc, &needle, 2).await;
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
}
