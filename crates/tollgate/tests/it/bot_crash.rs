//! docs/reliability.md A6, B2, F1, F8, F10 with the bot that takes money: `tollgate run` killed -9 at
//! random moments, 20 times, while new users flood it through the emulator — /start, trials,
//! plans paid with Stars, Stars top-ups and plans paid from the balance.
//!
//! The expected state is computed from what Telegram (the emulator) says happened — which
//! invoices were paid, for how much, with which payload — and from what the flood did (the
//! trials and balance purchases it saw confirmed), then compared with the database: every
//! paid invoice applied exactly once, each balance equal to its ledger and to what was paid
//! in, each user's access exactly as long as what they got, every update stored and handled.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use telegram_emulator::control::types::{PaymentStatus, PressButton};
use telegram_emulator::{ControlClient, MessageFilter, NewUser, TranscriptMessage};
use tollgate::billing;
use tollgate::on_db;
use tollgate::store::Db;

use crate::common::bot::{message_within, screen_after_within};
use crate::common::service::Service;
use crate::common::telegram::{emulator, free_port, webhook_env, with};
use crate::db_test;

const KILLS: usize = 20;
const USERS: usize = 48;
const DAY_MS: i64 = 86_400_000;
/// A screen that does not come within this is a lost update. Not a minute: while the process
/// is killed again and again, a reply waits for a life long enough to take the sender's lease
/// (10 s after its killed holder's last renewal) and the claims a killed sender held (15 s).
/// On a loaded CI machine the twenty lives take two minutes or more, and the first user's
/// /start went unanswered for all of the emulator's longest wait (120 s), which was then the
/// real bound: each wait here is several of the emulator's, up to this.
const SCREEN: Duration = Duration::from_secs(240);

/// The bot's screen after `after` containing `needle`, within [`SCREEN`].
async fn screen_after(
    tg: &ControlClient,
    user: i64,
    after: i64,
    needle: &str,
) -> TranscriptMessage {
    screen_after_within(tg, user, after, needle, SCREEN).await
}

/// What an invoice the flood was shown sells.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Sells {
    Days(i64),
    /// Credit in minor units of the base currency.
    Credit(i64),
}

/// What one user did and saw confirmed.
#[derive(Debug, Default)]
struct Journey {
    user: i64,
    trial: bool,
    /// Invoice message id → what it sells.
    invoices: BTreeMap<i64, Sells>,
    /// Plans paid from the balance (1 month each), confirmed on screen.
    balance_buys: i64,
    /// `pay_invoice` outcomes that were not `Paid` (the bot was down at pre-checkout).
    unpaid: usize,
}

/// Writes `text`; returns the id of the user's message and the bot's screen containing `needle`.
async fn command(
    tg: &ControlClient,
    user: i64,
    text: &str,
    needle: &str,
) -> (i64, TranscriptMessage) {
    let sent = tg.send_text(user, text).await.unwrap();
    let screen = screen_after(tg, user, sent.message_id, needle).await;
    (sent.message_id, screen)
}

