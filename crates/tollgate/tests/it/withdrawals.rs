//! docs/product.md §3.7, §4, §5: withdrawals of referral earnings through the emulator on both
//! backends — a request outside the rules refused with its reason and nothing reserved, the
//! amount reserved at once by one ledger debit however often Confirm is pressed, and each
//! request decided once: two admins marking it paid at the same moment pay it once, and paid
//! racing rejected leaves one outcome with the balance right for it.

use telegram_emulator::control::types::PressButton;
use telegram_emulator::{NewUser, TranscriptMessage};
use tollgate::app::AppOptions;
use tollgate::billing::withdrawals::{self, Decided, Requested, Status};
use tollgate::billing::{Reason, ledger};
use tollgate::config::Language;
use tollgate::domain::money::{Currency, Money};
use tollgate::i18n::format;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::time::{Clock, SystemClock};
use tollgate::users;

use crate::common::bot::{World, double_tap, handled};
use crate::db_test;

const ADMIN: i64 = 100_000_001;
const ADMIN_2: i64 = 100_000_002;
const ADMINS: &str = "100000001,100000002";
const KIM: i64 = 200_000_001;
const LEA: i64 = 200_000_002;

fn rub(minor: i64) -> Money {
    Money::new(minor, Currency::Rub)
}

fn shown(minor: i64) -> String {
    format::money(Language::En, rub(minor))
}

async fn person(w: &World, name: &str, id: i64) {
    w.tg.create_user(NewUser::new(name).id(id).language("en"))
        .await
        .unwrap();
    w.tg.send_text(id, "/start").await.unwrap();
    w.screen(id, "Choose an action below.").await;
}

/// A balance change as the ledger records it (a referral reward: earnings).
async fn ledger_change(db: &Db, user: i64, minor: i64, reason: Reason, reference: &str) {
    let mut tx = db.begin().await.unwrap();
    ledger::change(&mut tx, user, minor, reason, reference, SystemClock.now())
        .await
        .unwrap()
        .expect("the change applies");
    tx.commit().await.unwrap();
}

async fn scalar(db: &Db, sql: &'static str, arg: i64) -> i64 {
    on_db!(db, p => sqlx::query_scalar::<_, i64>(sql).bind(arg).fetch_one(p).await).unwrap()
}

async fn balance(db: &Db, user: i64) -> i64 {
    users::get(db, user).await.unwrap().unwrap().balance
}

async fn withdrawals_of(db: &Db, user: i64) -> i64 {
    scalar(
        db,
        "SELECT CAST(COUNT(*) AS BIGINT) FROM withdrawals WHERE user_id = $1",
        user,
    )
    .await
}

async fn debits_of(db: &Db, user: i64) -> i64 {
    scalar(db, "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE user_id = $1 AND reason = 'withdrawal'", user).await
}

async fn returned(db: &Db, id: i64) -> i64 {
    let reference = format!("withdrawal-returned:{id}");
    on_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM balance_ledger WHERE reference = $1"
    ).bind(&reference).fetch_one(p).await)
    .unwrap()
}

async fn audited(db: &Db, action: &str, id: i64) -> i64 {
    let subject = format!("withdrawal {id} (%");
    on_db!(db, p => sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM audit_log WHERE action = $1 AND subject LIKE $2"
    ).bind(action).bind(&subject).fetch_one(p).await)
    .unwrap()
}

fn said(t: &telegram_emulator::Transcript, needle: &str) -> usize {
    t.bot_messages()
        .filter(|m| m.text.as_deref().is_some_and(|x| x.contains(needle)))
        .count()
}

/// A pending request of `amount` for `user`, made through the billing API.
async fn requested(db: &Db, user: i64, amount: i64, press: &str) -> i64 {
    let mut tx = db.begin().await.unwrap();
    let outcome = withdrawals::request(
        &mut tx,
        user,
        rub(amount),
        "card 4111 1111 1111 1111",
        rub(50_000),
        press,
        SystemClock.now(),
    )
    .await
    .unwrap();
    let Requested::Created(w) = outcome else {
        panic!("{outcome:?}")
    };
    tx.commit().await.unwrap();
    w.id
}

