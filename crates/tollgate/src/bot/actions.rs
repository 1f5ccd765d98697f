//! Buttons: a press is answered at once, its action given its lane (what it reads, and when
//! its transaction opens), carried out, and its screen shown in place of the button's message.
//! The trial and the key reissue, the two actions with a change of their own, are here too.

use serde_json::json;

use super::incoming::CallbackQuery;
use super::payments::Sale;
use super::receipt::ReceiptEdit;
use super::reply::Reply;
use super::screens::{self, Screen};
use super::{Bot, REISSUE_INTERVAL, Session, retry};
use crate::access::{self, Grant, Kind, Length};
use crate::action::{Action, AdminAction};
use crate::billing::Provider;
use crate::config::Language;
use crate::flags::{self, Flag};
use crate::i18n::Arg;
use crate::store::Tx;
use crate::telegram::dispatcher::{Handled, HandlerContext, HandlerError};
use crate::users;

impl Bot {
    pub(super) async fn on_callback(
        &self,
        update_id: i64,
        cb: CallbackQuery,
        ctx: &HandlerContext,
    ) -> Result<Handled, HandlerError> {
        let action = cb.data.as_deref().and_then(Action::parse);
        // A console button from someone who is not an admin is answered exactly like data
        // that is not an action, so nothing reveals the console; it is logged.
        let action = match action {
            Some(Action::Admin(a)) if !self.is_admin_id(cb.from.id) => {
                tracing::warn!(user = cb.from.id, action = ?a, "an admin console button pressed by someone who is not an admin; ignored");
                None
            }
            other => other,
        };
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
        match lane(action) {
            Lane::InTransaction(action) => {
                let (mut tx, se) = self.open(&cb.from, chat_id, None).await?;
                let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
                if se.user.banned_at.is_some() {
                    return self
                        .finish(tx, Some(&se), update_id, reply, false, ctx)
                        .await;
                }
                self.leave_question(&se, Some(&mut tx)).await?;
                let (screen, tx) = self.act_in(tx, update_id, &se, action, &mut reply).await?;
                reply.show(message_id, &screen);
                self.finish(tx, Some(&se), update_id, reply, false, ctx)
                    .await
            }
            Lane::ReadsFirst(action) => {
                let se = self.session_alone(&cb.from, chat_id, None).await?;
                if se.user.banned_at.is_some() {
                    return self.ignore_banned(update_id, &se, ctx).await;
                }
                self.leave_question(&se, None).await?;
                let mut reply = Reply::new(format!("u{update_id}"), se.chat_id);
                let (screen, tx, access_changed) = self
                    .act_after_reads(update_id, &se, action, &mut reply)
                    .await?;
                reply.show(message_id, &screen);
                self.finish(tx, Some(&se), update_id, reply, access_changed, ctx)
                    .await
            }
        }
    }

