//! docs/reliability.md A4, D1, D2 (docs/design.md §4): the job runner's contract on every path — exactly one
//! ITERATION_START and one ITERATION_END with the right outcome for success, error, panic,
//! deadline, flag off and "another replica leads"; failures back off instead of spinning;
//! a runtime flag takes effect on the next iteration.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tollgate::flags::{self, Flag};
use tollgate::jobs::metrics::JobMetrics;
use tollgate::jobs::{IterationFuture, Job, JobRunner, Outcome};
use tollgate::lease;
use tollgate::supervisor::Component;
use tollgate::time::{Clock, SystemClock};
use tracing::instrument::WithSubscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::db_test;

#[derive(Clone, Copy)]
enum Behaviour {
    Items(u64),
    Fail,
    Panic,
    /// Sleeps for an hour and ignores shutdown.
    Hang,
    /// Sleeps this long, then succeeds with one item.
    Slow(Duration),
    /// Works through this many items, `each` apart, and stops taking more on shutdown.
    Drain {
        items: u64,
        each: Duration,
    },
}

struct Scripted {
    name: &'static str,
    behaviour: Behaviour,
    flag: Option<Flag>,
    singleton: bool,
    interval: Duration,
    deadline: Duration,
    runs: AtomicUsize,
    /// Items a `Drain` iteration got through.
    drained: Arc<AtomicUsize>,
    /// Iteration futures that ended (returned or were dropped by an abort).
    ended: Arc<AtomicUsize>,
}

/// Counts an iteration's future as ended when it is dropped, however that happens.
struct EndGuard(Arc<AtomicUsize>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Scripted {
    fn new(name: &'static str, behaviour: Behaviour) -> Scripted {
        // Generous, so a panic's report (a backtrace under a loaded test run) is never
        // mistaken for a hang; the hanging job gets a short one.
        let deadline = if matches!(behaviour, Behaviour::Hang) {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(10)
        };
        Scripted {
            name,
            behaviour,
            flag: None,
            singleton: false,
            interval: Duration::from_millis(10),
            deadline,
            runs: AtomicUsize::new(0),
            drained: Arc::default(),
            ended: Arc::default(),
        }
    }
}

impl Job for Scripted {
    fn name(&self) -> &'static str {
        self.name
    }
    fn interval(&self) -> Duration {
        self.interval
    }
    fn deadline(&self) -> Duration {
        self.deadline
    }
    fn singleton(&self) -> bool {
        self.singleton
    }
    fn flag(&self) -> Option<Flag> {
        self.flag
    }
    fn run_once(&self) -> IterationFuture<'_> {
        self.run_once_until_stopped(CancellationToken::new())
    }
    fn run_once_until_stopped(&self, stop: CancellationToken) -> IterationFuture<'_> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let b = self.behaviour;
        let guard = EndGuard(self.ended.clone());
        let drained = self.drained.clone();
        Box::pin(async move {
            let _guard = guard;
            match b {
                Behaviour::Items(n) => Ok(n),
                Behaviour::Fail => Err(anyhow::anyhow!("scripted failure")),
                Behaviour::Panic => panic!("scripted panic"),
                Behaviour::Hang => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    Ok(0)
                }
                Behaviour::Slow(d) => {
                    tokio::time::sleep(d).await;
                    Ok(1)
                }
                Behaviour::Drain { items, each } => {
                    let mut done = 0;
                    while done < items && !stop.is_cancelled() {
                        tokio::time::sleep(each).await;
                        done += 1;
                        drained.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(done)
                }
            }
        })
    }
}

/// One ITERATION_* event: (message, job, outcome, items).
type Record = (String, String, String, String);

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Record>>>);

struct Fields<'a>(&'a mut Record);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}").trim_matches('"').to_owned();
        match field.name() {
            "message" => self.0.0 = v,
            "job" => self.0.1 = v,
            "outcome" => self.0.2 = v,
            "items" => self.0.3 = v,
            _ => {}
        }
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_debug(field, &value)
    }
}