/// Sends `text` and waits for the answer to an ordinary message (no question took it).
async fn ordinary(w: &World, chat: i64, text: &str) {
    let before = w.last(chat).await.message_id;
    w.tg.send_text(chat, text).await.unwrap();
    crate::common::bot::screen_after(&w.tg, chat, before, "I didn't get that").await;
}

/// Presses `label` on `m` and waits for the same message to show `needle`.
async fn step(
    w: &World,
    chat: i64,
    m: &TranscriptMessage,
    label: &str,
    needle: &str,
) -> TranscriptMessage {
    w.press(chat, m, label).await;
    w.screen_on(chat, m.message_id, needle).await
}

/// `admin`'s card of request `id`, reached from /admin → Withdrawals.
async fn card(w: &World, admin: i64, id: i64) -> TranscriptMessage {
    let before = w.last(admin).await.message_id;
    w.tg.send_text(admin, "/admin").await.unwrap();
    let home = crate::common::bot::screen_after(&w.tg, admin, before, "Admin console").await;
    let list = step(w, admin, &home, "Withdrawals", "waiting:").await;
    step(
        w,
        admin,
        &list,
        &format!("#{id} ·"),
        &format!("Withdrawal #{id}"),
    )
    .await
}

/// Presses the Confirm of each `(chat, message)` at the same moment; waits until all are handled.
async fn confirm_at_once(w: &World, screens: &[(i64, &TranscriptMessage)]) {
    let presses = screens.iter().map(|(chat, m)| {
        let data = m.button_data("Confirm").expect("a Confirm button");
        w.tg.press_button_with(PressButton {
            chat_id: *chat,
            message_id: m.message_id,
            callback_data: data,
            wait_ms: Some(0),
            ..Default::default()
        })
    });
    let outcomes = futures::future::join_all(presses).await;
    let ids: Vec<i64> = outcomes
        .into_iter()
        .map(|o| o.unwrap().update_id.unwrap())
        .collect();
    handled(&w.app.db, &ids).await;
}

