//! The bot: what users see and do (docs/product.md §3), on top of the pipeline.
//!
//! Each update is handled in the same shape:
//! 1. a callback query is answered at once (docs/reliability.md B3);
//! 2. the sender is read, with every flag and their subscription, in one statement alongside the
//!    update's transaction ([`Bot::known`]; on SQLite a reader next to the writer);
//! 3. what the screen needs is read;
//! 4. one transaction makes the change (a trial, a language, a reissue …), queues the reply
//!    and any other messages in the outbox, refreshes the sender (names, last seen,
//!    reachable) and marks the update handled — so a retried update can neither repeat the
//!    change nor send its reply twice; a sender seen for the first time is registered in it;
//! 5. after commit, provisioning is woken when access changed.
//!
//! On SQLite every statement of a transaction is a round trip to the one writer's thread,
//! which all updates, the outbox and intake share, so the number of them per update is what
//! bounds the bot's rate. The transaction therefore holds only writes: the menu (/start of a
//! known user), /buy and a plan are one round trip each, their `BEGIN`, reply and `COMMIT` in
//! one text. Screens that need reads only available on the pool (access, connect, balance,
//! trial, reissue …) do those reads before their transaction opens — never the pool while a
//! transaction is open: on SQLite that would wait for itself. Each button's action states which
//! of the two it is once (`actions::lane`), and the handler of each lane is given a transaction
//! or not by its type.
//!
//! Files: this one holds the session (reading and registering the sender, finishing an
//! update) and the messages; `actions` the buttons; `payments` invoices and payment updates;
//! `review` the admin's view of one payment; `screens` what is shown; `reply` the outbox rows
//! of a reply; `invite` the Invite friends screen; `withdraw` the user's withdrawal requests;
//! `receipt` the 54-FZ receipt contact (asked before the first YooKassa payment, changed on
//! its screen); `notices` and `stars` the bot's own components.

//! Nothing here calls a node, and the only direct Telegram calls are the answers to callback
//! and pre-checkout queries, which must be immediate.

pub use crate::action;
mod actions;
mod console;
pub mod incoming;
pub mod invite;
pub mod notices;
mod payments;
mod promo;
pub mod providers;
mod receipt;
pub mod reply;
mod review;
pub mod screens;
pub mod stars;
mod withdraw;

use std::sync::Arc;
use std::time::Duration;

use self::incoming::{Message, Update};
use self::reply::Reply;
use self::screens::{Screen, View};
use crate::access::{self, Subscription};
use crate::admin::prompts::{self, Pending};
use crate::billing::{self};
use crate::config::Language;
use crate::domain::money::Money;
use crate::flags::{self, Flag, Snapshot};
use crate::i18n::Texts;
use crate::nodes::membership;
use crate::services::Services;
use crate::store::Tx;
use crate::telegram::dispatcher::{Handled, Handler, HandlerContext, HandlerError};
use crate::telegram::inbox::Claimed;
use crate::telegram::update;
use crate::time::Timestamp;
use crate::users::{self, TelegramUser, User};

/// Least time between two key reissues of one subscription.
pub const REISSUE_INTERVAL: Duration = Duration::from_secs(3600);

pub struct Bot {
    s: Services,
    texts: Arc<Texts>,
    /// The bot's @username (`getMe`, asked once), for referral links.
    username: tokio::sync::OnceCell<String>,
}

impl Session {
    /// The question the sender's next text answers, as read with the sender, if it is still
    /// in force (a first contact has none).
    fn question(&self, now: Timestamp) -> Option<Pending> {
        self.seen
            .as_ref()?
            .question
            .clone()
            .filter(|p| p.in_force(now))
    }
}

/// The sender of an update, registered.
struct Session {
    user: User,
    lang: Language,
    chat_id: i64,
    created: bool,
    /// The sender as Telegram describes them, while their refresh (`users::refresh`) is
    /// still to be written: [`Bot::finish`] writes it in the update's transaction.
    refresh: Option<TelegramUser>,
    /// The flags and the subscription, when they were read with the sender ([`Bot::known`];
    /// [`Bot::flags_in`] and [`Bot::subscription_of`] use them).
    seen: Option<Seen>,
}