impl<S: tracing::Subscriber> Layer<S> for Captured {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Default::default();
        event.record(&mut Fields(&mut f));
        if f.0.starts_with("ITERATION_") {
            self.0.lock().unwrap().push(f);
        }
    }
}

fn runner(t: &crate::common::TestDb, job: Arc<dyn Job>, holder: &str) -> JobRunner {
    let mut registry = prometheus_client::registry::Registry::default();
    JobRunner::new(
        job,
        t.db.clone(),
        Arc::new(SystemClock),
        holder.to_owned(),
        JobMetrics::register(&mut registry),
    )
}

db_test!(async fn every_path_yields_one_start_and_one_end_with_its_outcome(t) {
    crate::common::tracing_always_interested();
    let captured = Captured::default();
    // Attached to each iteration's future, wherever a runtime worker polls it.
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(captured.clone()));
    let mut flagged = Scripted::new("flagged", Behaviour::Items(1));
    flagged.flag = Some(Flag::AutoRenewal);
    flags::set_committed(&t.db, Flag::AutoRenewal, false, tollgate::admin::audit::Actor::CommandLine, SystemClock.now()).await.unwrap();
    let mut led = Scripted::new("led", Behaviour::Items(1));
    led.singleton = true;
    lease::acquire(&t.db, "job:led", "another-replica", Duration::from_secs(60), SystemClock.now()).await.unwrap().unwrap();
    let cases: Vec<(Scripted, Outcome, &str)> = vec![
        (Scripted::new("succeeds", Behaviour::Items(3)), Outcome::Ok, "3"),
        (Scripted::new("errs", Behaviour::Fail), Outcome::Error, "0"),
        (Scripted::new("panics", Behaviour::Panic), Outcome::Panic, "0"),
        (Scripted::new("hangs", Behaviour::Hang), Outcome::Deadline, "0"),
        (flagged, Outcome::FlagOff, "0"),
        (led, Outcome::NotLeader, "0"),
    ];
    for (job, want, items) in cases {
        let name = job.name;
        let job = Arc::new(job);
        let r = runner(t, job.clone(), "me");
        let mut lease = None;
        let got = r.iteration(&mut lease).with_subscriber(dispatch.clone()).await;
        assert_eq!(got, want, "{name}");
        let events: Vec<_> = captured.0.lock().unwrap().drain(..).filter(|e| e.1 == name).collect();
        assert_eq!(events.len(), 2, "{name}: {events:?}");
        assert_eq!(events[0].0, "ITERATION_START", "{name}");
        assert_eq!(events[1].0, "ITERATION_END", "{name}");
        assert_eq!(events[1].2, want.as_str(), "{name}");
        assert_eq!(events[1].3, items, "{name}");
        let ran = job.runs.load(Ordering::SeqCst);
        let should_run = !matches!(want, Outcome::FlagOff | Outcome::NotLeader);
        assert_eq!(ran, usize::from(should_run), "{name}: run_once calls");
    }
    // The runner survived a panic and a hang: the same runner goes on.
    let job = Arc::new(Scripted::new("panics-then-lives", Behaviour::Panic));
    let r = runner(t, job.clone(), "me");
    let mut lease = None;
    for _ in 0..3 {
        assert_eq!(r.iteration(&mut lease).await, Outcome::Panic);
    }
    assert_eq!(job.runs.load(Ordering::SeqCst), 3);
});

db_test!(async fn a_flag_flipped_at_runtime_takes_effect_on_the_next_iteration(t) {
    let mut job = Scripted::new("flippable", Behaviour::Items(1));
    job.flag = Some(Flag::AutoRenewal);
    let job = Arc::new(job);
    let r = runner(t, job.clone(), "me");
    let mut lease = None;
    assert_eq!(r.iteration(&mut lease).await, Outcome::Ok);
    flags::set_committed(&t.db, Flag::AutoRenewal, false, tollgate::admin::audit::Actor::Admin(1), SystemClock.now()).await.unwrap();
    assert_eq!(r.iteration(&mut lease).await, Outcome::FlagOff);
    assert_eq!(r.iteration(&mut lease).await, Outcome::FlagOff);
    flags::set_committed(&t.db, Flag::AutoRenewal, true, tollgate::admin::audit::Actor::Admin(1), SystemClock.now()).await.unwrap();
    assert_eq!(r.iteration(&mut lease).await, Outcome::Ok);
    assert_eq!(job.runs.load(Ordering::SeqCst), 2);
});