db_test!(async fn a_withdrawal_outside_the_rules_is_refused_with_its_reason_and_reserves_nothing(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = w.app.db.clone();
    person(&w, "Admin", ADMIN).await;
    person(&w, "Kim", KIM).await;
    ledger_change(&db, KIM, 60_000, Reason::ReferralReward, "referral:test-1").await;

    w.tg.send_text(KIM, "/balance").await.unwrap();
    let bal = w.screen(KIM, "Balance:").await;
    let ask = step(&w, KIM, &bal, "Withdraw", "How much do you want to withdraw?").await;
    assert!(ask.text.as_deref().unwrap().contains(&format!("Available: {} (at least {})", shown(60_000), shown(50_000))), "{:?}", ask.text);

    // Each mistake gets its own answer; the question stays open and nothing is reserved.
    w.tg.send_text(KIM, "five hundred").await.unwrap();
    w.screen(KIM, "That is not an amount").await;
    w.tg.send_text(KIM, "499.99").await.unwrap();
    w.screen(KIM, &format!("The smallest withdrawal is {}", shown(50_000))).await;
    w.tg.send_text(KIM, "600.01").await.unwrap();
    w.screen(KIM, &format!("You can withdraw at most {} now", shown(60_000))).await;
    // Going elsewhere leaves the question, by a command or a button (its own Back): a number
    // typed then is an ordinary message.
    w.tg.send_text(KIM, "/balance").await.unwrap();
    let bal = w.screen(KIM, "Balance:").await;
    ordinary(&w, KIM, "550").await;
    let ask = step(&w, KIM, &bal, "Withdraw", "How much do you want to withdraw?").await;
    let bal = step(&w, KIM, &ask, "Back", "Balance:").await;
    ordinary(&w, KIM, "550").await;
    assert_eq!(said(&w.tg.transcript(KIM).await.unwrap(), "Now send where to pay it"), 0);
    step(&w, KIM, &bal, "Withdraw", "How much do you want to withdraw?").await;
    w.tg.send_text(KIM, "550").await.unwrap();
    w.screen(KIM, &format!("Withdrawing {}. Now send where to pay it", shown(55_000))).await;
    // A "blank" message (Telegram refuses spaces alone; people send a Hangul filler).
    w.tg.send_text(KIM, "\u{3164}").await.unwrap();
    w.screen(KIM, "The requisites are empty").await;
    assert_eq!((balance(&db, KIM).await, withdrawals_of(&db, KIM).await, debits_of(&db, KIM).await), (60_000, 0, 0));

    // Good requisites: the confirmation; Confirm pressed twice at once reserves once.
    w.tg.send_text(KIM, "card 4111 1111 1111 1111, <Kim Lee>").await.unwrap();
    let confirm = w.screen(KIM, &format!("Withdraw {} to:", shown(55_000))).await;
    assert!(confirm.text.as_deref().unwrap().contains("card 4111 1111 1111 1111, <Kim Lee>"), "{:?}", confirm.text);
    assert_eq!(withdrawals_of(&db, KIM).await, 0, "nothing before Confirm");
    // The draft waits for its button, not for text: going elsewhere keeps it.
    w.tg.send_text(KIM, "/balance").await.unwrap();
    crate::common::bot::screen_after(&w.tg, KIM, confirm.message_id, "Balance:").await;
    let data = confirm.button_data("Request the withdrawal").unwrap();
    handled(&db, &double_tap(&w.tg, KIM, confirm.message_id, &data).await).await;
    assert_eq!((balance(&db, KIM).await, withdrawals_of(&db, KIM).await, debits_of(&db, KIM).await), (5_000, 1, 1));
    let (pending, rows) = withdrawals::pending(&db, 10).await.unwrap();
    assert_eq!(pending, 1);
    assert_eq!((rows[0].user_id, rows[0].amount, rows[0].status), (KIM, rub(55_000), Status::Pending));
    assert_eq!(rows[0].requisites, "card 4111 1111 1111 1111, <Kim Lee>");
    // Both presses show the request (the second finds it made by the first).
    w.screen_on(KIM, confirm.message_id, &format!("Withdrawal of {} requested. The amount is reserved", shown(55_000))).await;
    assert_eq!(said(&w.tg.transcript(KIM).await.unwrap(), "no longer current"), 0);
    w.screen(ADMIN, &format!("New withdrawal request #{}", rows[0].id)).await;

    // What is left (50 ₽) is below the minimum: nothing is asked.
    w.tg.send_text(KIM, "/balance").await.unwrap();
    let bal = w.screen(KIM, &format!("Balance: {}", shown(5_000))).await;
    step(&w, KIM, &bal, "Withdraw", &format!("Available now: {}", shown(5_000))).await;
    // And the "amount" Kim types now is an ordinary message.
    ordinary(&w, KIM, "500").await;

    // Earnings partly spent: never more than the balance.
    person(&w, "Lea", LEA).await;
    ledger_change(&db, LEA, 60_000, Reason::ReferralReward, "referral:test-2").await;
    ledger_change(&db, LEA, -40_000, Reason::Purchase, "balance:test-2").await;
    assert_eq!(withdrawals::available(&db, LEA, Currency::Rub).await.unwrap(), rub(20_000));
    w.tg.send_text(LEA, "/balance").await.unwrap();
    let bal = w.screen(LEA, "Balance:").await;
    step(&w, LEA, &bal, "Withdraw", &format!("Available now: {}", shown(20_000))).await;
    assert_eq!((balance(&db, LEA).await, withdrawals_of(&db, LEA).await), (20_000, 0));
    // Money that is not referral earnings is not withdrawable either.
    ledger_change(&db, LEA, 90_000, Reason::TopUp, "payment:test-2").await;
    assert_eq!(withdrawals::available(&db, LEA, Currency::Rub).await.unwrap(), rub(60_000));
    w.stop().await;
});

