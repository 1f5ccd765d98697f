//! docs/product.md §5 (broadcasts), end to end through the emulator on both backends: composed
//! in the console (bad HTML refused with the parser's error before anything is stored),
//! previewed, sent once per recipient however often Send is pressed, blocked users counted and
//! skipped next time, cancel final, a non-admin unable to touch any of it, replies first while
//! 2,000 users get a paid broadcast under Telegram's flood limits, and two kill -9s mid-send
//! leaving nobody with the message twice.

use std::collections::HashMap;
use std::time::Duration;

use telegram_emulator::{ControlClient, NewUser, TranscriptMessage};
use tollgate::admin::Actor;
use tollgate::app::AppOptions;
use tollgate::broadcast::{self, Status};
use tollgate::config::Language;
use tollgate::flags::{self, Flag};
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::{Clock, SystemClock};
use tollgate::users::{self, ImportedUser};

use crate::common::bot::{World, double_tap, handled, screen_after, screen_in};
use crate::common::service::Service;
use crate::common::telegram::{emulator, free_port, webhook_env, with};
use crate::common::wait_for;
use crate::db_test;

const ADMIN: i64 = 100_000_001;
const ADMINS: &str = "100000001";
/// Recipients get ids of their own, from here on.
const FIRST: i64 = 300_000_001;
/// What every test broadcast says (its visible text contains this).
const NEWS: &str = "new node in Amsterdam";

/// `n` users who started the bot (in the emulator) and are registered here (as an import
/// would: fast, without 2,000 /start conversations), `lang` for every one.
async fn recipients(tg: &ControlClient, db: &Db, first: i64, n: i64, lang: Language) -> Vec<i64> {
    registered(tg, db, first, n, lang, true).await
}

/// `n` users registered here; in the emulator they started the bot when `started` (when not,
/// Telegram answers 403 to the bot, as for an imported user who blocked it meanwhile).
async fn registered(
    tg: &ControlClient,
    db: &Db,
    first: i64,
    n: i64,
    lang: Language,
    started: bool,
) -> Vec<i64> {
    let ids: Vec<i64> = (first..first + n).collect();
    for chunk in ids.chunks(200) {
        let creations = chunk.iter().map(|id| {
            tg.create_user(NewUser {
                id: Some(*id),
                first_name: format!("U{id}"),
                language_code: Some(lang.code().into()),
                started,
                ..NewUser::default()
            })
        });
        for made in futures::future::join_all(creations).await {
            made.unwrap();
        }
        let now = SystemClock.now();
        let mut tx = db.begin().await.unwrap();
        for id in chunk {
            let user = ImportedUser {
                id: *id,
                username: None,
                language: lang,
                auto_renew: false,
                trial_used_at: None,
                bot_blocked_at: None,
                referral_code: None,
                created_at: now,
            };
            assert!(users::import(&mut tx, &user, now).await.unwrap().is_some());
        }
        tx.commit().await.unwrap();
    }
    ids
}

/// The admin, started in the emulator.
async fn admin_user(tg: &ControlClient) {
    tg.create_user(NewUser {
        id: Some(ADMIN),
        first_name: "Boss".into(),
        language_code: Some("en".into()),
        started: true,
        ..NewUser::default()
    })
    .await
    .unwrap();
    tg.send_text(ADMIN, "/start").await.unwrap();
    screen_in(tg, ADMIN, "Choose an action below.").await;
}

async fn press(tg: &ControlClient, chat: i64, m: &TranscriptMessage, label: &str) {
    let data = m.button_data(label).unwrap_or_else(|| {
        panic!(
            "no button {label:?} on {:?}: {:?}",
            m.text,
            m.callback_buttons()
        )
    });
    tg.press_button(chat, m.message_id, &data).await.unwrap();
}

