//! The bot: what users see and do (PRODUCT §3), on top of the pipeline.
//!
//! Each update is handled in the same shape:
//! 1. a callback query is answered at once (RELIABILITY B3);
//! 2. the sender is read, with every flag and their subscription, in one statement beside the
//!    update's transaction ([`Bot::known`]; on SQLite a reader beside the writer);
//! 3. what the screen needs is read;
//! 4. one transaction makes the change (a trial, a language, a reissue …), queues the reply
//!    and any other messages in the outbox, refreshes the sender (names, last seen,
//!    reachable) and marks the update handled — so a retried update can neither repeat the
//!    change nor send its reply twice; a sender seen for the first time is registered in it;
//! 5. after commit, provisioning is woken when access changed.
//!
//! On SQLite every statement of a transaction is a hand-off to the one writer's thread, which
//! all updates, the outbox and intake share, so the number of them per update is what bounds
//! the bot's rate. The transaction therefore holds only writes: the menu (/start of a known
//! user), /buy and a plan are one hand-off each, their `BEGIN`, reply and `COMMIT` in one
//! text. Screens that need reads only available on the pool (access, connect, balance, trial,
//! reissue …) do those reads before their transaction opens — never the pool while a
//! transaction is open: on SQLite that would wait for itself.
//!
//! Nothing here calls a node, and the only direct Telegram calls are the answers to callback
//! and pre-checkout queries, which must be immediate.

pub mod action;
pub mod incoming;
pub mod notices;
mod payments;
pub mod reply;
mod review;
pub mod screens;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use self::action::Action;
use self::incoming::{CallbackQuery, Message, Update};
use self::notices::AccessNotices;
use self::payments::Sale;
use self::reply::Reply;
use self::screens::{Screen, View};
use crate::access::{self, Grant, Kind, Length, Subscription};
use crate::app::{Plugged, Services};
use crate::billing::reconcile::StarsReconciler;
use crate::billing::{self, Provider};
use crate::config::Language;
use crate::domain::money::Money;
use crate::flags::{self, Flag, Snapshot};
use crate::i18n::{Arg, Texts};
use crate::jobs::notices::Notices;
use crate::jobs::renewal::AutoRenewal;
use crate::jobs::{Job, JobContext, JobRunner};
use crate::nodes::membership;
use crate::store::Tx;
use crate::supervisor::Component;
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
}

fn retry(e: impl std::fmt::Display) -> HandlerError {
    HandlerError::Retry(e.to_string())
}