/// Presses the button labelled `label` on `message` as drawn now (its data may carry a
/// per-screen nonce); does not wait for the answer, the bot may be down.
async fn press(tg: &ControlClient, user: i64, message: &TranscriptMessage, label: &str) {
    let data = message.button_data(label).unwrap_or_else(|| {
        panic!(
            "user {user}: no button {label:?} on {:?}: {:?}",
            message.text,
            message.callback_buttons()
        )
    });
    tg.press_button_with(PressButton {
        chat_id: user,
        message_id: message.message_id,
        callback_data: data,
        wait_ms: Some(0),
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn invoice_after(tg: &ControlClient, user: i64, after: i64) -> TranscriptMessage {
    let filter = MessageFilter {
        kind: Some("invoice".into()),
        after_message_id: Some(after),
        ..MessageFilter::from_bot()
    };
    message_within(tg, user, filter, SCREEN)
        .await
        .unwrap_or_else(|e| panic!("user {user}: no invoice after message {after}: {e}"))
}

/// Pays `invoice`; when Telegram took the money, waits for the bot to say `confirmed`.
async fn pay(
    tg: &ControlClient,
    j: &mut Journey,
    invoice: &TranscriptMessage,
    sells: Sells,
    confirmed: &str,
) -> bool {
    j.invoices.insert(invoice.message_id, sells);
    let outcome = tg.pay_invoice(j.user, invoice.message_id).await.unwrap();
    if outcome.status != PaymentStatus::Paid {
        j.unpaid += 1;
        return false;
    }
    screen_after(tg, j.user, invoice.message_id, confirmed).await;
    true
}

/// One new user's visit, scripted by `rng`: /start, maybe the trial, then one to three of: a
/// plan paid with Stars, a Stars top-up followed by plans paid from the balance.
async fn visit(tg: ControlClient, n: usize, mut rng: StdRng) -> Journey {
    let user = tg
        .create_user(NewUser::new(format!("Flood{n}")).language("en"))
        .await
        .unwrap()
        .id;
    let mut j = Journey {
        user,
        ..Journey::default()
    };
    let (start, menu) = command(&tg, user, "/start", "Choose an action below.").await;
    if rng.random_bool(0.5) {
        press(&tg, user, &menu, "Free trial").await;
        screen_after(&tg, user, start, "Your free trial is on").await;
        j.trial = true;
    }
    let mut topped_up = false;
    for _ in 0..rng.random_range(1..=3) {
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..200))).await;
        if !topped_up && rng.random_bool(0.5) {
            topped_up = true;
            // What is left after the plans bought (149 RUB each) would pay for another: a
            // second debit for one purchase could not hide behind a short balance.
            let (label, credit, buys) = [
                ("⭐ 250 ", 37_500, 1),
                ("⭐ 500 ", 75_000, 2),
                ("⭐ 500 ", 75_000, 3),
            ][rng.random_range(0..3)];
            let (asked, balance) = command(&tg, user, "/balance", "Balance:").await;
            press(&tg, user, &balance, label).await;
            let invoice = invoice_after(&tg, user, asked).await;
            if !pay(
                &tg,
                &mut j,
                &invoice,
                Sells::Credit(credit),
                "added to your balance",
            )
            .await
            {
                continue;
            }
            for _ in 0..buys {
                let (asked, plans) = command(&tg, user, "/buy", "Choose a plan").await;
                press(&tg, user, &plans, "1 month").await;
                let how = screen_after(&tg, user, asked, "Choose how to pay").await;
                press(&tg, user, &how, "From balance").await;
                screen_after(&tg, user, asked, "from your balance").await;
                j.balance_buys += 1;
            }
        } else {
            let (label, days) = if rng.random_bool(0.7) {
                ("1 month", 30)
            } else {
                ("3 months", 90)
            };
            let (asked, plans) = command(&tg, user, "/buy", "Choose a plan").await;
            press(&tg, user, &plans, label).await;
            let how = screen_after(&tg, user, asked, "Choose how to pay").await;
            press(&tg, user, &how, "Telegram Stars").await;
            let invoice = invoice_after(&tg, user, asked).await;
            pay(&tg, &mut j, &invoice, Sells::Days(days), "Payment received").await;
        }
    }
    j
}

/// A paid invoice as Telegram reports it.
#[derive(Debug)]
struct Paid {
    user: i64,
    charge: String,
    amount: i64,
    purchase: i64,
    sells: Sells,
}

/// Every invoice the emulator marks paid, matched with what the flood was selling in it.
async fn paid_invoices(tg: &ControlClient, journeys: &[Journey]) -> Vec<Paid> {
    let mut paid = Vec::new();
    for j in journeys {
        let transcript = tg.transcript(j.user).await.unwrap();
        for m in transcript.bot_messages() {
            let Some(inv) = &m.invoice else { continue };
            let Some(charge) = &inv.paid_by_charge else {
                continue;
            };
            let sells = *j.invoices.get(&m.message_id).unwrap_or_else(|| {
                panic!(
                    "user {}: invoice {} paid but never shown to the flood",
                    j.user, m.message_id
                )
            });
            assert_eq!(inv.currency, "XTR");
            paid.push(Paid {
                user: j.user,
                charge: charge.clone(),
                amount: inv.total_amount,
                purchase: billing::parse_payload(&inv.payload).expect("our payload"),
                sells,
            });
        }
    }
    paid
}

async fn rows<T>(db: &Db, sql: &'static str) -> Vec<T>
where
    T: Send + Unpin,
    for<'r> T:
        sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    on_db!(db, p => sqlx::query_as::<_, T>(sql).fetch_all(p).await).unwrap()
}

/// id, user, kind, status, days, credit
type PurchaseRow = (i64, i64, String, String, Option<i64>, Option<i64>);