db_test!(async fn two_admins_marking_one_withdrawal_paid_at_the_same_moment_pay_it_once(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = w.app.db.clone();
    person(&w, "Admin", ADMIN).await;
    person(&w, "Second", ADMIN_2).await;
    person(&w, "Kim", KIM).await;
    ledger_change(&db, KIM, 60_000, Reason::ReferralReward, "referral:test-1").await;
    let id = requested(&db, KIM, 50_000, "test:1").await;
    assert_eq!(balance(&db, KIM).await, 10_000, "reserved at once");

    let mut screens = Vec::new();
    for admin in [ADMIN, ADMIN_2] {
        let c = card(&w, admin, id).await;
        assert!(c.text.as_deref().unwrap().contains("card 4111 1111 1111 1111"), "{:?}", c.text);
        screens.push(step(&w, admin, &c, "Paid out", "as paid out?").await);
    }
    confirm_at_once(&w, &[(ADMIN, &screens[0]), (ADMIN_2, &screens[1])]).await;

    let w_now = withdrawals::by_id(&db, id).await.unwrap().unwrap();
    assert_eq!(w_now.status, Status::Paid);
    assert!(w_now.decided_by == Some(ADMIN) || w_now.decided_by == Some(ADMIN_2));
    assert_eq!(audited(&db, "withdrawal-paid", id).await, 1, "one audit row");
    assert_eq!((balance(&db, KIM).await, debits_of(&db, KIM).await, returned(&db, id).await), (10_000, 1, 0));
    // The winner's screen says it was marked; the other's that it was decided already.
    let winner = if w_now.decided_by == Some(ADMIN) { 0 } else { 1 };
    let (chats, loser) = ([ADMIN, ADMIN_2], 1 - winner);
    w.screen_on(chats[winner], screens[winner].message_id, "Marked paid out").await;
    w.screen_on(chats[loser], screens[loser].message_id, "already decided (paid)").await;
    // Kim is told once.
    w.screen(KIM, &format!("Your withdrawal of {} was paid out", shown(50_000))).await;
    let t = w.tg.transcript(KIM).await.unwrap();
    assert_eq!(said(&t, "was paid out"), 1);
    assert_eq!(withdrawals::pending(&db, 10).await.unwrap().0, 0);
    w.stop().await;
});