/// What was read with a known sender, in the same statement.
#[derive(Clone)]
struct Seen {
    flags: Snapshot,
    subscription: Option<Subscription>,
    /// The question their next text answers, if one is stored: what a button or a command
    /// leaves ([`Bot::leave_question`]).
    question: Option<Pending>,
}

fn retry(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retry(e.to_string())
}

impl Bot {
    /// The bot handler on the running service's parts, with its texts.
    pub fn new(s: Services, texts: Arc<Texts>) -> Bot {
        Bot {
            s,
            texts,
            username: tokio::sync::OnceCell::new(),
        }
    }

    fn now(&self) -> Timestamp {
        self.s.clock.now()
    }

    fn default_language(&self) -> Language {
        self.s.config.catalog.bot.fallback_language()
    }

    fn view(&self, lang: Language) -> View<'_> {
        View {
            texts: &self.texts,
            catalog: &self.s.config.catalog,
            lang,
            now: self.now(),
        }
    }

    /// The update's transaction and its sender. A known sender is read first, alongside it
    /// ([`Bot::known`]), so that on SQLite the transaction holds the one writer only for its
    /// writes and its `BEGIN` travels with the first of them; on first contact the sender is
    /// registered in the transaction, in its first statement.
    async fn open(
        &self,
        from: &TelegramUser,
        chat_id: i64,
        start_payload: Option<&str>,
    ) -> Result<(Tx, Session), HandlerError> {
        if let Some(se) = self.known(from, chat_id).await? {
            return Ok((self.begin().await?, se));
        }
        let mut tx = self.begin().await?;
        let se = self.register(&mut tx, from, chat_id, start_payload).await?;
        Ok((tx, se))
    }

    /// The sender for an update whose screen needs reads from the pool before its
    /// transaction opens: [`Bot::known`], or on first contact [`Bot::register`] in a short
    /// transaction of its own.
    async fn session_alone(
        &self,
        from: &TelegramUser,
        chat_id: i64,
        start_payload: Option<&str>,
    ) -> Result<Session, HandlerError> {
        if let Some(se) = self.known(from, chat_id).await? {
            return Ok(se);
        }
        let mut tx = self.begin().await?;
        let se = self.register(&mut tx, from, chat_id, start_payload).await?;
        tx.commit().await.map_err(retry)?;
        Ok(se)
    }

    /// A known sender with the flags and their subscription, in one read through the pool
    /// (on SQLite, a reader next to the writer); their refresh (names, last seen, reachable)
    /// is owed, and [`Bot::finish`] writes it. `None` on first contact.
    ///
    /// Read before the update's transaction, not in it: the update's own writes are made in
    /// the transaction, and one user's updates are handled one after another, so the read
    /// sees everything the user's earlier updates wrote. What others change meanwhile (a
    /// flag, a grant by a job) is no staler than after a commit: the writes that depend on
    /// it lock and re-read their rows (a grant, a payment, a balance).
    async fn known(
        &self,
        from: &TelegramUser,
        chat_id: i64,
    ) -> Result<Option<Session>, HandlerError> {
        let Some(known) = users::sender(&self.s.db, from.id).await.map_err(retry)? else {
            return Ok(None);
        };
        let mut se = self.known_session(known.user, from, chat_id);
        se.seen = Some(Seen {
            flags: known.flags,
            subscription: known.subscription,
            question: known.question,
        });
        Ok(Some(se))
    }

    /// Registers the sender on first contact in `tx` (with the referrer of a `ref_` start
    /// payload); someone registered a moment earlier (a race) is treated as known.
    async fn register(
        &self,
        tx: &mut Tx,
        from: &TelegramUser,
        chat_id: i64,
        start_payload: Option<&str>,
    ) -> Result<Session, HandlerError> {
        let code = start_payload.and_then(|p| p.strip_prefix("ref_"));
        let languages = &self.s.config.catalog.bot.languages;
        let user = match users::register(tx, from, languages, code, self.now())
            .await
            .map_err(retry)?
        {
            users::Registered::New(user) => user,
            users::Registered::Known(known) => return Ok(self.known_session(known, from, chat_id)),
        };
        if let Some(referrer) = user.referrer_id {
            billing::referrals::joined(tx, &self.billing_context(), referrer, &user, self.now())
                .await
                .map_err(retry)?;
        }
        Ok(Session {
            lang: user.language_or(self.default_language()),
            user,
            chat_id,
            created: true,
            refresh: None,
            seen: None,
        })
    }

    /// The session of a known user, whose refresh is owed.
    fn known_session(&self, known: User, from: &TelegramUser, chat_id: i64) -> Session {
        let user = users::refreshed(known, from);
        Session {
            lang: user.language_or(self.default_language()),
            user,
            chat_id,
            created: false,
            refresh: Some(from.clone()),
            seen: None,
        }
    }

    /// Queues `reply`, refreshes the sender (`se`) when that is owed, marks the update
    /// handled and commits (one round trip on SQLite), wakes who needs waking.
    ///
    /// The refresh is the transaction's last write before the completion: on PostgreSQL it
    /// locks the user's row, and taking it after the business rows (subscription, balance)
    /// keeps the order in which the workers take those locks.
    async fn finish(
        &self,
        tx: Tx,
        se: Option<&Session>,
        update_id: i64,
        reply: Reply,
        access_changed: bool,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let now = self.now();
        let queued = !reply.is_empty();
        let refresh = se.and_then(|se| se.refresh.as_ref());
        reply
            .finish_update(tx, refresh, update_id, now)
            .await
            .map_err(retry)?;
        if queued {
            ctx.outbox_wake.notify_one();
        }
        if access_changed {
            self.s.provisioning.wake();
        }
        Ok(Handled::MarkedInTransaction)
    }

    async fn begin(&self) -> Result<Tx, HandlerError> {
        self.s.db.begin().await.map_err(retry)
    }

    async fn subscription_in(
        &self,
        tx: &mut Tx,
        user_id: i64,
    ) -> Result<Option<Subscription>, HandlerError> {
        access::subscription_for_user_in(tx, user_id)
            .await
            .map_err(retry)
    }

    async fn subscription(&self, user_id: i64) -> Result<Option<Subscription>, HandlerError> {
        access::subscription_for_user(&self.s.db, user_id)
            .await
            .map_err(retry)
    }

    fn trial_available(&self, user: &User, sub: Option<&Subscription>, trials_on: bool) -> bool {
        trials_on && user.trial_used_at.is_none() && !sub.is_some_and(|s| s.is_active(self.now()))
    }

    /// The flags read with the sender, or else read now in `tx`.
    async fn flags_in(&self, se: &Session, tx: &mut Tx) -> Result<Snapshot, HandlerError> {
        match &se.seen {
            Some(seen) => Ok(seen.flags),
            None => flags::snapshot_in(tx).await.map_err(retry),
        }
    }

    /// The sender's subscription as read with them, or else read now in `tx`.
    async fn subscription_of(
        &self,
        se: &Session,
        tx: &mut Tx,
    ) -> Result<Option<Subscription>, HandlerError> {
        match &se.seen {
            Some(seen) => Ok(seen.subscription.clone()),
            // A user registered this instant has no subscription yet.
            None if se.created => Ok(None),
            None => self.subscription_in(tx, se.user.id).await,
        }
    }

    async fn menu_screen(&self, se: &Session, tx: &mut Tx) -> Result<Screen, HandlerError> {
        let sub = self.subscription_of(se, tx).await?;
        let flags = self.flags_in(se, tx).await?;
        // The banner is read only while maintenance is on (rarely): the menu's usual cost
        // stays the sender's one statement.
        let maintenance = if !flags.get(Flag::Maintenance) {
            screens::Maintenance::Off
        } else {
            match flags::banner_in(tx, se.lang).await.map_err(retry)? {
                Some(text) => screens::Maintenance::Banner(text),
                None => screens::Maintenance::BuiltIn,
            }
        };
        let v = self.view(se.lang);
        Ok(screens::menu(
            &v,
            sub.as_ref(),
            self.trial_available(&se.user, sub.as_ref(), flags.get(Flag::Trials)),
            &maintenance,
        ))
    }

    async fn access_screen(&self, se: &Session) -> Result<Screen, HandlerError> {
        let sub = self.subscription(se.user.id).await?;
        let traffic = match &sub {
            Some(s) => {
                let (up, down) = membership::traffic(&self.s.db, s.id).await.map_err(retry)?;
                Some(u64::try_from(up.max(0) + down.max(0)).unwrap_or(0))
            }
            None => None,
        };
        let user = users::get(&self.s.db, se.user.id).await.map_err(retry)?;
        let auto_renew = user.map(|u| u.auto_renew).unwrap_or(se.user.auto_renew);
        Ok(screens::access(
            &self.view(se.lang),
            sub.as_ref(),
            auto_renew,
            traffic,
        ))
    }

    async fn connect_screen(
        &self,
        se: &Session,
        sub: Option<Subscription>,
    ) -> Result<Screen, HandlerError> {
        let sub = match sub {
            Some(s) => Some(s),
            None => self.subscription(se.user.id).await?,
        };
        let v = self.view(se.lang);
        let Some(s) = sub else {
            return Ok(screens::connect(
                &v,
                None,
                access::ProvisioningSummary::Inactive,
                &[],
                "",
            ));
        };
        let state =
            access::provisioning_state(&self.s.db, &s, self.s.registry.enabled(), self.now())
                .await
                .map_err(retry)?;
        let links = access::share_links(&s, &self.s.registry);
        let url = access::feed::feed_url(&self.s.feed_base, &s.token);
        Ok(screens::connect(
            &v,
            Some(&s),
            state.summary(),
            &links,
            &url,
        ))
    }

    async fn balance_screen(&self, se: &Session) -> Result<Screen, HandlerError> {
        let base = self.s.config.catalog.bot.base_currency;
        let user = users::get(&self.s.db, se.user.id).await.map_err(retry)?;
        let balance = user.map_or(se.user.balance, |u| u.balance);
        let history = billing::ledger::recent(&self.s.db, se.user.id, 5)
            .await
            .map_err(retry)?;
        let methods = self.pay_methods();
        Ok(screens::balance(
            &self.view(se.lang),
            Money::new(balance, base),
            &history,
            methods.crypto || methods.yookassa,
            self.receipts_sent(),
        ))
    }

    /// The sender pressed a button or sent a command while a typed question of theirs was
    /// pending (a receipt contact, a withdrawal's amount or requisites): they went elsewhere
    /// (its Back button included), so the question is forgotten and their next text is an
    /// ordinary message. A withdrawal's draft stays (it waits for its Confirm button, not for
    /// text), and an admin's console questions keep theirs (`admin::prompts`). The question
    /// was read with the sender (`users::sender`), so an update with none pending pays nothing
    /// for this. Written in `tx` when the update's transaction is open, else in a transaction
    /// of its own (before the update's, which may ask again).
    async fn leave_question(&self, se: &Session, tx: Option<&mut Tx>) -> Result<(), HandlerError> {
        let Some(pending) = se
            .seen
            .as_ref()
            .and_then(|s| s.question.as_ref())
            .filter(|p| {
                receipt::is_receipt_question(&p.question)
                    || withdraw::Step::parse(&p.question).is_some_and(|s| s.is_typed())
            })
        else {
            return Ok(());
        };
        match tx {
            Some(tx) => {
                prompts::take(tx, se.user.id, pending)
                    .await
                    .map_err(retry)?;
            }
            None => {
                let mut tx = self.begin().await?;
                prompts::take(&mut tx, se.user.id, pending)
                    .await
                    .map_err(retry)?;
                tx.commit().await.map_err(retry)?;
            }
        }
        Ok(())
    }

    fn billing_context(&self) -> billing::Context<'_> {
        billing::Context {
            catalog: &self.s.config.catalog,
            texts: &self.texts,
            nodes: self.s.registry.enabled(),
            admins: &self.s.config.deployment.admin_ids,
        }
    }

    async fn on_message(
        &self,
        update_id: i64,
        m: Message,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        // Private chats only: the bot sells to people, not to groups.
        let Some(from) = m
            .from
            .clone()
            .filter(|f| !f.is_bot && m.chat.kind == "private")
        else {
            return Ok(Handled::Done);
        };
        let text = m.text.clone().unwrap_or_default();
        let command = incoming::command(&text);
        let payload = command.filter(|(c, _)| *c == "start").map(|(_, p)| p);
        let name = command.map(|(c, _)| c);
        // The console: `/admin` for admins only; for anyone else it is an unknown command
        // like any other.
        if self.is_admin_id(from.id) && m.successful_payment.is_none() && name == Some("admin") {
            let se = self.session_alone(&from, m.chat.id, None).await?;
            self.leave_question(&se, None).await?;
            let (screen, tx, _) = self
                .console(update_id, &se, action::AdminAction::Home)
                .await?;
            let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
            reply.send(&screen);
            return self
                .finish(tx, Some(&se), update_id, reply, false, ctx)
                .await;
        }
        // A typed answer: to an admin's console question (admins only), or to a user's
        // withdrawal step or receipt contact question. The question was read with the sender;
        // a message answering none goes on as usual, and a command is no answer (it leaves a
        // user's question: `Bot::leave_question`).
        if command.is_none() && m.successful_payment.is_none() && m.refunded_payment.is_none() {
            let se = self.session_alone(&from, m.chat.id, None).await?;
            let mut answered = None;
            if se.question(self.now()).is_some() {
                if self.is_admin_id(from.id) && m.text.is_some() {
                    answered = self.answer(update_id, &se, &text).await?;
                }
                if answered.is_none() && se.user.banned_at.is_none() {
                    answered = match self.withdraw_answer(update_id, &se, &text).await? {
                        Some(a) => Some(a),
                        None => self.receipt_answer(&se, &text).await?,
                    };
                }
            }
            if let Some((screen, tx)) = answered {
                let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
                reply.send(&screen);
                return self
                    .finish(tx, Some(&se), update_id, reply, false, ctx)
                    .await;
            }
        }
        // Screens that read through the pool: the sender is read first, in a transaction of
        // their own, and the reply's transaction opens after those reads.
        let pooled = m.successful_payment.is_none()
            && (m.refunded_payment.is_some()
                || matches!(
                    name,
                    Some(
                        "access"
                            | "connect"
                            | "balance"
                            | "invite"
                            | "refund"
                            | "payment"
                            | "topup"
                            | "receipt"
                    )
                ));
        if pooled {
            let se = self.session_alone(&from, m.chat.id, payload).await?;
            if se.user.banned_at.is_some() && m.refunded_payment.is_none() {
                return self.ignore_banned(update_id, &se, ctx).await;
            }
            if let Some(rp) = m.refunded_payment.clone() {
                return self
                    .on_refunded(update_id, &se, &rp.telegram_payment_charge_id, ctx)
                    .await;
            }
            self.leave_question(&se, None).await?;
            let screen = match name {
                Some("access") => self.access_screen(&se).await?,
                Some("connect") => self.connect_screen(&se, None).await?,
                Some("balance") => self.balance_screen(&se).await?,
                Some("invite") => self.invite_screen(&se).await?,
                Some("receipt") => self.receipt_screen(&se).await?,
                Some("topup") => {
                    let arg = command.map(|(_, a)| a).unwrap_or_default();
                    self.topup_command(&se, arg)
                }
                Some("payment") => {
                    let arg = command.map(|(_, a)| a).unwrap_or_default();
                    return self.payment_command(update_id, &se, arg, ctx).await;
                }
                _ => {
                    let arg = command.map(|(_, a)| a).unwrap_or_default();
                    return self.refund_command(update_id, &se, arg, ctx).await;
                }
            };
            let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
            reply.send(&screen);
            let tx = self.begin().await?;
            return self
                .finish(tx, Some(&se), update_id, reply, false, ctx)
                .await;
        }
        let (mut tx, se) = self.open(&from, m.chat.id, payload).await?;
        if let Some(sp) = m.successful_payment.clone() {
            return self
                .on_payment(tx, update_id, &se, sp, m.clone(), ctx)
                .await;
        }
        if se.user.banned_at.is_some() {
            let reply = Reply::new(format!("u{update_id}"), se.chat_id);
            return self
                .finish(tx, Some(&se), update_id, reply, false, ctx)
                .await;
        }
        if command.is_some() {
            self.leave_question(&se, Some(&mut tx)).await?;
        }
        let v = self.view(se.lang);
        let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
        let arg = command.map_or("", |(_, a)| a.trim());
        // A code from `/promo <code>` or a `promo_<CODE>` start link.
        let code = match name {
            Some("promo") if !arg.is_empty() => Some(arg),
            Some("start") => arg.strip_prefix("promo_"),
            // Plain text after the Promo code screen asked for a code.
            None if !text.trim().is_empty() && self.awaits_code(&se, &mut tx).await? => {
                Some(text.as_str())
            }
            _ => None,
        };
        if let Some(code) = code {
            let (screen, access_changed) = self.redeem_code(&se, &mut tx, code).await?;
            reply.send(&screen);
            return self
                .finish(tx, Some(&se), update_id, reply, access_changed, ctx)
                .await;
        }
        let screen = match name {
            Some("start") | Some("menu") => self.menu_screen(&se, &mut tx).await?,
            Some("buy") => {
                let sub = self.subscription_of(&se, &mut tx).await?;
                let offer = self.offer_in(&se, &mut tx).await?;
                screens::buy(&v, sub.as_ref(), &offer)
            }
            Some("promo") => self.promo_screen(&se, &mut tx).await?,
            Some("help") => screens::help(&v),
            Some("support") => screens::support(&v),
            Some("language") => screens::languages(&v),
            _ => self
                .menu_screen(&se, &mut tx)
                .await?
                .with_note(self.texts.get(se.lang, "unknown-input")),
        };
        if se.created {
            tracing::info!(
                user = se.user.id,
                referred = se.user.referrer_id.is_some(),
                "new user"
            );
        }
        reply.send(&screen);
        self.finish(tx, Some(&se), update_id, reply, false, ctx)
            .await
    }
}