/// Compares the database with what Telegram and the flood say happened.
async fn verify(db: &Db, tg: &ControlClient, journeys: &[Journey]) {
    let paid = paid_invoices(tg, journeys).await;

    // Every paid invoice applied exactly once: one payment row per charge, with its amount,
    // tied to the purchase its payload names, which is paid; no other payment, no other
    // paid Stars purchase.
    let payments: Vec<(String, i64, i64, String, Option<i64>, String)> = rows(db,
        "SELECT provider_payment_id, user_id, amount, currency, purchase_id, status FROM payments ORDER BY id").await;
    let got: BTreeMap<&str, _> = payments.iter().map(|p| (p.0.as_str(), p)).collect();
    assert_eq!(got.len(), payments.len(), "one row per charge");
    assert_eq!(
        payments.len(),
        paid.len(),
        "one payment per paid invoice: {payments:?} vs {paid:?}"
    );
    for p in &paid {
        let row = got
            .get(p.charge.as_str())
            .unwrap_or_else(|| panic!("paid invoice never applied: {p:?}"));
        assert_eq!(
            (row.1, row.2, row.3.as_str(), row.4, row.5.as_str()),
            (p.user, p.amount, "XTR", Some(p.purchase), "captured"),
            "{p:?}"
        );
    }
    let purchases: Vec<PurchaseRow> = rows(db,
        "SELECT id, user_id, kind, status, CAST(days AS BIGINT), credit_amount FROM purchases WHERE provider = 'stars' ORDER BY id").await;
    let paid_ids: BTreeSet<i64> = paid.iter().map(|p| p.purchase).collect();
    for (id, user, kind, status, days, credit) in &purchases {
        match paid.iter().find(|p| p.purchase == *id) {
            Some(p) => {
                assert_eq!((status.as_str(), *user), ("paid", p.user), "purchase {id}");
                match p.sells {
                    Sells::Days(d) => {
                        assert_eq!((kind.as_str(), *days), ("plan", Some(d)), "purchase {id}")
                    }
                    Sells::Credit(c) => assert_eq!(
                        (kind.as_str(), *credit),
                        ("topup", Some(c)),
                        "purchase {id}"
                    ),
                }
            }
            None => assert_ne!(
                status, "paid",
                "purchase {id} is paid but no invoice of it was"
            ),
        }
    }
    assert_eq!(paid_ids.len(), paid.len(), "one paid invoice per purchase");

    // Each balance equals its ledger and what was paid in minus what the flood spent.
    let ledger: Vec<(i64, i64, i64, String)> = rows(
        db,
        "SELECT user_id, delta, balance_after, reason FROM balance_ledger ORDER BY id",
    )
    .await;
    let balances: Vec<(i64, i64)> = rows(db, "SELECT id, balance FROM users").await;
    let balances: BTreeMap<i64, i64> = balances.into_iter().collect();
    assert_eq!(balances.len(), journeys.len(), "one user row per new user");
    for j in journeys {
        let mine: Vec<_> = ledger.iter().filter(|l| l.0 == j.user).collect();
        let mut running = 0;
        for l in &mine {
            running += l.1;
            assert_eq!(
                l.2, running,
                "user {}: balance_after follows the deltas",
                j.user
            );
        }
        let credits: Vec<i64> = paid
            .iter()
            .filter(|p| p.user == j.user)
            .filter_map(|p| match p.sells {
                Sells::Credit(c) => Some(c),
                Sells::Days(_) => None,
            })
            .collect();
        let topups: Vec<i64> = mine
            .iter()
            .filter(|l| l.3 == "topup")
            .map(|l| l.1)
            .collect();
        let spent: Vec<i64> = mine
            .iter()
            .filter(|l| l.3 == "purchase")
            .map(|l| l.1)
            .collect();
        assert_eq!(
            topups, credits,
            "user {}: one credit per paid top-up",
            j.user
        );
        assert_eq!(
            spent,
            vec![-14_900; j.balance_buys as usize],
            "user {}: one debit per balance purchase",
            j.user
        );
        assert_eq!(
            mine.len(),
            topups.len() + spent.len(),
            "user {}: nothing else on the ledger",
            j.user
        );
        assert_eq!(
            balances[&j.user], running,
            "user {}: balance = ledger",
            j.user
        );
        assert_eq!(
            running,
            credits.iter().sum::<i64>() - 14_900 * j.balance_buys,
            "user {}",
            j.user
        );
    }

    // Each user's access is exactly as long as the trial, the plans paid and the plans bought
    // from the balance: one subscription, extended without a gap from its start.
    let subs: Vec<(i64, i64, i64)> = rows(
        db,
        "SELECT user_id, starts_at, expires_at FROM subscriptions",
    )
    .await;
    let subs: BTreeMap<i64, (i64, i64)> = subs.into_iter().map(|(u, s, e)| (u, (s, e))).collect();
    let trials: Vec<(i64,)> =
        rows(db, "SELECT id FROM users WHERE trial_used_at IS NOT NULL").await;
    let trials: BTreeSet<i64> = trials.into_iter().map(|t| t.0).collect();
    for j in journeys {
        assert_eq!(
            trials.contains(&j.user),
            j.trial,
            "user {}: trial used iff taken",
            j.user
        );
        let paid_days: i64 = paid
            .iter()
            .filter(|p| p.user == j.user)
            .map(|p| match p.sells {
                Sells::Days(d) => d,
                Sells::Credit(_) => 0,
            })
            .sum();
        let days = if j.trial { 3 } else { 0 } + paid_days + 30 * j.balance_buys;
        match subs.get(&j.user) {
            Some((starts, expires)) => assert_eq!(
                expires - starts,
                days * DAY_MS,
                "user {}: {days} days",
                j.user
            ),
            None => assert_eq!(days, 0, "user {}: {days} days but no subscription", j.user),
        }
    }
}

