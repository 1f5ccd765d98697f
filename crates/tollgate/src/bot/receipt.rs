//! The 54-FZ receipt contact (catalog `[yookassa] receipts = true`): before the first
//! YooKassa payment the user is asked once for the email or phone their receipts go to; the
//! answer is parsed at the edge ([`ReceiptContact`]), kept on the user (`users`), and the
//! payment they were buying goes on. Later purchases find it and are not asked again. The
//! Receipts screen (`/receipt`, Balance → Receipts) shows it and changes or removes it: a
//! typo would otherwise send every later receipt to the wrong address.
//!
//! The questions use the store the withdrawal's questions use (`admin::prompts`: one pending
//! question per Telegram id, claimed in the answer's transaction); the purchase's question
//! remembers the sale, so a valid answer continues to that payment. A refused answer names
//! its reason, keeps the question open and stores nothing. A button or a command while a
//! receipt question is pending leaves it (`Bot::leave_question`), so the user's
//! next ordinary text is not read as a contact.

use super::payments::Sale;
use super::screens::{self, Screen, View};
use super::{Bot, Session, retry};
use crate::action::Action;
use crate::admin::prompts;
use crate::billing::Provider;
use crate::domain::receipt_contact::{ContactError, ReceiptContact};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::users;

/// What a pending receipt question is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Question {
    /// Asked before paying for a plan (from the pay screen drawn by an update): a valid
    /// answer goes on to that payment.
    Plan(String, i64),
    /// Asked before a base-currency top-up of this many minor units: likewise.
    Fiat(i64),
    /// Asked from the Receipts screen: a valid answer replaces the contact.
    Change,
}

impl Question {
    /// The question before paying for `sale`; `None` for a sale that never asks (a Stars
    /// top-up, paid in Telegram).
    fn before(sale: &Sale) -> Option<Question> {
        match sale {
            Sale::Plan(plan, drawn_by) => Some(Question::Plan(plan.clone(), *drawn_by)),
            Sale::Fiat(minor) => Some(Question::Fiat(*minor)),
            Sale::TopUp(_) => None,
        }
    }

    /// The sale a valid answer goes on to.
    fn sale(self) -> Option<Sale> {
        match self {
            Question::Plan(plan, drawn_by) => Some(Sale::Plan(plan, drawn_by)),
            Question::Fiat(minor) => Some(Sale::Fiat(minor)),
            Question::Change => None,
        }
    }

    /// The pending question's text.
    fn encode(&self) -> String {
        match self {
            Question::Plan(plan, drawn_by) => format!("rc:plan:{drawn_by}:{plan}"),
            Question::Fiat(minor) => format!("rc:fiat:{minor}"),
            Question::Change => "rc:change".into(),
        }
    }

    fn decode(question: &str) -> Option<Question> {
        let rest = question.strip_prefix("rc:")?;
        if rest == "change" {
            return Some(Question::Change);
        }
        if let Some(minor) = rest.strip_prefix("fiat:") {
            return minor.parse().ok().map(Question::Fiat);
        }
        let (drawn_by, plan) = rest.strip_prefix("plan:")?.split_once(':')?;
        Some(Question::Plan(plan.to_owned(), drawn_by.parse().ok()?))
    }

    /// Where its Back button goes (a press there leaves the question).
    fn back(&self) -> Action {
        match self {
            Question::Plan(..) => Action::Buy,
            Question::Fiat(_) => Action::Balance,
            Question::Change => Action::Receipt,
        }
    }
}

/// What a button of the Receipts screen does.
pub(super) enum ReceiptEdit {
    Change,
    Remove,
}

/// The question's screen, under the reason of a refused answer (`note`).
fn asking(v: &View<'_>, question: &Question, note: Option<String>) -> Screen {
    let text = v.t(match question {
        Question::Plan(..) | Question::Fiat(_) => "receipt-ask",
        Question::Change => "receipt-ask-change",
    });
    let text = match note {
        Some(n) => format!("{n}\n\n{text}"),
        None => text,
    };
    Screen::new(text, vec![v.back_row(question.back())])
}

fn refusal(v: &View<'_>, e: ContactError) -> String {
    match e {
        ContactError::Empty => v.t("receipt-contact-empty"),
        ContactError::BadEmail => v.t("receipt-email-invalid"),
        ContactError::BadPhone => v.t("receipt-phone-invalid"),
    }
}

fn saved(v: &View<'_>, contact: &ReceiptContact) -> String {
    v.tf(
        "receipt-contact-saved",
        &[("contact", contact.as_str().into())],
    )
}

impl Bot {
    /// YooKassa payments carry receipts: the catalog turns them on and YooKassa is set up.
    pub(super) fn receipts_sent(&self) -> bool {
        self.s.config.catalog.yookassa.receipts && self.pay_methods().yookassa
    }