/// Presses `label` on `m` and waits for that message to show `needle`.
async fn step(
    tg: &ControlClient,
    chat: i64,
    m: &TranscriptMessage,
    label: &str,
    needle: &str,
) -> TranscriptMessage {
    press(tg, chat, m, label).await;
    wait_for(
        &format!("message {} showing {needle:?}", m.message_id),
        Duration::from_secs(30),
        || async {
            let t = tg.transcript(chat).await.unwrap();
            t.bot_messages()
                .find(|x| {
                    x.message_id == m.message_id
                        && x.text.as_deref().is_some_and(|s| s.contains(needle))
                })
                .cloned()
        },
    )
    .await
}

/// /admin → Broadcasts → New, then `text`: the screen that answers it.
async fn compose(tg: &ControlClient, text: &str, answer: &str) -> TranscriptMessage {
    let before = tg
        .transcript(ADMIN)
        .await
        .unwrap()
        .bot_messages()
        .map(|m| m.message_id)
        .max()
        .unwrap_or(0);
    tg.send_text(ADMIN, "/admin").await.unwrap();
    let home = screen_after(tg, ADMIN, before, "Admin console").await;
    let list = step(tg, ADMIN, &home, "Broadcasts", "Broadcasts").await;
    let ask = step(
        tg,
        ADMIN,
        &list,
        "New broadcast",
        "Send the broadcast's text",
    )
    .await;
    tg.send_text(ADMIN, text).await.unwrap();
    screen_after(tg, ADMIN, ask.message_id, answer).await
}

/// From a draft's screen: `audience` chosen, paid or not, previewed, and Send pressed (twice
/// at once, as a double tap). Returns the broadcast's id.
async fn send(
    tg: &ControlClient,
    db: &Db,
    draft: &TranscriptMessage,
    audience: &str,
    paid: bool,
    expect: &str,
) -> i64 {
    let mut screen = step(tg, ADMIN, draft, audience, &format!("Audience: {audience}")).await;
    if paid {
        screen = step(tg, ADMIN, &screen, "Paid broadcast", "Paid: up to 1000").await;
    }
    assert!(
        screen.text.as_deref().unwrap().contains(expect),
        "{:?}",
        screen.text
    );
    let confirm = step(tg, ADMIN, &screen, "Preview and send", "Send broadcast #").await;
    // The exact message comes first, to the admin only.
    let preview = screen_after(tg, ADMIN, confirm.message_id, NEWS).await;
    assert_eq!(
        preview
            .reply_markup
            .as_ref()
            .and_then(|m| m["inline_keyboard"][0][0]["url"].as_str()),
        Some("https://example.com/news")
    );
    let id: i64 = confirm
        .text
        .as_deref()
        .unwrap()
        .split('#')
        .nth(1)
        .unwrap()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let data = confirm.button_data("Confirm").unwrap();
    handled(db, &double_tap(tg, ADMIN, confirm.message_id, &data).await).await;
    id
}

async fn wait_status(db: &Db, id: i64, status: Status, within: Duration) -> broadcast::Broadcast {
    wait_for(&format!("broadcast {id} {status:?}"), within, || async {
        broadcast::get(db, id)
            .await
            .unwrap()
            .filter(|b| b.status == status)
    })
    .await
}

/// How many messages of `chat` contain the broadcast's text.
async fn received(tg: &ControlClient, chat: i64) -> usize {
    let t = tg.transcript(chat).await.unwrap();
    t.bot_messages()
        .filter(|m| m.text.as_deref().is_some_and(|x| x.contains(NEWS)))
        .count()
}

async fn count(db: &Db, sql: &'static str, arg: &str) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).bind(arg).fetch_one(p).await).unwrap()
}

fn text_with_button() -> String {
    format!("<b>News</b>: {NEWS} &amp; more\n---\nOpen | https://example.com/news")
}

