//! Long-running components, their heartbeats, and the watchdog that restarts them in place.
//!
//! The earlier bot's watchdog killed the whole process whenever no webhook had arrived for a
//! few minutes, so an idle bot crash-looped. Here liveness is each component's own progress:
//! a component beats its [`Heartbeat`] every time round its loop — whether or not there was
//! work — so silence means "wedged", never "idle" (docs/reliability.md A1). A wedged component is
//! cancelled and respawned on its own, logged as CRITICAL and reported to admins; a
//! component that ends unexpectedly (including by panic) is respawned after a backoff. The
//! process itself never exits for either reason (A2).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;

/// A component's loop future.
pub type RunFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Something that runs until it is told to stop.
pub trait Component: Send + Sync + 'static {
    fn name(&self) -> &'static str;

    /// Without a heartbeat for this long, the component counts as wedged.
    fn stall_after(&self) -> Duration;

    /// Runs until `stop` is cancelled, beating `heartbeat` at least every `stall_after / 2`
    /// (including while idle).
    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture;
}

/// A component whose stall threshold comes from configuration (`WATCHDOG_TIMEOUT`)
/// instead of its own default.
pub struct Watched<C> {
    inner: Arc<C>,
    stall_after: Duration,
}

impl<C: Component> Watched<C> {
    pub fn new(inner: C, stall_after: Duration) -> Self {
        Watched {
            inner: Arc::new(inner),
            stall_after,
        }
    }
}

impl<C: Component> Component for Watched<C> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn stall_after(&self) -> Duration {
        self.stall_after
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        self.inner.clone().run(heartbeat, stop)
    }
}

/// [`Watched`] for a component that is already shared (`Arc<dyn Component>`).
pub struct WatchedDyn {
    inner: Arc<dyn Component>,
    stall_after: Duration,
}

impl WatchedDyn {
    pub fn new(inner: Arc<dyn Component>, stall_after: Duration) -> Self {
        WatchedDyn { inner, stall_after }
    }
}

impl Component for WatchedDyn {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn stall_after(&self) -> Duration {
        self.stall_after
    }

    fn run(self: Arc<Self>, heartbeat: Heartbeat, stop: CancellationToken) -> RunFuture {
        self.inner.clone().run(heartbeat, stop)
    }
}

/// Monotonic time of a component's last sign of progress.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    epoch: Instant,
    last_ns: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}

impl Heartbeat {
    pub fn new() -> Self {
        Heartbeat {
            epoch: Instant::now(),
            last_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// "I am making progress."
    pub fn beat(&self) {
        let ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_ns.store(ns, Ordering::Relaxed);
    }

    /// Time since the last beat (monotonic: a wall-clock jump does not change it).
    pub fn age(&self) -> Duration {
        let last = Duration::from_nanos(self.last_ns.load(Ordering::Relaxed));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// A component's status as `/readyz` and `/metrics` show it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ComponentStatus {
    pub running: bool,
    pub heartbeat_age_ms: u64,
    pub restarts: u64,
    pub last_restart_reason: Option<String>,
}

/// Why a component was restarted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestartReason {
    Wedged { silent_for: Duration },
    Ended,
    Panicked(String),
}

impl std::fmt::Display for RestartReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartReason::Wedged { silent_for } => {
                write!(f, "no heartbeat for {} ms", silent_for.as_millis())
            }
            RestartReason::Ended => write!(f, "it stopped without being asked to"),
            RestartReason::Panicked(msg) => write!(f, "it panicked: {msg}"),
        }
    }
}

/// Called on every restart (the app queues an admin alert from it).
pub type RestartHook = Arc<dyn Fn(&'static str, &RestartReason) + Send + Sync>;

/// The supervisor's view of every component, shared with health and metrics.
#[derive(Clone, Default)]
pub struct Statuses(Arc<Mutex<BTreeMap<&'static str, ComponentStatus>>>);

impl Statuses {
    pub fn snapshot(&self) -> BTreeMap<&'static str, ComponentStatus> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    fn update(&self, name: &'static str, f: impl FnOnce(&mut ComponentStatus)) {
        if let Ok(mut m) = self.0.lock() {
            f(m.entry(name).or_default());
        }
    }
}

/// Starts every component and watches it until `shutdown`; returns when all have stopped.
pub async fn supervise(
    components: Vec<Arc<dyn Component>>,
    shutdown: CancellationToken,
    statuses: Statuses,
    on_restart: RestartHook,
) {
    let mut set = JoinSet::new();
    for c in components {
        set.spawn(watch(
            c,
            shutdown.clone(),
            statuses.clone(),
            on_restart.clone(),
        ));
    }
    while set.join_next().await.is_some() {}
}

/// How long a cancelled component gets to wind down before it is aborted.
const STOP_GRACE: Duration = Duration::from_secs(5);

async fn watch(
    component: Arc<dyn Component>,
    shutdown: CancellationToken,
    statuses: Statuses,
    on_restart: RestartHook,
) {
    let name = component.name();
    let stall_after = component.stall_after();
    let check_every = (stall_after / 4).max(Duration::from_millis(50));
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        let heartbeat = Heartbeat::new();
        heartbeat.beat();
        let stop = shutdown.child_token();
        let mut task = tokio::spawn(component.clone().run(heartbeat.clone(), stop.clone()));
        statuses.update(name, |s| s.running = true);
        let started = Instant::now();
        let mut ticker = tokio::time::interval(check_every);
        let reason = loop {
            tokio::select! {
                joined = &mut task => {
                    if shutdown.is_cancelled() {
                        statuses.update(name, |s| s.running = false);
                        return;
                    }
                    break match joined {
                        Err(e) if e.is_panic() => RestartReason::Panicked(panic_message(e)),
                        _ => RestartReason::Ended,
                    };
                }
                _ = ticker.tick() => {
                    let age = heartbeat.age();
                    statuses.update(name, |s| s.heartbeat_age_ms = age.as_millis() as u64);
                    if age > stall_after {
                        break RestartReason::Wedged { silent_for: age };
                    }
                }
                _ = shutdown.cancelled() => {
                    if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                        task.abort();
                        tracing::warn!(component = name, "did not stop within the grace period; aborted");
                    }
                    statuses.update(name, |s| s.running = false);
                    return;
                }
            }
        };

        // Stop what is left of the old instance before starting a new one. A wedged instance
        // gets no longer than its stall threshold to notice the cancellation.
        stop.cancel();
        let grace = STOP_GRACE.min(stall_after);
        if !task.is_finished() && tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let _ = (&mut task).await;
        }
        match &reason {
            RestartReason::Wedged { .. } => tracing::error!(
                severity = "CRITICAL",
                component = name,
                reason = %reason,
                "component wedged; restarting it in place"
            ),
            _ => tracing::error!(
                component = name,
                reason = %reason,
                "component ended unexpectedly; restarting it"
            ),
        }
        statuses.update(name, |s| {
            s.running = false;
            s.restarts += 1;
            s.last_restart_reason = Some(reason.to_string());
        });
        on_restart(name, &reason);

        // A component that keeps failing quickly is restarted with growing pauses; one that
        // ran for a while starts over from the shortest pause.
        if started.elapsed() > Duration::from_secs(60) {
            backoff.succeed();
        }
        let pause = match reason {
            RestartReason::Wedged { .. } => Duration::ZERO,
            _ => backoff.fail(),
        };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