db_test!(async fn paid_racing_rejected_leaves_one_outcome_and_the_balance_right_for_it(t) {
    let Some(w) = World::start_with(t, false, &[("ADMIN_IDS", ADMINS)], AppOptions::default()).await else { return };
    let db = w.app.db.clone();
    person(&w, "Admin", ADMIN).await;
    person(&w, "Second", ADMIN_2).await;
    person(&w, "Kim", KIM).await;
    ledger_change(&db, KIM, 400_000, Reason::ReferralReward, "referral:test-1").await;

    // Through the console, twice: one admin confirms "paid", the other "rejected", at once.
    for round in 0..2 {
        let before = balance(&db, KIM).await;
        let id = requested(&db, KIM, 50_000, &format!("test:{round}")).await;
        let c = card(&w, ADMIN, id).await;
        let paid = step(&w, ADMIN, &c, "Paid out", "as paid out?").await;
        let c = card(&w, ADMIN_2, id).await;
        step(&w, ADMIN_2, &c, "Reject", "Send the reason").await;
        w.tg.send_text(ADMIN_2, "the card number is wrong").await.unwrap();
        let reject = w.screen(ADMIN_2, &format!("Reject withdrawal #{id}")).await;
        confirm_at_once(&w, &[(ADMIN, &paid), (ADMIN_2, &reject)]).await;

        let now = withdrawals::by_id(&db, id).await.unwrap().unwrap();
        let (paid_rows, rejected_rows) = (audited(&db, "withdrawal-paid", id).await, audited(&db, "withdrawal-rejected", id).await);
        match now.status {
            Status::Paid => {
                assert_eq!((paid_rows, rejected_rows, returned(&db, id).await), (1, 0, 0), "round {round}");
                assert_eq!(balance(&db, KIM).await, before - 50_000, "round {round}: paid out stays debited");
                w.screen(KIM, "was paid out").await;
            }
            Status::Rejected => {
                assert_eq!((paid_rows, rejected_rows, returned(&db, id).await), (0, 1, 1), "round {round}");
                assert_eq!(balance(&db, KIM).await, before, "round {round}: the amount is back");
                assert_eq!(now.reject_reason.as_deref(), Some("the card number is wrong"));
                w.screen(KIM, "was rejected: the card number is wrong").await;
            }
            Status::Pending => panic!("round {round}: nobody decided"),
        }
    }
    let t = w.tg.transcript(KIM).await.unwrap();
    assert_eq!(said(&t, "was paid out") + said(&t, "was rejected"), 2, "one notice per request");

    // The same race without the console, many deciders at once on each of several requests:
    // exactly one decision per request, and the ledger agrees with it.
    for round in 0..5 {
        let before = balance(&db, KIM).await;
        let id = requested(&db, KIM, 50_000, &format!("api:{round}")).await;
        let deciders = (0..8).map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut tx = db.begin().await.unwrap();
                let now = SystemClock.now();
                let admin = if i % 2 == 0 { ADMIN } else { ADMIN_2 };
                let decided = if i % 2 == 0 {
                    withdrawals::mark_paid(&mut tx, id, admin, now).await.unwrap()
                } else {
                    withdrawals::reject(&mut tx, id, admin, "no", now).await.unwrap()
                };
                tx.commit().await.unwrap();
                matches!(decided, Decided::Done(_))
            })
        });
        let done = futures::future::join_all(deciders).await.into_iter().filter(|d| *d.as_ref().unwrap()).count();
        assert_eq!(done, 1, "round {round}: one decision");
        let now = withdrawals::by_id(&db, id).await.unwrap().unwrap();
        let expected = match now.status {
            Status::Paid => before - 50_000,
            Status::Rejected => before,
            Status::Pending => panic!("round {round}: pending"),
        };
        assert_eq!(balance(&db, KIM).await, expected, "round {round}");
        assert_eq!(returned(&db, id).await, i64::from(now.status == Status::Rejected), "round {round}");
    }
    w.stop().await;
});

db_test!(async fn a_pending_withdrawal_of_the_earlier_bot_is_imported_once_and_decided_like_any_other(t) {
    let db = &t.db;
    let now = SystemClock.now();
    let mut tx = db.begin().await.unwrap();
    let from = users::TelegramUser { id: KIM, is_bot: false, first_name: "Kim".into(), last_name: None, username: None, language_code: Some("en".into()) };
    users::register(&mut tx, &from, &[Language::En], None, now).await.unwrap();
    tx.commit().await.unwrap();
    for _ in 0..2 {
        let mut tx = db.begin().await.unwrap();
        withdrawals::import_pending(&mut tx, KIM, rub(70_000), "  card 1 ", now, "atc:17").await.unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(withdrawals_of(db, KIM).await, 1, "idempotent by the external id");
    let (_, rows) = withdrawals::pending(db, 10).await.unwrap();
    assert_eq!((rows[0].external_id.as_deref(), rows[0].requisites.as_str(), rows[0].amount), (Some("atc:17"), "card 1", rub(70_000)));
    // Debited in the earlier bot: no ledger row here, and not counted against new earnings.
    assert_eq!((debits_of(db, KIM).await, balance(db, KIM).await), (0, 0));
    ledger_change(db, KIM, 60_000, Reason::ReferralReward, "referral:test-1").await;
    assert_eq!(withdrawals::available(db, KIM, Currency::Rub).await.unwrap(), rub(60_000));
    // Rejected, its amount comes back.
    let mut tx = db.begin().await.unwrap();
    let decided = withdrawals::reject(&mut tx, rows[0].id, ADMIN, "closed account", now).await.unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(decided, Decided::Done(_)));
    assert_eq!(balance(db, KIM).await, 130_000);
});