    /// An action of [`Lane::InTransaction`]: `tx` is the update's transaction, opened right
    /// after the sender was read; returns the screen and the transaction to finish.
    async fn act_in(
        &self,
        tx: Tx,
        update_id: i64,
        se: &Session,
        action: InTransaction,
        reply: &mut Reply,
    ) -> Result<(Screen, Tx), HandlerError> {
        let v = self.view(se.lang);
        let (screen, tx, _) = match (action, tx) {
            (InTransaction::Menu, mut tx) => (self.menu_screen(se, &mut tx).await?, tx, false),
            (InTransaction::Buy, mut tx) => {
                let sub = self.subscription_of(se, &mut tx).await?;
                let offer = self.offer_in(se, &mut tx).await?;
                (screens::buy(&v, sub.as_ref(), &offer), tx, false)
            }
            (InTransaction::Plan(id), mut tx) => {
                let offer = self.offer_in(se, &mut tx).await?;
                (self.pay_screen(se, &id, update_id, &offer), tx, false)
            }
            (InTransaction::Promo, mut tx) => (self.promo_screen(se, &mut tx).await?, tx, false),
            (InTransaction::Help, tx) => (screens::help(&v), tx, false),
            (InTransaction::Support, tx) => (screens::support(&v), tx, false),
            (InTransaction::Languages, tx) => (screens::languages(&v), tx, false),
            (InTransaction::SetLanguage(lang), mut tx) => {
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
            (InTransaction::PayStars(id), tx) => {
                self.invoice(
                    se,
                    Sale::Plan(id, update_id),
                    Provider::Stars,
                    reply,
                    Some(tx),
                )
                .await?
            }
            (InTransaction::PayCard(id), tx) => {
                self.invoice(
                    se,
                    Sale::Plan(id, update_id),
                    Provider::Card,
                    reply,
                    Some(tx),
                )
                .await?
            }
        };
        Ok((screen, tx))
    }

    /// An action of [`Lane::ReadsFirst`]: it reads through the pool, then opens the
    /// transaction it returns (with the screen and whether access changed).
    async fn act_after_reads(
        &self,
        update_id: i64,
        se: &Session,
        action: ReadsFirst,
        reply: &mut Reply,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        Ok(match action {
            ReadsFirst::Access => (self.access_screen(se).await?, self.begin().await?, false),
            ReadsFirst::Connect => (
                self.connect_screen(se, None).await?,
                self.begin().await?,
                false,
            ),
            ReadsFirst::AutoRenew(on) => {
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
            ReadsFirst::Trial => self.trial(se).await?,
            ReadsFirst::Reissue => self.reissue(se).await?,
            ReadsFirst::Balance => (self.balance_screen(se).await?, self.begin().await?, false),
            ReadsFirst::Invite => (self.invite_screen(se).await?, self.begin().await?, false),
            ReadsFirst::Withdraw => self.withdraw_start(se).await?,
            ReadsFirst::WithdrawConfirm(screen) => self.withdraw_confirm(se, screen).await?,
            ReadsFirst::WithdrawCancel => self.withdraw_cancel(se).await?,
            ReadsFirst::Receipt => (self.receipt_screen(se).await?, self.begin().await?, false),
            ReadsFirst::ReceiptChange => self.receipt_edit(se, ReceiptEdit::Change).await?,
            ReadsFirst::ReceiptRemove => self.receipt_edit(se, ReceiptEdit::Remove).await?,
            ReadsFirst::TopUpStars(i) => {
                self.invoice(se, Sale::TopUp(i), Provider::Stars, reply, None)
                    .await?
            }
            ReadsFirst::ApplyPayment(id) => self.apply_payment(se, id).await?,
            ReadsFirst::Admin(a) => self.console(update_id, se, a).await?,
            ReadsFirst::PayProvider(plan, provider) => {
                self.provider_invoice(se, Sale::Plan(plan, update_id), provider)
                    .await?
            }
            ReadsFirst::CheckPaid(purchase) => self.check_paid(se, purchase).await?,
            ReadsFirst::TopUpFiat(minor) => (
                self.topup_methods_screen(se, minor),
                self.begin().await?,
                false,
            ),
            ReadsFirst::TopUpWith(provider, minor) => {
                self.provider_invoice(se, Sale::Fiat(minor), provider)
                    .await?
            }
            ReadsFirst::PayBalance { plan, screen } => {
                // One debit per drawn pay screen: a double tap or a redelivered press pays
                // once, while the same plan chosen again draws a new screen and pays again.
                let reference = format!("balance:{}:{screen}:{plan}", se.user.id);
                self.pay_from_balance(se, &plan, &reference, update_id)
                    .await?
            }
        })
    }

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
        access::notices::expect(&mut tx, &sub, now)
            .await
            .map_err(retry)?;
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
        access::notices::expect(&mut tx, &fresh, now)
            .await
            .map_err(retry)?;
        let screen = self
            .fresh_connect(se.lang, &fresh)
            .with_note(self.texts.get(se.lang, "reissue-done"));
        Ok((screen, tx, true))
    }
}

/// How an action reads what its screen needs, stated once per action by [`lane`]: the
/// handler of each lane gets a transaction or does not, by type, so an action can neither
/// read through the pool while its transaction holds SQLite's one writer (it would wait for
/// itself) nor be handed a transaction it does not expect.
enum Lane {
    /// Its screen needs no read beyond the sender's (flags and subscription included): the
    /// update's transaction opens right after that read. The frequent ones (menu, buying).
    InTransaction(InTransaction),
    /// It reads through the pool first; its transaction opens after those reads.
    ReadsFirst(ReadsFirst),
}

enum InTransaction {
    Menu,
    Buy,
    Plan(String),
    Promo,
    Help,
    Support,
    Languages,
    SetLanguage(Language),
    PayStars(String),
    PayCard(String),
}

enum ReadsFirst {
    Access,
    Connect,
    AutoRenew(bool),
    Trial,
    Reissue,
    Balance,
    Invite,
    Withdraw,
    WithdrawConfirm(i64),
    WithdrawCancel,
    Receipt,
    ReceiptChange,
    ReceiptRemove,
    TopUpStars(usize),
    PayBalance {
        plan: String,
        screen: i64,
    },
    ApplyPayment(i64),
    Admin(AdminAction),
    /// Calls the provider (outside any transaction), so it reads first.
    PayProvider(String, Provider),
    CheckPaid(i64),
    TopUpFiat(i64),
    TopUpWith(Provider, i64),
}

/// Each action's lane; a new action does not compile until it is given one.
fn lane(action: Action) -> Lane {
    use InTransaction as T;
    use ReadsFirst as R;
    match action {
        Action::Menu => Lane::InTransaction(T::Menu),
        Action::Buy => Lane::InTransaction(T::Buy),
        Action::Plan(id) => Lane::InTransaction(T::Plan(id)),
        Action::Promo => Lane::InTransaction(T::Promo),
        Action::Help => Lane::InTransaction(T::Help),
        Action::Support => Lane::InTransaction(T::Support),
        Action::Languages => Lane::InTransaction(T::Languages),
        Action::SetLanguage(l) => Lane::InTransaction(T::SetLanguage(l)),
        Action::PayStars(id) => Lane::InTransaction(T::PayStars(id)),
        Action::PayCard(id) => Lane::InTransaction(T::PayCard(id)),
        Action::Access => Lane::ReadsFirst(R::Access),
        Action::Connect => Lane::ReadsFirst(R::Connect),
        Action::AutoRenew(on) => Lane::ReadsFirst(R::AutoRenew(on)),
        Action::Trial => Lane::ReadsFirst(R::Trial),
        Action::Reissue => Lane::ReadsFirst(R::Reissue),
        Action::Balance => Lane::ReadsFirst(R::Balance),
        Action::Invite => Lane::ReadsFirst(R::Invite),
        Action::Withdraw => Lane::ReadsFirst(R::Withdraw),
        Action::WithdrawConfirm(s) => Lane::ReadsFirst(R::WithdrawConfirm(s)),
        Action::WithdrawCancel => Lane::ReadsFirst(R::WithdrawCancel),
        Action::Receipt => Lane::ReadsFirst(R::Receipt),
        Action::ReceiptChange => Lane::ReadsFirst(R::ReceiptChange),
        Action::ReceiptRemove => Lane::ReadsFirst(R::ReceiptRemove),
        Action::TopUpStars(i) => Lane::ReadsFirst(R::TopUpStars(i)),
        Action::PayBalance { plan, screen } => Lane::ReadsFirst(R::PayBalance { plan, screen }),
        Action::ApplyPayment(id) => Lane::ReadsFirst(R::ApplyPayment(id)),
        Action::Admin(a) => Lane::ReadsFirst(R::Admin(a)),
        Action::PayCrypto(id) => Lane::ReadsFirst(R::PayProvider(id, Provider::Crypto)),
        Action::PayYooKassa(id) => Lane::ReadsFirst(R::PayProvider(id, Provider::YooKassa)),
        Action::CheckPaid(p) => Lane::ReadsFirst(R::CheckPaid(p)),
        Action::TopUpFiat(m) => Lane::ReadsFirst(R::TopUpFiat(m)),
        Action::TopUpCrypto(m) => Lane::ReadsFirst(R::TopUpWith(Provider::Crypto, m)),
        Action::TopUpYooKassa(m) => Lane::ReadsFirst(R::TopUpWith(Provider::YooKassa, m)),
    }
}