/// Waits for `d` or until `stop`, beating `hb` at least every `beat_every` meanwhile.
/// Returns false if stopped.
pub async fn idle(
    d: Duration,
    hb: &Heartbeat,
    beat_every: Duration,
    stop: &CancellationToken,
) -> bool {
    let deadline = Instant::now() + d;
    loop {
        hb.beat();
        let next = (Instant::now() + beat_every).min(deadline);
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.cancelled() => return false,
        }
        if Instant::now() >= deadline {
            hb.beat();
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Behaves per start: `plan[i]` says what the i-th instance does.
    struct Scripted {
        starts: AtomicUsize,
        plan: Vec<&'static str>,
    }

    impl Component for Scripted {
        fn name(&self) -> &'static str {
            "scripted"
        }
        fn stall_after(&self) -> Duration {
            Duration::from_millis(200)
        }
        fn run(self: Arc<Self>, hb: Heartbeat, stop: CancellationToken) -> RunFuture {
            let i = self.starts.fetch_add(1, Ordering::SeqCst);
            let what = self.plan.get(i).copied().unwrap_or("idle");
            Box::pin(async move {
                match what {
                    // Beats while idle: never restarted, however long nothing happens.
                    "idle" => {
                        while idle(
                            Duration::from_secs(3600),
                            &hb,
                            Duration::from_millis(20),
                            &stop,
                        )
                        .await
                        {}
                    }
                    // Stops beating but does not return: wedged.
                    "hang" => std::future::pending::<()>().await,
                    "panic" => panic!("boom"),
                    _ => {}
                }
            })
        }
    }

    async fn run_for(
        plan: Vec<&'static str>,
        wait: Duration,
    ) -> (usize, ComponentStatus, Vec<String>) {
        let c = Arc::new(Scripted {
            starts: AtomicUsize::new(0),
            plan,
        });
        let statuses = Statuses::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let hook: RestartHook = Arc::new(move |name, reason| {
            seen2.lock().unwrap().push(format!("{name}: {reason}"));
        });
        let shutdown = CancellationToken::new();
        let sup = tokio::spawn(supervise(
            vec![c.clone()],
            shutdown.clone(),
            statuses.clone(),
            hook,
        ));
        tokio::time::sleep(wait).await;
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), sup)
            .await
            .unwrap()
            .unwrap();
        let status = statuses.snapshot().get("scripted").cloned().unwrap();
        let seen = seen.lock().unwrap().clone();
        (c.starts.load(Ordering::SeqCst), status, seen)
    }

    #[tokio::test]
    async fn an_idle_component_is_never_restarted() {
        // Five times its stall threshold without any work.
        let (starts, status, seen) = run_for(vec!["idle"], Duration::from_millis(1000)).await;
        assert_eq!(starts, 1);
        assert_eq!(status.restarts, 0);
        assert!(seen.is_empty());
        assert!(!status.running, "stopped at shutdown");
    }

    #[tokio::test]
    async fn a_wedged_component_is_restarted_in_place() {
        let (starts, status, seen) =
            run_for(vec!["hang", "idle"], Duration::from_millis(1200)).await;
        assert_eq!(starts, 2, "{seen:?}");
        assert_eq!(status.restarts, 1);
        assert!(
            seen[0].starts_with("scripted: no heartbeat for"),
            "{seen:?}"
        );
    }

    #[tokio::test]
    async fn a_panicking_component_is_restarted_after_a_pause() {
        let (starts, status, seen) =
            run_for(vec!["panic", "idle"], Duration::from_millis(1500)).await;
        assert_eq!(starts, 2, "{seen:?}");
        assert_eq!(status.restarts, 1);
        assert_eq!(seen, ["scripted: it panicked: boom"]);
        assert!(status.last_restart_reason.unwrap().contains("boom"));
    }
}
