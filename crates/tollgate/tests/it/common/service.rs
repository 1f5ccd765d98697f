//! Running the real `tollgate` binary as a child process, the way operators run it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A syntactically valid bot token; tests that must not leak it search the output for it.
pub const TEST_BOT_TOKEN: &str = "4242:TEST-token_ThatMustNeverBeLogged0123";

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

pub fn example_catalog() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config/tollgate.example.toml")
}

/// The environment of a service on `database_url` listening on a free port, with JSON logs.
pub fn base_env(database_url: &str) -> Vec<(String, String)> {
    [
        ("BOT_TOKEN", TEST_BOT_TOKEN.to_owned()),
        ("DATABASE_URL", database_url.to_owned()),
        ("BIND_ADDR", "127.0.0.1".to_owned()),
        ("PORT", "0".to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("SHUTDOWN_TIMEOUT", "10s".to_owned()),
        // Nothing listens there: tests that need Telegram start an emulator and override it.
        ("TELEGRAM_API_URL", "http://127.0.0.1:9".to_owned()),
        ("TOLLGATE_CONFIG", example_catalog().display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Runs `tollgate <args>` to completion with exactly `env` (nothing inherited but PATH).
pub async fn run_to_end(args: &[&str], env: &[(String, String)]) -> (ExitStatus, String, String) {
    let out = tokio::time::timeout(Duration::from_secs(60), command(args, env).output())
        .await
        .expect("tollgate finished within 60 s")
        .expect("tollgate ran");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn command(args: &[&str], env: &[(String, String)]) -> Command {
    let mut c = Command::new(binary());
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// A running `tollgate run`.
pub struct Service {
    pub child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Service {
    /// Starts `tollgate run` and waits until its HTTP server listens.
    pub async fn start(env: &[(String, String)]) -> Service {
        Self::start_command("run", env).await
    }

    /// Starts `tollgate <subcommand>` (`run` or `echo`) and waits until it listens.
    pub async fn start_command(subcommand: &str, env: &[(String, String)]) -> Service {
        let mut child = command(&[subcommand], env)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tollgate");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut addr_tx = Some(addr_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v["message"] == "http server listening"
                    && let Some(a) = v["addr"].as_str()
                    && let Some(tx) = addr_tx.take()
                {
                    let _ = tx.send(a.parse::<SocketAddr>().expect("addr"));
                }
                let mut l = sink.lock().expect("log lock");
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match tokio::time::timeout(Duration::from_secs(30), addr_rx).await {
            Ok(Ok(a)) => a,
            _ => {
                let status = child.try_wait().ok().flatten();
                panic!(
                    "tollgate did not start listening (exit: {status:?}); log:\n{}",
                    log.lock().expect("log").as_str()
                );
            }
        };
        Service { child, addr, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log(&self) -> String {
        self.log.lock().expect("log lock").clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    pub fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Still running?
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit, at most `deadline`.
    pub async fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        match tokio::time::timeout(deadline, self.child.wait()).await {
            Ok(Ok(s)) => s,
            _ => panic!(
                "tollgate did not exit within {deadline:?}; log:\n{}",
                self.log()
            ),
        }
    }
}

/// An HTTP client with a per-request timeout (every await has a deadline, tests included).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("http client")
}
