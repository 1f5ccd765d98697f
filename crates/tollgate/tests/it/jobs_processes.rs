//! docs/reliability.md A5, D2–D5 with real processes: three `tollgate run` processes on one
//! PostgreSQL database run the notice and auto-renewal jobs through a simulated month and are
//! killed with SIGKILL at random moments, each replaced at once by a fresh process. The end
//! state — every message queued, every balance, every renewal debit, every expiry date —
//! equals what one undisturbed instance produces from the same population.
//!
//! Time: the processes share a clock that is real time plus an offset read from a file
//! (`TOLLGATE_TEST_CLOCK_OFFSET_FILE`); the test moves it two hours at a time and waits until
//! some process has finished two iterations of each job since (the second surely started after
//! the move) and no notice is due. `JOBS_INTERVAL=50ms` makes those iterations come quickly.
//!
//! The catalog drops the 24-hour reminder: it falls due at the very instant the auto-renewal
//! window opens, and which of the two jobs gets there first is a race in any deployment (one
//! process included), so no reference could predict it.

use std::path::Path;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tollgate::time::{Clock, ManualClock, OffsetFileClock, SystemClock, Timestamp};

use crate::common::TestDb;
use crate::common::service::{Service, http_client};
use crate::common::telegram::{emulator, polling_env, with};
use crate::jobs_month::{
    Person, due_notices, outcome, population_of, services_with, undisturbed_month,
};

const H: i64 = 3_600_000;
const D: i64 = 24 * H;
const STEP: i64 = 2 * H;
const PROCESSES: usize = 3;

/// The example catalog without the 24-hour reminder (see the module docs).
fn catalog(dir: &Path) -> String {
    let example = std::fs::read_to_string(crate::common::service::example_catalog()).unwrap();
    let line = r#"reminders_before_expiry = ["72h", "24h", "3h"]"#;
    assert!(
        example.contains(line),
        "the example catalog's reminders changed"
    );
    let path = dir.join("catalog.toml");
    std::fs::write(
        &path,
        example.replace(line, r#"reminders_before_expiry = ["72h", "3h"]"#),
    )
    .unwrap();
    path.display().to_string()
}

/// Forty users of every kind; every paid one opted into auto-renewal, with money for two
/// renewals, one, or none, so renewals, "top up" messages and expiries all happen.
async fn population(s: &tollgate::app::Services, t0: Timestamp) {
    population_of(s, t0, |i| Person {
        id: 2000 + i,
        auto_renew: i % 2 == 1,
        balance: [29_800, 14_900, 0][((i / 4) % 3) as usize],
        blocked: i % 5 == 0,
    })
    .await;
}

/// Finished iterations with outcome `ok` of the notice and auto-renewal jobs of the process
/// at `service`, or `None` when it does not answer (it may just have been killed).
async fn iterations(http: &reqwest::Client, service: &Service) -> Option<(f64, f64)> {
    let text = http
        .get(service.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let count = |job: &str| {
        text.lines()
            .filter(|l| {
                l.starts_with("tollgate_job_iterations_total{")
                    && l.contains(&format!("job=\"{job}\""))
                    && l.contains("outcome=\"ok\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    Some((count("notices"), count("auto-renewal")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_killed_at_random_end_the_month_like_one() {
    let Some(reference_db) = TestDb::postgres().await else {
        return;
    };
    let Some(shared_db) = TestDb::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let catalog = catalog(dir.path());
    let changes = [("TOLLGATE_CONFIG", catalog.as_str())];
    // A year ahead, on a step boundary: the shared clock's offset stays positive.
    let t0 = Timestamp::from_millis((SystemClock.now().as_millis() + 365 * D) / STEP * STEP);
    let end = t0.as_millis() + 31 * D;

    // The reference: one instance in this process, stepping the same way, nothing disturbed.
    let want = undisturbed_month(&reference_db, &changes, t0, STEP, async |s| {
        population(s, t0).await;
    })
    .await;
    let debits: i64 = want.1.iter().map(|u| u.2).sum();
    assert!(want.0.len() > 60, "messages: {}", want.0.len());
    assert!(debits >= 5, "renewal debits in the month: {debits}");

    // The same population on the shared database, seeded in this process at t0.
    let clock = ManualClock::new(t0);
    let (app, s, emu) = services_with(&shared_db, &clock, &changes).await;
    population(&s, t0).await;
    app.shutdown().await.unwrap();
    emu.shutdown().await;

    let offset_file = dir.path().join("clock-offset");
    let move_clock_to = |at: i64| {
        let ahead = u64::try_from(at - SystemClock.now().as_millis()).expect("t0 is ahead");
        OffsetFileClock::write(&offset_file, Duration::from_millis(ahead)).unwrap();
    };
    move_clock_to(t0.as_millis());
    let emu = emulator(false).await;
    let env = with(
        polling_env(&shared_db.url, &emu),
        &[
            ("TOLLGATE_CONFIG", &catalog),
            ("JOBS_INTERVAL", "50ms"),
            (
                "TOLLGATE_TEST_CLOCK_OFFSET_FILE",
                &offset_file.display().to_string(),
            ),
        ],
    );
    let mut processes = Vec::new();
    for _ in 0..PROCESSES {
        processes.push(Service::start(&env).await);
    }
    let http = http_client();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut kills = 0;
    let mut now = t0.as_millis();
    while now <= end {
        move_clock_to(now);
        let mut before = Vec::new();
        for p in &processes {
            before.push(iterations(&http, p).await.unwrap_or((0.0, 0.0)));
        }
        // Now and then one process dies mid-step and a new one takes its place.
        if rng.random_bool(0.25) {
            let v = rng.random_range(0..processes.len());
            tokio::time::sleep(Duration::from_millis(rng.random_range(0..60))).await;
            processes[v].signal("KILL");
            let status = processes[v].wait_exit(Duration::from_secs(10)).await;
            assert!(!status.success(), "killed, not exited");
            processes[v] = Service::start(&env).await;
            before[v] = (0.0, 0.0);
            kills += 1;
        }
        // The step is done when one process finished two iterations of each job since and no
        // notice is due any more. (An item skipped because another job held its row — retried
        // 50 ms later in every process — must not be overtaken by the next step's events: in
        // production the next try comes 30 s later, long before the next event.)
        let mut waited = 0;
        'step: loop {
            for (p, b) in processes.iter().zip(&before) {
                if let Some((n, r)) = iterations(&http, p).await
                    && n >= b.0 + 2.0
                    && r >= b.1 + 2.0
                    && due_notices(&shared_db.db, now).await == 0
                {
                    break 'step;
                }
            }
            waited += 1;
            assert!(
                waited < 1_500,
                "no process finished its jobs twice within 30 s at {}; log of the first:\n{}",
                Timestamp::from_millis(now),
                processes[0].log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        now += STEP;
    }
    let got = outcome(&shared_db.db).await;
    for p in &processes {
        p.signal("KILL");
    }
    emu.shutdown().await;
    eprintln!(
        "{kills} kills; {} messages and {debits} renewal debits, as one instance",
        want.0.len()
    );
    assert!(kills >= 20, "kills: {kills}");
    assert_eq!(got.1, want.1, "balances, renewal debits and dates");
    assert_eq!(got.0, want.0, "messages");
}