db_test!(async fn a_singleton_runs_on_one_replica_and_hands_over_when_released(t) {
    let mut a = Scripted::new("single", Behaviour::Items(1));
    a.singleton = true;
    let mut b = Scripted::new("single", Behaviour::Items(1));
    b.singleton = true;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let (ra, rb) = (runner(t, a.clone(), "replica-a"), runner(t, b.clone(), "replica-b"));
    let (mut la, mut lb) = (None, None);
    for _ in 0..3 {
        assert_eq!(ra.iteration(&mut la).await, Outcome::Ok);
        assert_eq!(rb.iteration(&mut lb).await, Outcome::NotLeader);
    }
    lease::release(&t.db, la.as_ref().unwrap(), SystemClock.now()).await.unwrap();
    assert_eq!(rb.iteration(&mut lb).await, Outcome::Ok);
    assert_eq!(ra.iteration(&mut la).await, Outcome::NotLeader);
    assert_eq!((a.runs.load(Ordering::SeqCst), b.runs.load(Ordering::SeqCst)), (3, 1));
});

/// Runs `job`'s runner loop until `n` iterations happened or `limit` passed; returns the
/// iterations and the time taken.
async fn run_for(t: &crate::common::TestDb, job: Arc<Scripted>, limit: Duration) -> usize {
    let r = Arc::new(runner(t, job.clone(), "me"));
    let stop = CancellationToken::new();
    let hb = tollgate::supervisor::Heartbeat::default();
    let task = tokio::spawn(r.run(hb, stop.clone()));
    tokio::time::sleep(limit).await;
    stop.cancel();
    task.await.unwrap();
    job.runs.load(Ordering::SeqCst)
}

db_test!(async fn a_failing_job_backs_off_instead_of_spinning(t) {
    // Same interval, same wall time: the healthy job runs every ~10 ms, the failing one
    // doubles its wait after each failure up to its cap (16 × interval).
    let limit = Duration::from_millis(1500);
    let healthy = run_for(t, Arc::new(Scripted::new("healthy", Behaviour::Items(0))), limit).await;
    let failing = run_for(t, Arc::new(Scripted::new("failing", Behaviour::Fail)), limit).await;
    // 10+20+40+80+160 ms, then 160 ms apart (±jitter): at most ~14 tries in 1.5 s.
    assert!(failing <= 16, "failing job ran {failing} times in {limit:?}: it spins");
    assert!(failing >= 3, "failing job ran only {failing} times: it must keep trying");
    assert!(healthy >= 3 * failing, "healthy {healthy} vs failing {failing}");
});

/// A job that needs the database for its work.
struct Queries {
    db: tollgate::store::Db,
}

impl Job for Queries {
    fn name(&self) -> &'static str {
        "queries"
    }
    fn interval(&self) -> Duration {
        Duration::from_millis(20)
    }
    fn deadline(&self) -> Duration {
        Duration::from_secs(2)
    }
    fn flag(&self) -> Option<Flag> {
        Some(Flag::AutoRenewal)
    }
    fn run_once(&self) -> IterationFuture<'_> {
        Box::pin(async move {
            self.db.ping().await?;
            Ok(1)
        })
    }
}