    /// The receipt contact for a payment through `provider`: `Ok(None)` when no receipt is
    /// sent (another provider, receipts off), `Ok(Some(contact))` when it is known, or the
    /// question's screen (asked now, in the returned transaction) when it is not.
    pub(super) async fn receipt_contact_for(
        &self,
        se: &Session,
        provider: Provider,
        sale: &Sale,
    ) -> Result<Result<Option<String>, (Screen, Tx)>, HandlerError> {
        if provider != Provider::YooKassa || !self.receipts_sent() {
            return Ok(Ok(None));
        }
        if let Some(c) = users::receipt_contact(&self.s.db, se.user.id)
            .await
            .map_err(retry)?
        {
            return Ok(Ok(Some(c)));
        }
        let Some(question) = Question::before(sale) else {
            return Ok(Ok(None));
        };
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        prompts::ask(&mut tx, se.user.id, &question.encode(), self.now())
            .await
            .map_err(retry)?;
        Ok(Err((asking(&v, &question, None), tx)))
    }

    /// `/receipt` and Balance → Receipts: where receipts go, or that none are sent.
    pub(super) async fn receipt_screen(&self, se: &Session) -> Result<Screen, HandlerError> {
        let v = self.view(se.lang);
        if !self.receipts_sent() {
            return Ok(screens::notice(&v, v.t("receipt-off"), Action::Menu));
        }
        let contact = users::receipt_contact(&self.s.db, se.user.id)
            .await
            .map_err(retry)?;
        Ok(screens::receipt(&v, contact.as_deref()))
    }

    /// A button of the Receipts screen: Change (or Enter) asks for a new contact, and nothing
    /// changes until a valid answer comes; Remove forgets the contact (a second press finds
    /// it gone: the same screen), so the next YooKassa payment asks again.
    pub(super) async fn receipt_edit(
        &self,
        se: &Session,
        edit: ReceiptEdit,
    ) -> Result<(Screen, Tx, bool), HandlerError> {
        if !self.receipts_sent() {
            return Ok((self.receipt_screen(se).await?, self.begin().await?, false));
        }
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        let screen = match edit {
            ReceiptEdit::Change => {
                prompts::ask(&mut tx, se.user.id, &Question::Change.encode(), self.now())
                    .await
                    .map_err(retry)?;
                asking(&v, &Question::Change, None)
            }
            ReceiptEdit::Remove => {
                users::remove_receipt_contact(&mut tx, se.user.id)
                    .await
                    .map_err(retry)?;
                screens::receipt(&v, None).with_note(v.t("receipt-contact-removed"))
            }
        };
        Ok((screen, tx, false))
    }

    /// A user's message while a receipt question of theirs is pending: refused with its
    /// reason, or kept and the payment opened (or the Receipts screen shown); `None` when no
    /// receipt question is pending.
    pub(super) async fn receipt_answer(
        &self,
        se: &Session,
        text: &str,
    ) -> Result<Option<(Screen, Tx)>, HandlerError> {
        let Some(pending) = se.question(self.now()) else {
            return Ok(None);
        };
        let Some(question) = Question::decode(&pending.question) else {
            return Ok(None);
        };
        let v = self.view(se.lang);
        let contact = match ReceiptContact::parse(text) {
            Ok(c) => c,
            Err(e) => {
                let screen = asking(&v, &question, Some(refusal(&v, e)));
                return Ok(Some((screen, self.begin().await?)));
            }
        };
        let mut tx = self.begin().await?;
        if !prompts::take(&mut tx, se.user.id, &pending)
            .await
            .map_err(retry)?
        {
            // Answered or cancelled meanwhile: an ordinary message.
            drop(tx);
            return Ok(None);
        }
        users::set_receipt_contact(&mut tx, se.user.id, &contact)
            .await
            .map_err(retry)?;
        let Some(sale) = question.sale() else {
            let screen = screens::receipt(&v, Some(contact.as_str()));
            return Ok(Some((screen.with_note(saved(&v, &contact)), tx)));
        };
        tx.commit().await.map_err(retry)?;
        let (screen, tx, _) = self.provider_invoice(se, sale, Provider::YooKassa).await?;
        Ok(Some((screen.with_note(saved(&v, &contact)), tx)))
    }
}

/// Whether `question` is one of the receipt contact's (what a button or a command leaves:
/// `Bot::leave_question`).
pub(super) fn is_receipt_question(question: &str) -> bool {
    Question::decode(question).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_remembers_what_it_is_for() {
        for q in [
            Question::Plan("m1:x".into(), 42),
            Question::Fiat(15000),
            Question::Change,
        ] {
            assert_eq!(Question::decode(&q.encode()), Some(q));
        }
        assert_eq!(
            Question::before(&Sale::TopUp(0)),
            None,
            "paid in Telegram: never asks"
        );
        for other in ["wd:amount", "rc:", "rc:changed", "rc:fiat:x", "rc:plan:1"] {
            assert_eq!(Question::decode(other), None, "{other}");
        }
    }
}