/// (inbox rows, rows not done)
async fn inbox(db: &Db) -> (i64, i64) {
    let all: Vec<(String,)> = rows(db, "SELECT status FROM tg_inbox").await;
    let open = all.iter().filter(|s| s.0 != "done").count();
    (all.len() as i64, open as i64)
}

db_test!(async fn the_paying_bot_killed_9_twenty_times_applies_every_payment_once(t) {
    let seed: u64 = std::env::var("TOLLGATE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    eprintln!("seed {seed} (TOLLGATE_CRASH_SEED)");
    let emu = emulator(false).await;
    let tg = emu.client();
    // Webhook intake: every life of the process takes updates at once (a polling process
    // would first wait out the killed one's lease, `pipeline_crash` covers that).
    let env = with(webhook_env(&t.url, &emu, free_port()), &[
        // Claims held by a killed process come back quickly.
        ("HANDLER_DEADLINE", "2s"),
        ("OUTBOX_PER_CHAT_INTERVAL", "20ms"),
        ("RUST_LOG", "warn,tollgate::app=info"),
    ]);
    let started = tokio::time::Instant::now();
    // The users arrive over the first seconds, then each goes at its own pace.
    let flood: Vec<_> = (0..USERS)
        .map(|n| {
            let tg = tg.clone();
            let rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000).wrapping_add(n as u64));
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(150 * n as u64)).await;
                visit(tg, n, rng).await
            })
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..KILLS {
        let mut svc = Service::start(&env).await;
        // A random moment of its life: right after boot, amid the backlog that built up while
        // it was down, or later, amid the flood.
        let life = if rng.random_bool(0.5) { rng.random_range(0..300) } else { rng.random_range(500..3000) };
        tokio::time::sleep(Duration::from_millis(life)).await;
        svc.signal("KILL");
        assert!(!svc.wait_exit(Duration::from_secs(10)).await.success(), "killed, not exited");
    }
    let killed_by = started.elapsed();
    let mut svc = Service::start(&env).await;
    let mut journeys = Vec::new();
    for visit in flood {
        journeys.push(visit.await.unwrap());
    }
    let flooded_by = started.elapsed();
    // Everything Telegram holds is delivered and every stored update handled.
    crate::common::wait_for("every update handled", SCREEN, || async {
        let c = tg.counters().await.ok()?;
        let (stored, open) = inbox(&t.db).await;
        (open == 0 && stored as u64 == c.updates_created).then_some(())
    })
    .await;
    let c = tg.counters().await.unwrap();
    assert_eq!(c.updates_dropped(), 0, "Telegram dropped nothing: {c:?}");
    let retried: Vec<(i64,)> = rows(&t.db, "SELECT update_id FROM tg_inbox WHERE attempts > 1").await;
    verify(&t.db, &tg, &journeys).await;

    // Bot API sends have no idempotency key: only a send whose result a kill cut may repeat.
    let mut repeats = 0;
    for j in &journeys {
        let t = tg.transcript(j.user).await.unwrap();
        let texts: Vec<_> = t.bot_messages().filter_map(|m| m.text.clone()).filter(|x| x.contains("Payment received") || x.contains("added to your balance")).collect();
        let want = j.invoices.len() - j.unpaid;
        assert!(texts.len() >= want, "user {}: a confirmation per payment: {texts:?}", j.user);
        repeats += texts.len() - want;
    }
    assert!(repeats <= KILLS, "{repeats} repeated confirmations for {KILLS} kills");
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
    let paid: usize = journeys.iter().map(|j| j.invoices.len() - j.unpaid).sum();
    let unpaid: usize = journeys.iter().map(|j| j.unpaid).sum();
    let trials = journeys.iter().filter(|j| j.trial).count();
    let from_balance: i64 = journeys.iter().map(|j| j.balance_buys).sum();
    eprintln!(
        "{KILLS} kills in {killed_by:?}, flood done at {flooded_by:?}: {USERS} users, {trials} trials, \
         {paid} invoices paid, {unpaid} not (bot down at pre-checkout), {from_balance} plans from the balance, \
         {} updates ({} claimed again after a kill), {repeats} repeated confirmations",
        c.updates_created,
        retried.len()
    );
    emu.shutdown().await;
});