/// docs/reliability.md A9, D2: with the database cut no job spins, and each recovers by itself when
/// it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_cut_jobs_back_off_and_recover_when_it_returns() {
    let Some(t) = crate::common::TestDb::postgres().await else {
        return;
    };
    let target: std::net::SocketAddr = "127.0.0.1:5432".parse().unwrap();
    let proxy = crate::common::proxy::TcpProxy::start(target).await;
    let mut url = url::Url::parse(&t.url).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    let opts: sqlx::postgres::PgConnectOptions = url.as_str().parse().unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_millis(300))
        .connect_lazy_with(opts);
    let db = tollgate::store::Db::Postgres(pool);
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = JobMetrics::register(&mut registry);
    let job: Arc<dyn Job> = Arc::new(Queries { db: db.clone() });
    let r = Arc::new(JobRunner::new(
        job,
        db.clone(),
        Arc::new(SystemClock),
        "me".into(),
        metrics.clone(),
    ));
    let count = |outcome: &'static str| {
        metrics
            .iterations
            .get_or_create(&tollgate::jobs::metrics::JobLabels {
                job: "queries",
                outcome,
            })
            .get()
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(r.run(tollgate::supervisor::Heartbeat::default(), stop.clone()));
    let wait_for = |what: &'static str, f: Box<dyn Fn() -> bool + Send>| async move {
        let start = tokio::time::Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(30), "{what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    {
        let m = metrics.clone();
        wait_for(
            "healthy iterations",
            Box::new(move || {
                m.iterations
                    .get_or_create(&tollgate::jobs::metrics::JobLabels {
                        job: "queries",
                        outcome: "ok",
                    })
                    .get()
                    >= 5
            }),
        )
        .await;
    }
    proxy.cut();
    {
        let m = metrics.clone();
        wait_for(
            "the cut is noticed",
            Box::new(move || {
                m.iterations
                    .get_or_create(&tollgate::jobs::metrics::JobLabels {
                        job: "queries",
                        outcome: "error",
                    })
                    .get()
                    >= 1
            }),
        )
        .await;
    }
    let errors_at_cut = count("error");
    let ok_at_cut = count("ok");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let failed = count("error") - errors_at_cut;
    // Healthy, 3 s is ~150 iterations; failing, the wait doubles to its cap (320 ms) plus
    // each try's 300 ms acquire timeout: about ten.
    assert!(
        failed <= 15,
        "{failed} failed iterations in 3 s: the job spins"
    );
    assert!(
        failed >= 2,
        "{failed} failed iterations in 3 s: the job stopped trying"
    );
    assert_eq!(
        count("ok"),
        ok_at_cut,
        "nothing succeeds while the database is cut"
    );
    proxy.restore();
    {
        let m = metrics.clone();
        wait_for(
            "recovery after the database returns",
            Box::new(move || {
                m.iterations
                    .get_or_create(&tollgate::jobs::metrics::JobLabels {
                        job: "queries",
                        outcome: "ok",
                    })
                    .get()
                    >= ok_at_cut + 3
            }),
        )
        .await;
    }
    stop.cancel();
    task.await.unwrap();
}

/// Waits (bounded) until `f` holds.
async fn until(what: &str, limit: Duration, f: impl Fn() -> bool) {
    let start = tokio::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// A long iteration is not a wedged runner: the runner beats its heartbeat while it waits
// (it enforces the deadline itself). In the service every job runs under the configured
// `WATCHDOG_TIMEOUT` (30 s by default) while its deadline is longer (notices 120 s,
// auto-renewal 240 s); without the beats an expiry wave would be cut by a watchdog restart,
// with no ITERATION_END, and its task left running without a deadline.
db_test!(async fn an_iteration_longer_than_the_watchdog_threshold_is_not_restarted(t) {
    let mut job = Scripted::new("long", Behaviour::Slow(Duration::from_millis(2500)));
    job.deadline = Duration::from_secs(10);
    let job = Arc::new(job);
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = JobMetrics::register(&mut registry);
    let r: Arc<dyn Component> = Arc::new(JobRunner::new(job.clone(), t.db.clone(), Arc::new(SystemClock), "me".into(), metrics.clone()));
    // As app.rs wires plugged components: the watchdog threshold comes from configuration
    // (here its smallest allowed value, 1 s).
    let watched: Arc<dyn Component> = Arc::new(tollgate::supervisor::WatchedDyn::new(r, Duration::from_secs(1)));
    let statuses = tollgate::supervisor::Statuses::default();
    let shutdown = CancellationToken::new();
    let sup = tokio::spawn(tollgate::supervisor::supervise(vec![watched], shutdown.clone(), statuses.clone(), Arc::new(|_, _| {})));
    let ok = || metrics.iterations.get_or_create(&tollgate::jobs::metrics::JobLabels { job: "long", outcome: "ok" }).get();
    until("two long iterations", Duration::from_secs(30), || ok() >= 2).await;
    let status = statuses.snapshot().get("long").cloned().unwrap();
    assert_eq!(status.restarts, 0, "{:?}", status.last_restart_reason);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), sup).await.unwrap().unwrap();
    assert_eq!(job.runs.load(Ordering::SeqCst), job.ended.load(Ordering::SeqCst), "no iteration left running");
});

