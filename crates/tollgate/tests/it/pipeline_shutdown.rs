//! docs/reliability.md A7 with the pipeline busy: at shutdown (what SIGTERM does: the service's
//! cancellation token) the dispatcher stops claiming, gives running handlers a grace period
//! (3 s), records what finished, and releases the claims of what did not — a handler still
//! running and an update claimed but not started — so the next process handles them at once,
//! each exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use telegram_emulator::NewUser;
use tollgate::app::AppOptions;
use tollgate::on_db;
use tollgate::store::Db;
use tollgate::telegram::dispatcher::{Handled, Handler, HandlerContext, HandlerError};
use tollgate::telegram::echo::EchoHandler;
use tollgate::telegram::inbox::Claimed;

use crate::common::telegram::{bot_texts, emulator, in_process, polling_env, wait_reply, with};
use crate::common::wait_for;
use crate::db_test;

/// The dispatcher's shutdown grace for running handlers (`telegram::dispatcher`).
const HANDLER_GRACE: Duration = Duration::from_secs(3);

/// Echoes; "slow" takes a second first, "hang" never finishes. Counts handlers started.
#[derive(Default)]
struct SlowOrHang {
    started: AtomicUsize,
}

impl Handler for SlowOrHang {
    async fn handle(
        &self,
        update: Arc<Claimed>,
        ctx: HandlerContext,
    ) -> Result<Handled, HandlerError> {
        self.started.fetch_add(1, Ordering::SeqCst);
        if update.payload.contains("\"text\":\"hang\"") {
            std::future::pending::<()>().await;
        }
        if update.payload.contains("\"text\":\"slow\"") {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        EchoHandler.handle(update, ctx).await
    }
}

type Row = (String, i32, Option<String>);

/// (status, attempts, claimed_by) of the only update of `chat`, once stored.
async fn stored(db: &Db, chat: i64) -> Option<Row> {
    on_db!(db, p => sqlx::query_as(
        "SELECT status, attempts, claimed_by FROM tg_inbox WHERE chat_key = $1"
    ).bind(chat).fetch_optional(p).await)
    .unwrap()
}

async fn row_of(db: &Db, chat: i64) -> Row {
    stored(db, chat).await.expect("the update is stored")
}

db_test!(async fn at_shutdown_running_handlers_get_a_grace_then_their_claims_are_released(t) {
    let emu = emulator(true).await;
    let tg = emu.client();
    // A pool of 4 gives two handler slots (DispatcherConfig::for_pool): "slow" and "hang"
    // take them, and a third update waits claimed in the dispatcher's queue.
    let env = with(polling_env(&t.url, &emu), &[("DATABASE_MAX_CONNECTIONS", "4")]);
    let handler = Arc::new(SlowOrHang::default());
    let app = in_process(&env, handler.clone(), AppOptions::default()).await;
    let ann = tg.create_user(NewUser::new("Ann")).await.unwrap().id;
    let bob = tg.create_user(NewUser::new("Bob")).await.unwrap().id;
    let cy = tg.create_user(NewUser::new("Cy")).await.unwrap().id;
    tg.send_text(ann, "slow").await.unwrap();
    tg.send_text(bob, "hang").await.unwrap();
    let h = handler.clone();
    wait_for("both handlers to run", Duration::from_secs(20), move || {
        let h = h.clone();
        async move { (h.started.load(Ordering::SeqCst) == 2).then_some(()) }
    })
    .await;
    tg.send_text(cy, "queued").await.unwrap();
    let db = &t.db;
    wait_for("Cy's update to be claimed", Duration::from_secs(20), move || async move {
        stored(db, cy).await?.2.map(drop)
    })
    .await;
    assert_eq!(handler.started.load(Ordering::SeqCst), 2, "no free slot for Cy's update");

    let stopping = Instant::now();
    app.shutdown().await.unwrap();
    let took = stopping.elapsed();
    assert!(took >= HANDLER_GRACE, "the hanging handler was given the grace period: {took:?}");
    assert!(took < HANDLER_GRACE + Duration::from_secs(5), "then cut: {took:?}");
    // Finished within the grace: recorded, with its reply queued in the same transaction.
    assert_eq!(row_of(&t.db, ann).await, ("done".to_owned(), 1, None));
    // Still running after it, and never started: released at once, the attempt not counted.
    assert_eq!(row_of(&t.db, bob).await, ("pending".to_owned(), 0, None));
    assert_eq!(row_of(&t.db, cy).await, ("pending".to_owned(), 0, None));

    // The next process takes them without waiting for any claim to expire.
    let restarted = Instant::now();
    let app = in_process(&env, Arc::new(EchoHandler), AppOptions::default()).await;
    wait_reply(&tg, bob, "echo: hang").await;
    wait_reply(&tg, cy, "echo: queued").await;
    wait_reply(&tg, ann, "echo: slow").await;
    // A claim left behind would have held them for the handler deadline plus its margin.
    assert!(restarted.elapsed() < Duration::from_secs(30), "{:?}", restarted.elapsed());
    for (chat, text) in [(ann, "echo: slow"), (bob, "echo: hang"), (cy, "echo: queued")] {
        assert_eq!(bot_texts(&tg, chat).await, [text], "handled exactly once");
        assert_eq!(row_of(&t.db, chat).await, ("done".to_owned(), 1, None));
    }
    app.shutdown().await.unwrap();
    emu.shutdown().await;
});