db_test!(async fn a_broadcast_reaches_its_audience_once_and_blocked_users_are_counted_then_skipped(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    admin_user(tg).await;
    // Three blocked the bot without it hearing of it (Telegram answers 403 to a send).
    let blocked = registered(tg, db, FIRST, 3, Language::En, false).await;
    let mut people = blocked.clone();
    people.extend(recipients(tg, db, FIRST + 3, 37, Language::En).await);
    let russians = recipients(tg, db, FIRST + 1000, 5, Language::Ru).await;
    let blocked = &blocked[..];

    // Bad markup: refused with the parser's error; nothing stored.
    let refused = compose(tg, "<b>Hello <i>world</b>", "cannot be sent").await;
    assert!(
        refused.text.as_deref().unwrap().contains("Unmatched end tag at byte offset 17, expected \"</i>\", found \"</b>\""),
        "{:?}", refused.text
    );
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM broadcasts WHERE $1 = $1", "").await, 0);
    // A corrected text answers the same question.
    tg.send_text(ADMIN, &text_with_button()).await.unwrap();
    let draft = screen_after(tg, ADMIN, refused.message_id, "Draft #").await;
    // Everyone so far: the admin (registered by /admin), 40 + 5 recipients.
    assert!(draft.text.as_deref().unwrap().contains("Everyone — 46 recipients"), "{:?}", draft.text);
    let by_language = step(tg, ADMIN, &draft, "Language ru", "Language ru — 5 recipients").await;
    let id = send(tg, db, &by_language, "Everyone", false, "46 recipients").await;

    let done = wait_status(db, id, Status::Done, Duration::from_secs(60)).await;
    for p in people.iter().chain(&russians) {
        let want = usize::from(!blocked.contains(p));
        assert_eq!(received(tg, *p).await, want, "user {p}");
    }
    assert_eq!((done.recipients, done.sent, done.blocked, done.failed), (46, 43, 3, 0));
    for b in blocked {
        assert!(users::bot_blocked_at(db, *b).await.unwrap().is_some(), "{b} marked unreachable");
    }
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = $1", "broadcast-start").await, 1, "a double tap starts it once");
    // The progress message ends with the counts.
    let progress = screen_in(tg, ADMIN, &format!("Broadcast #{id} — done")).await;
    let _ = progress;

    // Next time the blocked users are not in the audience at all.
    // This time with a photo (the text its caption).
    let with_photo = format!("{}\nphoto: https://example.com/p.jpg", text_with_button());
    let again = compose(tg, &with_photo, "Draft #").await;
    let id2 = send(tg, db, &again, "Everyone", false, "Everyone — 43 recipients").await;
    let done2 = wait_status(db, id2, Status::Done, Duration::from_secs(60)).await;
    assert_eq!((done2.recipients, done2.sent, done2.blocked), (43, 43, 0));
    let t = tg.transcript(people[5]).await.unwrap();
    let photo = t.bot_messages().filter(|m| m.text.as_deref().is_some_and(|x| x.contains(NEWS))).last().unwrap();
    assert_eq!(photo.photo.as_ref().map(|p| p.url.as_str()), Some("https://example.com/p.jpg"));
    for b in blocked {
        let key = format!("bcast:{id2}:{b}");
        assert!(tollgate::telegram::outbox::get_by_key(db, &key).await.unwrap().is_none(), "{b} skipped");
    }
    // The history lists both, with their counts and who sent them.
    tg.send_text(ADMIN, "/admin").await.unwrap();
    let home = screen_in(tg, ADMIN, "Admin console").await;
    let list = step(tg, ADMIN, &home, "Broadcasts", "admin 100000001").await;
    let text = list.text.unwrap();
    assert!(text.contains(&format!("#{id} ")) && text.contains("sent 43, failed 0, blocked 3 of 46"), "{text}");
    assert!(text.contains(&format!("#{id2} ")) && text.contains("sent 43, failed 0, blocked 0 of 43"), "{text}");
    w.stop().await;
});