// docs/reliability.md A7: on shutdown a job stops taking items, the running iteration returns what
// it did (one END, outcome ok, its items), and nothing of it keeps running.
db_test!(async fn on_shutdown_an_iteration_stops_between_items_and_ends_once(t) {
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let mut job = Scripted::new("drain", Behaviour::Drain { items: 10_000, each: Duration::from_millis(5) });
    job.deadline = Duration::from_secs(60);
    let job = Arc::new(job);
    let r = Arc::new(runner(t, job.clone(), "me"));
    let stop = CancellationToken::new();
    let run = r.clone().run(tollgate::supervisor::Heartbeat::default(), stop.clone());
    let control = async {
        until("the iteration is under way", Duration::from_secs(10), || job.drained.load(Ordering::SeqCst) >= 5).await;
        stop.cancel();
        tokio::time::Instant::now()
    };
    let ((), stopped_at) = tokio::join!(
        async { tokio::time::timeout(Duration::from_secs(10), run).await.expect("the runner stops") },
        control
    );
    assert!(stopped_at.elapsed() < Duration::from_secs(1), "stopped {:?} after the request", stopped_at.elapsed());
    let drained = job.drained.load(Ordering::SeqCst);
    assert!(drained < 10_000, "it stopped taking items");
    assert_eq!(job.ended.load(Ordering::SeqCst), 1, "the iteration ended, not left behind");
    let events: Vec<_> = captured.0.lock().unwrap().iter().filter(|e| e.1 == "drain").cloned().collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((events[1].0.as_str(), events[1].2.as_str()), ("ITERATION_END", "ok"));
    assert_eq!(events[1].3, drained.to_string(), "END reports the items done before stopping");
});

// docs/reliability.md A4, A7: an iteration that ignores shutdown is aborted after the grace (END
// with outcome `stopped`), its task does not outlive the runner, and a singleton's lease
// is released so another replica takes over at once.
db_test!(async fn on_shutdown_an_iteration_that_ignores_it_is_aborted_and_the_lease_released(t) {
    let captured = Captured::default();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(captured.clone()));
    let mut job = Scripted::new("stubborn", Behaviour::Hang);
    job.deadline = Duration::from_secs(600);
    job.singleton = true;
    let job = Arc::new(job);
    let r = Arc::new(runner(t, job.clone(), "me"));
    let stop = CancellationToken::new();
    let run = r.clone().run(tollgate::supervisor::Heartbeat::default(), stop.clone());
    let control = async {
        until("the iteration is under way", Duration::from_secs(10), || job.runs.load(Ordering::SeqCst) == 1).await;
        let holder = lease::current_holder(&t.db, "job:stubborn", SystemClock.now()).await.unwrap();
        assert_eq!(holder.map(|l| l.holder).as_deref(), Some("me"));
        stop.cancel();
        tokio::time::Instant::now()
    };
    let ((), stopped_at) = tokio::join!(
        async { tokio::time::timeout(Duration::from_secs(15), run).await.expect("the runner stops") },
        control
    );
    let took = stopped_at.elapsed();
    assert!(took >= tollgate::jobs::SHUTDOWN_GRACE && took < tollgate::jobs::SHUTDOWN_GRACE + Duration::from_secs(2), "{took:?}");
    assert_eq!(job.ended.load(Ordering::SeqCst), 1, "the iteration was aborted with the runner, not left running");
    let events: Vec<_> = captured.0.lock().unwrap().iter().filter(|e| e.1 == "stubborn").cloned().collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!((events[1].0.as_str(), events[1].2.as_str()), ("ITERATION_END", "stopped"));
    assert!(lease::current_holder(&t.db, "job:stubborn", SystemClock.now()).await.unwrap().is_none(), "lease released");
    assert!(lease::acquire(&t.db, "job:stubborn", "next-replica", Duration::from_secs(60), SystemClock.now()).await.unwrap().is_some());
});