impl Bot {
    /// The bot handler and its components, from the running service's parts.
    pub fn plug(s: &Services) -> anyhow::Result<Plugged<Bot>> {
        let texts = Arc::new(Texts::load().map_err(|e| anyhow::anyhow!("{e}"))?);
        let notices = AccessNotices::new(s.clone(), texts.clone());
        let stars = StarsReconciler::new(s.clone(), texts.clone());
        let runner = |job: Arc<dyn Job>| -> Arc<dyn Component> {
            let r = JobRunner::new(
                job,
                s.db.clone(),
                s.clock.clone(),
                s.holder.clone(),
                s.metrics.jobs.clone(),
            );
            Arc::new(match s.config.deployment.jobs_interval {
                Some(every) => r.with_interval(every),
                None => r,
            })
        };
        let jobs_context = JobContext {
            db: s.db.clone(),
            clock: s.clock.clone(),
            texts: texts.clone(),
            catalog: Arc::new(s.config.catalog.clone()),
            nodes: s.registry.enabled().clone(),
            provisioning: s.provisioning.clone(),
            outbox_wake: s.outbox_wake.clone(),
        };
        let jobs = [
            runner(Arc::new(Notices::new(jobs_context.clone()))),
            runner(Arc::new(AutoRenewal::new(jobs_context))),
        ];
        let mut components: Vec<Arc<dyn Component>> = vec![Arc::new(notices), Arc::new(stars)];
        components.extend(jobs);
        Ok(Plugged {
            handler: Arc::new(Bot {
                s: s.clone(),
                texts,
            }),
            components,
        })
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

    /// The update's transaction and its sender. A known sender is read first, beside it
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
    /// (on SQLite, a reader beside the writer); their refresh (names, last seen, reachable)
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
    /// handled and commits (one hand-off on SQLite), wakes who needs waking.
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
        let v = self.view(se.lang);
        Ok(screens::menu(
            &v,
            sub.as_ref(),
            self.trial_available(&se.user, sub.as_ref(), flags.get(Flag::Trials)),
            flags.get(Flag::Maintenance),
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
        Ok(screens::balance(
            &self.view(se.lang),
            Money::new(balance, base),
            &history,
        ))
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
        // Screens that read through the pool: the sender is read first, in a transaction of
        // their own, and the reply's transaction opens after those reads.
        let pooled = m.successful_payment.is_none()
            && (m.refunded_payment.is_some()
                || matches!(
                    name,
                    Some("access" | "connect" | "balance" | "refund" | "payment")
                ));
        if pooled {
            let se = self.session_alone(&from, m.chat.id, payload).await?;
            if let Some(rp) = m.refunded_payment.clone() {
                return self
                    .on_refunded(update_id, &se, &rp.telegram_payment_charge_id, ctx)
                    .await;
            }
            let screen = match name {
                Some("access") => self.access_screen(&se).await?,
                Some("connect") => self.connect_screen(&se, None).await?,
                Some("balance") => self.balance_screen(&se).await?,
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
        let v = self.view(se.lang);
        let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
        let screen = match name {
            Some("start") | Some("menu") => self.menu_screen(&se, &mut tx).await?,
            Some("buy") => screens::buy(&v, self.subscription_of(&se, &mut tx).await?.as_ref()),
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

    async fn on_callback(
        &self,
        update_id: i64,
        cb: CallbackQuery,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let action = cb.data.as_deref().and_then(Action::parse);
        // Answer first: the button spins until we do. A stale or forged button only gets
        // a polite note.
        let note = match &action {
            None => {
                tracing::warn!(data = ?cb.data, user = cb.from.id, "callback data that is not an action; ignored");
                let lang = users::initial_language(
                    cb.from.language_code.as_deref(),
                    &self.s.config.catalog.bot.languages,
                );
                Some(self.texts.get(lang, "stale-button"))
            }
            Some(_) => None,
        };
        let mut params = json!({ "callback_query_id": cb.id });
        if let (Some(text), Some(obj)) = (note, params.as_object_mut()) {
            obj.insert("text".into(), json!(text));
        }
        match self
            .s
            .api
            .call::<_, bool>("answerCallbackQuery", &params)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_stale_query() => {}
            Err(e) => tracing::warn!(error = %e, "could not answer a callback query; going on"),
        }
        let Some(action) = action else {
            let tx = self.s.db.begin().await.map_err(retry)?;
            return self
                .finish(
                    tx,
                    None,
                    update_id,
                    Reply::new(format!("u{update_id}"), cb.from.id),
                    false,
                    ctx,
                )
                .await;
        };
        let chat_id = cb.message.as_ref().map_or(cb.from.id, |m| m.chat.id);
        let message_id = cb.message.as_ref().map(|m| m.message_id);
        if in_one_transaction(&action) {
            let (tx, se) = self.open(&cb.from, chat_id, None).await?;
            self.act(Some(tx), update_id, &se, action, message_id, ctx)
                .await
        } else {
            let se = self.session_alone(&cb.from, chat_id, None).await?;
            self.act(None, update_id, &se, action, message_id, ctx)
                .await
        }
    }

    /// Carries out a button's action and shows its result in place of the button's message.
    ///
    /// `open` is the update's transaction, opened right after the sender was read, exactly
    /// when [`in_one_transaction`] says so; the other actions read through the pool first and
    /// open theirs after.
    async fn act(
        &self,
        open: Option<Tx>,
        update_id: i64,
        se: &Session,
        action: Action,
        message_id: Option<i64>,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let v = self.view(se.lang);
        let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
        let (screen, tx, access_changed) = match (action, open) {
            (Action::Menu, Some(mut tx)) => (self.menu_screen(se, &mut tx).await?, tx, false),
            (Action::Buy, Some(mut tx)) => {
                let sub = self.subscription_of(se, &mut tx).await?;
                (screens::buy(&v, sub.as_ref()), tx, false)
            }
            (Action::Plan(id), Some(tx)) => (
                match self.s.config.catalog.plans.iter().find(|p| p.id == id) {
                    Some(plan) => {
                        let base = self.s.config.catalog.bot.base_currency;
                        screens::pay(
                            &v,
                            plan,
                            Money::new(se.user.balance, base),
                            self.s.config.deployment.payment_provider_token.is_some(),
                            update_id,
                        )
                    }
                    None => screens::buy(&v, None)
                        .with_note(self.texts.get(se.lang, "plan-unavailable")),
                },
                tx,
                false,
            ),
            (Action::Help, Some(tx)) => (screens::help(&v), tx, false),
            (Action::Support, Some(tx)) => (screens::support(&v), tx, false),
            (Action::Languages, Some(tx)) => (screens::languages(&v), tx, false),
            (Action::SetLanguage(lang), Some(mut tx)) => {
                let lang = if self.s.config.catalog.bot.languages.contains(&lang) {
                    lang
                } else {
                    se.lang
                };
                users::set_language(&mut tx, se.user.id, lang)
                    .await
                    .map_err(retry)?;
                let se2 = Session {
                    lang,
                    user: se.user.clone(),
                    chat_id: se.chat_id,
                    created: se.created,
                    refresh: None,
                    seen: se.seen.clone(),
                };
                let screen = self
                    .menu_screen(&se2, &mut tx)
                    .await?
                    .with_note(self.texts.get(lang, "language-set"));
                (screen, tx, false)
            }
            (Action::PayStars(id), Some(tx)) => {
                self.invoice(se, Sale::Plan(id), Provider::Stars, &mut reply, Some(tx))
                    .await?
            }
            (Action::PayCard(id), Some(tx)) => {
                self.invoice(se, Sale::Plan(id), Provider::Card, &mut reply, Some(tx))
                    .await?
            }
            // Only the actions above get an open transaction (see `in_one_transaction`).
            (_, Some(_)) => {
                return Err(HandlerError::Retry(
                    "internal: an action that reads through the pool got an open transaction"
                        .into(),
                ));
            }
            (
                Action::Menu
                | Action::Buy
                | Action::Plan(_)
                | Action::Help
                | Action::Support
                | Action::Languages
                | Action::SetLanguage(_)
                | Action::PayStars(_)
                | Action::PayCard(_),
                None,
            ) => {
                return Err(HandlerError::Retry(
                    "internal: an action handled in one transaction got none".into(),
                ));
            }
            (Action::Access, None) => (self.access_screen(se).await?, self.begin().await?, false),
            (Action::Connect, None) => (
                self.connect_screen(se, None).await?,
                self.begin().await?,
                false,
            ),
            (Action::AutoRenew(on), None) => {
                let mut tx = self.begin().await?;
                users::set_auto_renew(&mut tx, se.user.id, on)
                    .await
                    .map_err(retry)?;
                tx.commit().await.map_err(retry)?;
                let note = self.texts.get(
                    se.lang,
                    if on {
                        "auto-renew-enabled"
                    } else {
                        "auto-renew-disabled"
                    },
                );
                (
                    self.access_screen(se).await?.with_note(note),
                    self.begin().await?,
                    false,
                )
            }
            (Action::Trial, None) => self.trial(se).await?,
            (Action::Reissue, None) => self.reissue(se).await?,
            (Action::Balance, None) => (self.balance_screen(se).await?, self.begin().await?, false),
            (Action::TopUpStars(i), None) => {
                self.invoice(se, Sale::TopUp(i), Provider::Stars, &mut reply, None)
                    .await?
            }
            (Action::ApplyPayment(id), None) => self.settle_payment(se, id, false).await?,
            (Action::RefundPayment(id), None) => self.settle_payment(se, id, true).await?,
            (Action::PayBalance { plan, screen }, None) => {
                // One debit per drawn pay screen: a double tap or a redelivered press pays
                // once, while the same plan chosen again draws a new screen and pays again.
                let reference = format!("balance:{}:{screen}:{plan}", se.user.id);
                self.pay_from_balance(se, &plan, &reference, update_id)
                    .await?
            }
        };
        reply.show(message_id, &screen);
        self.finish(tx, Some(se), update_id, reply, access_changed, ctx)
            .await
    }
}

/// The actions whose screens need no read beyond the sender's (flags and subscription
/// included), so the update's transaction opens right after it. They are also the frequent
/// ones (menu, buying).
fn in_one_transaction(action: &Action) -> bool {
    matches!(
        action,
        Action::Menu
            | Action::Buy
            | Action::Plan(_)
            | Action::Help
            | Action::Support
            | Action::Languages
            | Action::SetLanguage(_)
            | Action::PayStars(_)
            | Action::PayCard(_)
    )
}

impl Bot {
    /// The free trial: once per account, granted in one transaction with the screen that
    /// says so; the nodes follow ("ready in a moment"), and a failure there never burns the
    /// trial — access is granted in the database and provisioning retries until it converges.
    async fn trial(&self, se: &Session) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        let trials = flags::get(&self.s.db, Flag::Trials).await.map_err(retry)?;
        let sub = self.subscription(se.user.id).await?;
        let note = |key: &str, back| screens::notice(&v, self.texts.get(se.lang, key), back);
        if !trials {
            return Ok((
                note("trial-disabled", Action::Menu),
                self.begin().await?,
                false,
            ));
        }
        if sub.as_ref().is_some_and(|s| s.is_active(now)) {
            return Ok((
                note("trial-not-for-subscribers", Action::Menu),
                self.begin().await?,
                false,
            ));
        }
        let mut tx = self.begin().await?;
        if !users::take_trial(&mut tx, se.user.id, now)
            .await
            .map_err(retry)?
        {
            return Ok((note("trial-used", Action::Buy), tx, false));
        }
        let days = self.s.config.catalog.trial.days;
        let grant = Grant {
            kind: Kind::Trial,
            length: Length::Days(days),
            plan_id: None,
        };
        let granted =
            access::grant_or_extend(&mut tx, self.s.registry.enabled(), se.user.id, &grant, now)
                .await
                .map_err(retry)?;
        let sub = granted.subscription;
        notices::expect(&mut tx, &sub, now).await.map_err(retry)?;
        let until = crate::i18n::format::date_time(
            se.lang,
            sub.expires_at,
            self.s.config.catalog.bot.utc_offset_minutes,
        );
        let granted_note = self.texts.fmt(
            se.lang,
            "trial-granted",
            &[("days", days.into()), ("until", Arg::Text(until))],
        );
        Ok((
            self.fresh_connect(se.lang, &sub).with_note(granted_note),
            tx,
            true,
        ))
    }

    /// A new key: the old one keeps working until the new one is live on each node (E8).
    async fn reissue(&self, se: &Session) -> Result<(Screen, Tx, bool), HandlerError> {
        let v = self.view(se.lang);
        let now = self.now();
        let Some(sub) = self
            .subscription(se.user.id)
            .await?
            .filter(|s| s.is_active(now))
        else {
            let screen = screens::notice(
                &v,
                self.texts.get(se.lang, "reissue-nothing"),
                Action::Access,
            );
            return Ok((screen, self.begin().await?, false));
        };
        let last = access::last_reissue(&self.s.db, sub.id)
            .await
            .map_err(retry)?;
        if let Some(ready_at) = last.map(|t| t.plus(REISSUE_INTERVAL)).filter(|t| *t > now) {
            let left = crate::i18n::format::duration(&self.texts, se.lang, ready_at.since(now));
            let text = self
                .texts
                .fmt(se.lang, "reissue-too-soon", &[("wait", left.into())]);
            return Ok((
                screens::notice(&v, text, Action::Access),
                self.begin().await?,
                false,
            ));
        }
        let mut tx = self.begin().await?;
        let fresh = access::reissue(&mut tx, self.s.registry.enabled(), sub.id, now)
            .await
            .map_err(retry)?;
        notices::expect(&mut tx, &fresh, now).await.map_err(retry)?;
        let screen = self
            .fresh_connect(se.lang, &fresh)
            .with_note(self.texts.get(se.lang, "reissue-done"));
        Ok((screen, tx, true))
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