db_test!(async fn a_non_admin_cannot_see_start_or_cancel_a_broadcast(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    admin_user(tg).await;
    let people = recipients(tg, db, FIRST, 5, Language::En).await;
    let kim = people[0];
    let draft = compose(tg, &text_with_button(), "Draft #").await;
    let id: i64 = draft.text.as_deref().unwrap().split('#').nth(1).unwrap()
        .split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap();
    tg.send_text(kim, "/start").await.unwrap();
    let menu = screen_in(tg, kim, "Choose an action below.").await;
    let stale = w.forge(kim, menu.message_id, "nonsense").await;
    for data in [
        "a:bc".to_owned(),
        "a:bc:new".to_owned(),
        format!("a:bc:ed:{id}"),
        format!("a:bc:dr:{id}:all:1"),
        format!("a:c:bs:{id}:all:0"),
        format!("a:d:bs:{id}:all:0:{}", menu.message_id),
        format!("a:c:bx:{id}"),
        format!("a:d:bx:{id}:{}", menu.message_id),
    ] {
        let outcome = w.forge(kim, menu.message_id, &data).await;
        assert_eq!(
            outcome.answer.as_ref().map(|a| a.text.clone()),
            stale.answer.as_ref().map(|a| a.text.clone()),
            "{data}"
        );
    }
    let ids = [w.forge(kim, menu.message_id, &format!("a:d:bs:{id}:all:0:7")).await.update_id.unwrap()];
    handled(db, &ids).await;
    assert_eq!(broadcast::get(db, id).await.unwrap().unwrap().status, Status::Draft, "a forged send or cancel changed it");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE $1", "bcast%").await, 0, "nothing queued");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE $1 = $1", "").await, 0);
    for p in &people {
        assert_eq!(received(tg, *p).await, 0);
    }
    let t = tg.transcript(kim).await.unwrap();
    assert!(t.bot_messages().all(|m| !m.text.as_deref().unwrap_or("").contains("Broadcast")), "the console showed itself");
    w.stop().await;
});