/// A job's entry in a running service's `/readyz` body, once `want` holds for it.
async fn job_seen(
    service: &crate::common::service::Service,
    job: &str,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let http = crate::common::service::http_client();
    let want = &want;
    crate::common::wait_for(
        &format!("{job} in /readyz"),
        Duration::from_secs(30),
        move || {
            let http = http.clone();
            async move {
                let body: serde_json::Value = http
                    .get(service.url("/readyz"))
                    .send()
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                let seen = body["jobs"][job].clone();
                want(&seen).then_some(seen)
            }
        },
    )
    .await
}

// docs/reliability.md A2: each job's last successful iteration is visible. A service running every
// job each 50 ms shows, per job, its last outcome and the end of its last success in `/readyz`,
// and the success time in `/metrics`; a job flagged off then shows `flag_off` and keeps the time
// of its last success.
db_test!(async fn each_jobs_last_success_is_visible_in_readyz_and_metrics(t) {
    let emu = crate::common::telegram::emulator(false).await;
    let catalog = crate::common::service::example_catalog().display().to_string();
    let env = crate::common::telegram::with(
        crate::common::telegram::polling_env(&t.url, &emu),
        &[("TOLLGATE_CONFIG", &catalog), ("JOBS_INTERVAL", "50ms")],
    );
    let mut service = crate::common::service::Service::start(&env).await;
    let before = SystemClock.now().as_millis();
    for job in ["notices", "auto-renewal"] {
        let seen = job_seen(&service, job, |s| s["last_outcome"] == "ok").await;
        let success = seen["last_success_at_ms"].as_i64().expect("a success time");
        assert!(success >= before - 60_000 && success <= SystemClock.now().as_millis(), "{job}: {seen}");
    }
    let metrics = crate::common::service::http_client()
        .get(service.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for job in ["notices", "auto-renewal"] {
        let line = format!("tollgate_job_last_success_timestamp_seconds{{job=\"{job}\"}} ");
        let value: f64 = metrics.lines().find_map(|l| l.strip_prefix(&line)?.parse().ok())
            .unwrap_or_else(|| panic!("no {line} in /metrics"));
        assert!(value * 1000.0 >= (before - 60_000) as f64, "{job}: {value}");
    }

    // Flagged off: the outcome says so and the last success stays where it was.
    flags::set_committed(&t.db, Flag::AutoRenewal, false, tollgate::admin::audit::Actor::CommandLine, SystemClock.now()).await.unwrap();
    let off = job_seen(&service, "auto-renewal", |s| s["last_outcome"] == "flag_off").await;
    let last = off["last_success_at_ms"].as_i64().expect("the earlier success is kept");
    let later = job_seen(&service, "auto-renewal", |s| {
        s["last_outcome"] == "flag_off" && s["last_end_at_ms"].as_i64() > Some(last + 100)
    })
    .await;
    assert_eq!(later["last_success_at_ms"].as_i64(), Some(last), "{later}");
    service.signal("TERM");
    assert!(service.wait_exit(Duration::from_secs(30)).await.success());
    emu.shutdown().await;
});
