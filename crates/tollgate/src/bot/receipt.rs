//! The 54-FZ receipt contact (catalog `[yookassa] receipts = true`): before the first
//! YooKassa payment the user is asked once for the email or phone their receipts go to; the
//! answer is parsed at the edge ([`ReceiptContact`]), kept on the user (`users`), and the
//! payment they were buying goes on. Later purchases find it and are not asked again.
//!
//! The question uses the store the withdrawal's questions use (`admin::prompts`: one pending
//! question per Telegram id, claimed in the answer's transaction); it remembers the sale, so
//! a valid answer continues to that payment. A refused answer names its reason, keeps the
//! question open and stores nothing.

use super::payments::Sale;
use super::screens::{Screen, View};
use super::{Bot, Session, retry};
use crate::action::Action;
use crate::admin::prompts;
use crate::billing::Provider;
use crate::domain::receipt_contact::{ContactError, ReceiptContact};
use crate::i18n::{Arg, escape_html};
use crate::store::Tx;
use crate::telegram::dispatcher::HandlerError;
use crate::users;

/// The pending question's text: which sale the contact is for.
fn encode(sale: &Sale) -> Option<String> {
    match sale {
        Sale::Plan(plan, drawn_by) => Some(format!("rc:plan:{drawn_by}:{plan}")),
        Sale::Fiat(minor) => Some(format!("rc:fiat:{minor}")),
        Sale::TopUp(_) => None,
    }
}

fn decode(question: &str) -> Option<Sale> {
    let rest = question.strip_prefix("rc:")?;
    if let Some(minor) = rest.strip_prefix("fiat:") {
        return minor.parse().ok().map(Sale::Fiat);
    }
    let (drawn_by, plan) = rest.strip_prefix("plan:")?.split_once(':')?;
    Some(Sale::Plan(plan.to_owned(), drawn_by.parse().ok()?))
}

/// Where a refused sale goes back to.
fn back(sale: &Sale) -> Action {
    match sale {
        Sale::Plan(..) => Action::Buy,
        Sale::Fiat(_) | Sale::TopUp(_) => Action::Balance,
    }
}

fn asking(v: &View<'_>, sale: &Sale, note: Option<String>) -> Screen {
    let question = v.t("receipt-ask");
    let text = match note {
        Some(n) => format!("{n}\n\n{question}"),
        None => question,
    };
    Screen::new(text, vec![v.back_row(back(sale))])
}

fn refusal(v: &View<'_>, e: ContactError) -> String {
    match e {
        ContactError::Empty => v.t("receipt-contact-empty"),
        ContactError::BadEmail => v.t("receipt-email-invalid"),
        ContactError::BadPhone => v.t("receipt-phone-invalid"),
    }
}

impl Bot {
    /// The receipt contact for a payment through `provider`: `Ok(None)` when no receipt is
    /// sent (another provider, receipts off), `Ok(Some(contact))` when it is known, or the
    /// question's screen (asked now, in the returned transaction) when it is not.
    pub(super) async fn receipt_contact_for(
        &self,
        se: &Session,
        provider: Provider,
        sale: &Sale,
    ) -> Result<Result<Option<String>, (Screen, Tx)>, HandlerError> {
        if provider != Provider::YooKassa || !self.s.config.catalog.yookassa.receipts {
            return Ok(Ok(None));
        }
        if let Some(c) = users::receipt_contact(&self.s.db, se.user.id)
            .await
            .map_err(retry)?
        {
            return Ok(Ok(Some(c)));
        }
        let Some(question) = encode(sale) else {
            return Ok(Ok(None));
        };
        let v = self.view(se.lang);
        let mut tx = self.begin().await?;
        prompts::ask(&mut tx, se.user.id, &question, self.now())
            .await
            .map_err(retry)?;
        Ok(Err((asking(&v, sale, None), tx)))
    }

    /// A user's message while the receipt question is pending: refused with its reason, or
    /// kept and the payment opened; `None` when no receipt question is pending.
    pub(super) async fn receipt_answer(
        &self,
        se: &Session,
        text: &str,
    ) -> Result<Option<(Screen, Tx)>, HandlerError> {
        let Some(pending) = prompts::pending(&self.s.db, se.user.id, self.now())
            .await
            .map_err(retry)?
        else {
            return Ok(None);
        };
        let Some(sale) = decode(&pending.question) else {
            return Ok(None);
        };
        let v = self.view(se.lang);
        let contact = match ReceiptContact::parse(text) {
            Ok(c) => c,
            Err(e) => {
                let screen = asking(&v, &sale, Some(refusal(&v, e)));
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
        tx.commit().await.map_err(retry)?;
        let (screen, tx, _) = self.provider_invoice(se, sale, Provider::YooKassa).await?;
        let note = v.tf(
            "receipt-contact-saved",
            &[("contact", Arg::Html(escape_html(contact.as_str())))],
        );
        Ok(Some((screen.with_note(note), tx)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_remembers_the_sale() {
        for sale in [Sale::Plan("m1:x".into(), 42), Sale::Fiat(15000)] {
            let q = encode(&sale).expect("encodable");
            assert_eq!(decode(&q), Some(sale));
        }
        assert_eq!(decode("wd:amount"), None);
    }
}