impl Bot {
    /// An update from a banned user: no service and no answer (they were told once, when the
    /// ban was made); the update is completed like any other. Payments are still applied.
    async fn ignore_banned(
        &self,
        update_id: i64,
        se: &Session,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let tx = self.begin().await?;
        let reply = Reply::new(format!("u{update_id}"), se.chat_id);
        self.finish(tx, Some(se), update_id, reply, false, ctx)
            .await
    }

    /// The Connect screen of a key granted this moment: the nodes have not caught up yet.
    fn fresh_connect(&self, lang: Language, sub: &Subscription) -> Screen {
        let links = access::share_links(sub, &self.s.registry);
        let url = access::feed::feed_url(&self.s.feed_base, &sub.token);
        let summary = if self.s.registry.enabled().is_empty() {
            access::ProvisioningSummary::NoNodes
        } else {
            access::ProvisioningSummary::Pending
        };
        screens::connect(&self.view(lang), Some(sub), summary, &links, &url)
    }
}

impl Handler for Bot {
    async fn handle(
        &self,
        update: Arc<Claimed>,
        ctx: HandlerContext,
    ) -> Result<Handled, HandlerError> {
        match update.kind.as_str() {
            "message" | "callback_query" | "pre_checkout_query" | update::PAYMENT => {}
            // Reachability from my_chat_member is the dispatcher's; edits change nothing.
            "my_chat_member" | "edited_message" => return Ok(Handled::Done),
            other => {
                return Err(HandlerError::Permanent(format!(
                    "unsupported update type {other:?}"
                )));
            }
        }
        let parsed: Update = serde_json::from_str(&update.payload).map_err(|e| {
            HandlerError::Permanent(format!("malformed {} update: {e}", update.kind))
        })?;
        if let Some(q) = parsed.pre_checkout_query {
            return self.on_pre_checkout(q).await;
        }
        if let Some(cb) = parsed.callback_query {
            return self.on_callback(update.update_id, cb, &ctx).await;
        }
        if let Some(m) = parsed.message {
            return self.on_message(update.update_id, m, &ctx).await;
        }
        Ok(Handled::Done)
    }
}