db_test!(async fn after_a_cancel_is_confirmed_nobody_gets_the_broadcast(t) {
    // Telegram's real flood limits; the free budget (20/s) makes 300 recipients take 15 s.
    let Some(w) = World::start_limited(t, &[("ADMIN_IDS", ADMINS), ("OUTBOX_RATE", "20")], AppOptions::default()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    admin_user(tg).await;
    let people = recipients(tg, db, FIRST, 300, Language::En).await;
    let draft = compose(tg, &text_with_button(), "Draft #").await;
    let id = send(tg, db, &draft, "Everyone", false, "301 recipients").await;
    // The progress message carries Cancel; pressed once some have it.
    let progress = screen_in(tg, ADMIN, &format!("Broadcast #{id}")).await;
    wait_for("30 recipients served", Duration::from_secs(60), || async {
        let c = tollgate::telegram::outbox::count_keyed(db, &broadcast::key_prefix(id)).await.unwrap();
        (c.sent >= 30).then_some(())
    })
    .await;
    let confirm = step(tg, ADMIN, &progress, "Cancel broadcast", &format!("Cancel broadcast #{id}?")).await;
    let data = confirm.button_data("Confirm").unwrap();
    handled(db, &double_tap(tg, ADMIN, confirm.message_id, &data).await).await;
    screen_in(tg, ADMIN, "Broadcast cancelled").await;
    let cancelled = broadcast::get(db, id).await.unwrap().unwrap();
    assert_eq!(cancelled.status, Status::Cancelled);
    let mut got: HashMap<i64, usize> = HashMap::new();
    for p in &people {
        got.insert(*p, received(tg, *p).await);
    }
    let delivered = got.values().filter(|n| **n == 1).count();
    assert!(got.values().all(|n| *n <= 1), "nobody twice");
    assert!((30..300).contains(&delivered), "{delivered} delivered before the cancel");
    let c = tollgate::telegram::outbox::count_keyed(db, &broadcast::key_prefix(id)).await.unwrap();
    assert_eq!(c.pending, 0, "nothing left to send");
    // A reply to the admin goes through the sender after the cancel: by then anything the
    // sender still held would have gone out.
    tg.send_text(ADMIN, "/admin").await.unwrap();
    let marker = screen_after(tg, ADMIN, confirm.message_id, "Admin console").await;
    let _ = marker;
    let feeder_turns = tollgate::broadcast::get(db, id).await.unwrap().unwrap();
    assert_eq!(feeder_turns.status, Status::Cancelled);
    let mut after = 0;
    for p in &people {
        after += received(tg, *p).await;
    }
    assert_eq!(after, delivered, "nobody got it after the cancel was confirmed");
    let c2 = tollgate::telegram::outbox::count_keyed(db, &broadcast::key_prefix(id)).await.unwrap();
    assert_eq!(c2.sent as usize, delivered, "what was recorded sent is what arrived");
    assert_eq!(count(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = $1", "broadcast-cancel").await, 1);
    let before: String = on_db!(db, p => sqlx::query_scalar("SELECT before FROM audit_log WHERE action = 'broadcast-cancel'").fetch_one(p).await).unwrap();
    assert_eq!(before, "sending");
    let counters = tg.counters().await.unwrap();
    assert_eq!(counters.responses_429, 0, "within Telegram's limits");
    w.stop().await;
});

db_test!(async fn two_thousand_users_get_a_paid_broadcast_once_under_flood_limits_while_replies_go_first(t) {
    let Some(w) = World::start_limited(t, &[("ADMIN_IDS", ADMINS), ("OUTBOX_RATE", "25")], AppOptions::default()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    admin_user(tg).await;
    let people = recipients(tg, db, FIRST, 2000, Language::En).await;
    // Users outside the audience write while it goes out (a recipient's reply may also wait
    // for Telegram's one message a second per chat, right after their broadcast message):
    // each /start is answered with the menu; the time from the message to its reply is
    // measured.
    let talkers = recipients(tg, db, FIRST + 10_000, 20, Language::Ru).await;
    let draft = compose(tg, &text_with_button(), "Draft #").await;
    let id = send(tg, db, &draft, "Language en", true, "2001 recipients").await;
    let mut latencies = Vec::new();
    let mut turn = 0;
    loop {
        let b = broadcast::get(db, id).await.unwrap().unwrap();
        if b.status != Status::Sending && turn >= talkers.len() {
            break;
        }
        let who = talkers[turn % talkers.len()];
        turn += 1;
        let before = tg.transcript(who).await.unwrap().bot_messages().map(|m| m.message_id).max().unwrap_or(0);
        let asked = tokio::time::Instant::now();
        tg.send_text(who, "/start").await.unwrap();
        wait_for("the reply", Duration::from_secs(30), || async {
            let t = tg.transcript(who).await.unwrap();
            t.bot_messages()
                .any(|m| m.message_id > before && m.text.as_deref().is_some_and(|x| x.contains("Выберите действие")))
                .then_some(())
        })
        .await;
        latencies.push(asked.elapsed());
        assert!(turn < 10_000, "the broadcast never ended");
    }
    let done = wait_status(db, id, Status::Done, Duration::from_secs(120)).await;
    let mut twice = 0;
    for p in &people {
        let n = received(tg, *p).await;
        assert!(n <= 1, "user {p} got it {n} times");
        twice += usize::from(n != 1);
    }
    assert_eq!(twice, 0, "everyone got it");
    for t in &talkers {
        assert_eq!(received(tg, *t).await, 0, "{t} is not in the audience");
    }
    assert_eq!((done.sent, done.failed, done.blocked), (2001, 0, 0));
    let counters = tg.counters().await.unwrap();
    assert_eq!(counters.responses_429, 0, "zero 429 answers");
    assert!(counters.paid_broadcast_messages >= 2001, "{counters:?}");
    latencies.sort();
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    let took = done.finished_at.unwrap().as_millis() - done.started_at.unwrap().as_millis();
    eprintln!(
        "2001 recipients in {took} ms ({:.0}/s); {} replies during it, p50 {:?}, p99 {:?}, max {:?}",
        2001.0 * 1000.0 / took as f64,
        latencies.len(),
        latencies[latencies.len() / 2],
        p99,
        latencies.last().unwrap()
    );
    assert!(p99 < Duration::from_secs(2), "replies p99 {p99:?}");
    w.stop().await;
});

db_test!(async fn killed_9_twice_mid_broadcast_nobody_gets_it_twice_and_the_rest_get_it_once(t) {
    let emu = emulator(true).await;
    let tg = emu.client();
    let port = free_port();
    let env = with(webhook_env(&t.url, &emu, port), &[
        ("ADMIN_IDS", ADMINS),
        ("OUTBOX_RATE", "25"),
        ("RUST_LOG", "warn,tollgate::app=info,tollgate::broadcast=info"),
    ]);
    let people = recipients(&tg, &t.db, FIRST, 400, Language::En).await;
    let mut svc = Service::start(&env).await;
    admin_user(&tg).await;
    let draft = compose(&tg, &text_with_button(), "Draft #").await;
    let id = send(&tg, &t.db, &draft, "Everyone", false, "401 recipients").await;
    for kill in 0..2 {
        // Well into the sending (the free budget sends 401 in about 16 s).
        let reached = 60 + 120 * kill;
        wait_for("some sent", Duration::from_secs(90), || async {
            let c = tollgate::telegram::outbox::count_keyed(&t.db, &broadcast::key_prefix(id)).await.unwrap();
            (c.sent >= reached).then_some(())
        })
        .await;
        svc.signal("KILL");
        assert!(!svc.wait_exit(Duration::from_secs(10)).await.success(), "killed, not exited");
        svc = Service::start(&env).await;
    }
    let done = wait_status(&t.db, id, Status::Done, Duration::from_secs(180)).await;
    let mut missing = 0;
    for p in &people {
        let n = received(&tg, *p).await;
        assert!(n <= 1, "user {p} got it {n} times");
        missing += usize::from(n == 0);
    }
    // A message whose call a kill cut may or may not have reached Telegram: it is not sent
    // again, and is counted as failed with that reason.
    let uncertain = count(&t.db,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE dedupe_key LIKE $1 AND status = 'failed' AND last_error LIKE 'not sent again%'",
        &format!("bcast:{id}:%")).await;
    assert!(missing as i64 <= uncertain, "{missing} missing, {uncertain} cut by the kills");
    assert!(uncertain <= 2 * 16, "at most the calls in flight at each kill: {uncertain}");
    assert_eq!(done.sent + done.failed, 401);
    assert_eq!(tg.counters().await.unwrap().responses_429, 0);
    eprintln!("2 kills: {} sent, {uncertain} cut mid-call (not sent again), {missing} without the message", done.sent);
    svc.signal("TERM");
    assert!(svc.wait_exit(Duration::from_secs(15)).await.success());
    emu.shutdown().await;
});

db_test!(async fn the_broadcasts_flag_pauses_sending_and_resumes_where_it_stopped(t) {
    let Some(w) = World::start_limited(t, &[("ADMIN_IDS", ADMINS), ("OUTBOX_RATE", "20")], AppOptions::default()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    admin_user(tg).await;
    let people = recipients(tg, db, FIRST, 150, Language::En).await;
    let draft = compose(tg, &text_with_button(), "Draft #").await;
    let id = send(tg, db, &draft, "Everyone", false, "151 recipients").await;
    let prefix = broadcast::key_prefix(id);
    wait_for("20 sent", Duration::from_secs(60), || async {
        let c = tollgate::telegram::outbox::count_keyed(db, &prefix).await.unwrap();
        (c.sent >= 20).then_some(())
    })
    .await;
    flags::set_committed(db, Flag::Broadcasts, false, Actor::CommandLine, SystemClock.now()).await.unwrap();
    // What was queued drains (a few seconds' worth at most); nothing more is queued.
    let drained = wait_for("the queued part sent", Duration::from_secs(30), || async {
        let c = tollgate::telegram::outbox::count_keyed(db, &prefix).await.unwrap();
        (c.pending == 0).then_some(c)
    })
    .await;
    screen_in(tg, ADMIN, &format!("Broadcast #{id} — paused")).await;
    let paused = broadcast::get(db, id).await.unwrap().unwrap();
    assert_eq!(paused.status, Status::Sending);
    assert!(paused.queued < 151, "paused part-way: {} queued", paused.queued);
    let c = tollgate::telegram::outbox::count_keyed(db, &prefix).await.unwrap();
    assert_eq!((c.sent, c.pending), (drained.sent, 0), "nothing queued while paused");
    assert_eq!(paused.queued, drained.sent + drained.failed + drained.blocked);
    flags::set_committed(db, Flag::Broadcasts, true, Actor::CommandLine, SystemClock.now()).await.unwrap();
    let done = wait_status(db, id, Status::Done, Duration::from_secs(60)).await;
    assert_eq!((done.sent, done.queued), (151, 151));
    for p in &people {
        assert_eq!(received(tg, *p).await, 1, "user {p}");
    }
    assert_eq!(tg.counters().await.unwrap().responses_429, 0);
    w.stop().await;
});

db_test!(async fn a_message_whose_call_a_crash_cut_is_never_sent_again_and_the_broadcast_still_ends(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let (tg, db) = (&w.tg, &w.app.db);
    let people = recipients(tg, db, FIRST, 10, Language::En).await;
    // Feeding paused while the scene is set.
    flags::set_committed(db, Flag::Broadcasts, false, Actor::CommandLine, SystemClock.now()).await.unwrap();
    let content = broadcast::Content::parse(&text_with_button()).unwrap();
    let now = SystemClock.now();
    let mut tx = db.begin().await.unwrap();
    let id = broadcast::create_draft(&mut tx, ADMIN, &content, now).await.unwrap();
    assert!(broadcast::start(&mut tx, id, tollgate::users::Audience::All, false, 10, now).await.unwrap());
    tx.commit().await.unwrap();
    // The first five were queued, and a process that died had started the calls of two of
    // them (claimed, call started, claim lapsed, no outcome).
    let b = broadcast::get(db, id).await.unwrap().unwrap();
    let first: Vec<_> = people[..5].iter().map(|u| b.message_to(*u)).collect();
    let lapsed = now.as_millis() - 60_000;
    let cut = format!("{}{}", broadcast::key_prefix(id), people[1]);
    let cut_too = format!("{}{}", broadcast::key_prefix(id), people[3]);
    let mut tx = db.begin().await.unwrap();
    assert!(broadcast::advance(&mut tx, id, 0, people[4], 5).await.unwrap());
    tollgate::telegram::outbox::enqueue_all(&mut tx, &first, now).await.unwrap();
    tollgate::on_tx!(&mut tx, c => sqlx::query(
        "UPDATE outbox SET claimed_by = 'dead-process', claimed_until = $1, call_started_at = $1, attempts = 1
         WHERE dedupe_key IN ($2, $3)")
        .bind(lapsed).bind(&cut).bind(&cut_too).execute(c).await.map(|r| r.rows_affected())).unwrap();
    tx.commit().await.unwrap();
    flags::set_committed(db, Flag::Broadcasts, true, Actor::CommandLine, SystemClock.now()).await.unwrap();
    let done = wait_status(db, id, Status::Done, Duration::from_secs(60)).await;
    assert_eq!((done.sent, done.failed, done.blocked), (8, 2, 0));
    for (i, p) in people.iter().enumerate() {
        let want = usize::from(i != 1 && i != 3);
        assert_eq!(received(tg, *p).await, want, "user {p}");
    }
    let row = tollgate::telegram::outbox::get_by_key(db, &cut).await.unwrap().unwrap();
    assert_eq!(row.status, "failed");
    assert!(row.last_error.unwrap().starts_with("not sent again"), "the reason is kept");
    w.stop().await;
});
