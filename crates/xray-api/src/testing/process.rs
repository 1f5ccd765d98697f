//! One core process: spawned with its config on stdin, logging to a file, killed on drop.
//!
//! Why `std::process`: drop must kill and reap synchronously so a failing test never leaves a
//! core holding ports; readiness is decided by polling TCP ports, so no async child is needed.

use std::fs::File;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::V2Ray;

/// How long a core may take to open its ports (observed: 15–80 ms).
const READY_LIMIT: Duration = Duration::from_secs(10);
const READY_POLL: Duration = Duration::from_millis(5);

/// A free TCP port on 127.0.0.1 (bound then released; a race with other processes is possible
/// and handled by retrying the start).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running core process.
#[derive(Debug)]
pub(crate) struct CoreProcess {
    child: Child,
}

impl CoreProcess {
    /// Starts `v2ray -config stdin:` with `config`, logging to `log_path`, and waits until every
    /// port in `ports` accepts connections.
    pub(crate) async fn start(
        v2ray: &V2Ray,
        config: &str,
        log_path: &Path,
        ports: &[u16],
    ) -> io::Result<CoreProcess> {
        let log = File::create(log_path)?;
        let mut child = Command::new(v2ray.path())
            .args(["-config", "stdin:"])
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                io::Error::new(e.kind(), format!("spawn {}: {e}", v2ray.path().display()))
            })?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(config.as_bytes())?;
            // Dropping stdin closes it: v2ray reads the config until EOF.
        }
        let mut process = CoreProcess { child };
        process.wait_ready(log_path, ports).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, log_path: &Path, ports: &[u16]) -> io::Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        for &port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            loop {
                if let Some(status) = self.child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "v2ray exited ({status}) before port {port} opened; log:\n{}",
                        read_log(log_path)
                    )));
                }
                if tokio::net::TcpStream::connect(addr).await.is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "v2ray did not open port {port} within {READY_LIMIT:?}; log:\n{}",
                            read_log(log_path)
                        ),
                    ));
                }
                tokio::time::sleep(READY_POLL).await;
            }
        }
        Ok(())
    }

    /// The process id (for tests that want to signal it themselves).
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// True while the process has not exited.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for CoreProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The log file's text (empty if unreadable).
pub(crate) fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// True if a failed start looks like a port race worth retrying with new ports.
pub(crate) fn is_port_clash(error: &io::Error) -> bool {
    error.to_string().contains("address already in use")
}

/// A log file path inside `dir`.
pub(crate) fn log_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}
