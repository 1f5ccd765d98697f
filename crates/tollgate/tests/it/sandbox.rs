//! `tollgate sandbox` (issue 6 item 7): the whole product on one machine with no token — the
//! emulator's web chat page, the service on SQLite in polling mode, and a local node when v2ray
//! is installed. In-process through `Sandbox::start` (what the command runs), and the real
//! command: it prints where everything is and Ctrl-C stops it all, the V2Ray core included.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use telegram_emulator::{ControlClient, NewUser, TranscriptMessage};
use tokio::io::{AsyncBufReadExt, BufReader};
use tollgate::sandbox::{NodeMode, NodeStatus, Sandbox, SandboxOptions};
use tollgate_node::testing::V2Ray;

use crate::common::service::{binary, http_client};

/// Random ports, a temporary data directory.
pub fn options(node: NodeMode) -> SandboxOptions {
    SandboxOptions {
        web_port: 0,
        service_port: 0,
        data_dir: None,
        node,
    }
}

/// Waits until the bot's newest message containing `needle` shows in `chat`.
async fn screen(tg: &ControlClient, chat: i64, needle: &str) -> TranscriptMessage {
    crate::common::bot::screen_in(tg, chat, needle).await
}

/// /start, then the trial button; returns the connect screen's text.
async fn take_trial(sandbox: &Sandbox) -> (i64, String) {
    let tg = sandbox.control();
    let user = tg
        .create_user(NewUser::new("Alice").language("en"))
        .await
        .unwrap();
    tg.send_text(user.id, "/start").await.unwrap();
    let menu = screen(&tg, user.id, "Choose an action below.").await;
    let trial = menu.button_data("Free trial").expect("a trial button");
    tg.press_button(user.id, menu.message_id, &trial)
        .await
        .unwrap();
    let connect = screen(&tg, user.id, "Subscription URL").await;
    (user.id, connect.text.unwrap())
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_runs_the_product_with_a_local_node() {
    let Some(_) = V2Ray::or_skip("sandbox_runs_the_product_with_a_local_node") else {
        return;
    };
    let sandbox = Sandbox::start(options(NodeMode::Auto)).await.unwrap();
    let NodeStatus::Running(node) = sandbox.node().clone() else {
        panic!("v2ray is installed, so a node runs: {:?}", sandbox.node());
    };
    let core = node.core_pid.expect("the core runs");
    let data = sandbox.data_dir().to_path_buf();
    assert!(data.join("sandbox.db").is_file());
    let catalog = std::fs::read_to_string(data.join("catalog.toml")).unwrap();
    assert!(catalog.contains("name = \"local\""), "{catalog}");
    let summary = sandbox.summary();
    for shown in [
        sandbox.web_url(),
        sandbox.service_url(),
        data.display().to_string(),
    ] {
        assert!(summary.contains(&shown), "{shown} in {summary}");
    }
    assert!(summary.contains("V2Ray core"), "{summary}");

    // The page is served, and the bot sells the example catalog through it.
    let page = http_client().get(sandbox.web_url()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("web chat"));
    let (user, text) = take_trial(&sandbox).await;
    assert!(text.contains("vless://"), "{text}");
    assert!(text.contains(&node.vless.to_string()), "{text}");
    screen(&sandbox.control(), user, "Your access is ready").await;

    // The subscription URL works.
    let url = text
        .split_whitespace()
        .find(|s| s.starts_with(&format!("{}/sub/", sandbox.service_url())))
        .unwrap()
        .to_owned();
    let feed = http_client().get(&url).send().await.unwrap();
    assert_eq!(feed.status(), 200);
    let links = base64::engine::general_purpose::STANDARD
        .decode(feed.text().await.unwrap().trim())
        .unwrap();
    assert!(links.starts_with(b"vless://"));

    sandbox.shutdown().await.unwrap();
    assert!(!process_exists(core), "the V2Ray core {core} was killed");
    assert!(!data.exists(), "the temporary data directory was removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_without_a_node_shows_links_and_says_no_server_is_available() {
    let kept = tempfile::tempdir().unwrap();
    let dir = kept.path().join("data");
    let sandbox = Sandbox::start(SandboxOptions {
        data_dir: Some(dir.clone()),
        ..options(NodeMode::Off)
    })
    .await
    .unwrap();
    assert!(matches!(sandbox.node(), NodeStatus::Off));
    assert!(sandbox.summary().contains("--no-node"));
    let (_, text) = take_trial(&sandbox).await;
    assert!(text.contains("No server is available right now"), "{text}");
    assert!(text.contains("/sub/"), "{text}");
    sandbox.shutdown().await.unwrap();
    assert!(dir.join("sandbox.db").is_file(), "--data-dir is kept");

    // A second run refuses the used directory rather than mixing two runs.
    let Err(e) = Sandbox::start(SandboxOptions {
        data_dir: Some(dir.clone()),
        ..options(NodeMode::Off)
    })
    .await
    else {
        panic!("a used --data-dir was accepted");
    };
    let e = format!("{e:#}");
    assert!(e.contains("is not empty") && e.contains("fix:"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_refuses_a_busy_port_with_the_flag_to_change() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    for (options, flag) in [
        (
            SandboxOptions {
                web_port: port,
                ..options(NodeMode::Off)
            },
            "--port",
        ),
        (
            SandboxOptions {
                service_port: port,
                ..options(NodeMode::Off)
            },
            "--service-port",
        ),
    ] {
        let Err(e) = Sandbox::start(options).await else {
            panic!("started on a busy port");
        };
        let e = format!("{e:#}");
        assert!(e.contains(&port.to_string()) && e.contains(flag), "{e}");
    }
}

/// The real command: prints the page's address, serves it, and Ctrl-C (SIGINT to the
/// `tollgate` process alone) stops everything — the V2Ray core must not outlive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_command_prints_the_page_and_stops_everything_on_ctrl_c() {
    let mut child = tokio::process::Command::new(binary())
        .args(["sandbox", "--port", "0", "--service-port", "0"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(std::env::var("TOLLGATE_V2RAY_BIN").map(|v| ("TOLLGATE_V2RAY_BIN", v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let read = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push_str(&line);
            printed.push('\n');
            if line.contains("Press Ctrl-C") {
                return true;
            }
        }
        false
    };
    let ready = tokio::time::timeout(Duration::from_secs(60), read).await;
    if !matches!(ready, Ok(true)) {
        let _ = child.start_kill();
        let out = child.wait_with_output().await.unwrap();
        panic!(
            "no summary; stdout:\n{printed}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let field = |name: &str| -> String {
        printed
            .lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {name} line in:\n{printed}"))
            .to_owned()
    };
    let web = field("Web chat:");
    let service = field("Service:");
    let page = http_client().get(&web).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("web chat"));
    let ready = http_client()
        .get(format!("{service}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let core = printed
        .split("pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    assert_eq!(
        core.is_some(),
        V2Ray::locate().is_some(),
        "a node runs exactly when v2ray is installed:\n{printed}"
    );

    let pid = child.id().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the sandbox stops within 30 s of Ctrl-C")
        .unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        rest.push_str(&line);
    }
    assert!(exit.success(), "{exit:?}; after the summary: {rest}");
    assert!(rest.contains("stopped"), "{rest}");
    if let Some(core) = core {
        assert!(
            !process_exists(core),
            "the V2Ray core {core} outlived the sandbox"
        );
    }
}

/// Presses the button labelled `label` on `m`.
async fn press(tg: &ControlClient, chat: i64, m: &TranscriptMessage, label: &str) {
    let data = m
        .button_data(label)
        .unwrap_or_else(|| panic!("no {label:?} on {:?}", m.text));
    tg.press_button(chat, m.message_id, &data).await.unwrap();
}

// Issue 25: in the sandbox a person pays with "crypto" and "card": the bot's "Pay" button opens
// the payment emulator's page, and paying there (here through its control API, as the page's
// button does) gives the access, confirmed in the chat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_sells_through_emulated_crypto_pay_and_yookassa() {
    let sandbox = Sandbox::start(options(NodeMode::Off)).await.unwrap();
    assert!(
        sandbox.summary().contains(&sandbox.payments_url()),
        "{}",
        sandbox.summary()
    );
    let tg = sandbox.control();
    let pay = sandbox.payments_control();
    let user = tg
        .create_user(NewUser::new("Sam").language("en"))
        .await
        .unwrap()
        .id;
    for (method, plan) in [("Crypto", "1 month"), ("YooKassa", "3 months")] {
        tg.send_text(user, "/buy").await.unwrap();
        let plans = screen(&tg, user, "Choose a plan").await;
        press(&tg, user, &plans, plan).await;
        let how = screen(&tg, user, "Choose how to pay").await;
        press(&tg, user, &how, method).await;
        let path = if method == "Crypto" {
            "/pay/cryptopay/"
        } else {
            "/pay/yookassa/"
        };
        let url = crate::common::wait_for("the payment page", Duration::from_secs(20), || async {
            let t = tg.transcript(user).await.unwrap();
            t.messages
                .iter()
                .rev()
                .filter(|m| m.from_bot)
                .find_map(|m| {
                    crate::common::payments::url_button(m, "Pay").filter(|u| u.contains(path))
                })
        })
        .await;
        assert!(url.starts_with(&sandbox.payments_url()), "{url}");
        // The page is served.
        let html = http_client().get(&url).send().await.unwrap();
        assert_eq!(html.status().as_u16(), 200);
        if method == "Crypto" {
            let inv = pay.invoices().await.unwrap().pop().unwrap();
            pay.pay_invoice(inv.invoice_id).await.unwrap();
        } else {
            let p = pay.payments().await.unwrap().pop().unwrap();
            pay.pay_payment(&p.id).await.unwrap();
        }
        crate::common::wait_for("the confirmation", Duration::from_secs(20), || async {
            let t = tg.transcript(user).await.unwrap();
            let n = t
                .messages
                .iter()
                .filter(|m| {
                    m.from_bot
                        && m.text
                            .as_deref()
                            .is_some_and(|x| x.contains("Payment received"))
                })
                .count();
            let want = if method == "Crypto" { 1 } else { 2 };
            (n == want).then_some(())
        })
        .await;
    }
    sandbox.shutdown().await.unwrap();
}
