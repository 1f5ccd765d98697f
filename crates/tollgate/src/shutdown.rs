//! Turning SIGTERM / SIGINT into a cancellation token.
//!
//! Shutdown is one `CancellationToken` threaded through every component (mini-redis style):
//! intake stops taking, workers stop claiming, the HTTP server drains. Nothing on the
//! shutdown path touches the webhook registration (docs/reliability.md A7).

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = token.cancelled() => return,
        };
        tracing::info!(signal = name, "shutdown requested");
        token.cancel();
    });
    Ok(())
}
