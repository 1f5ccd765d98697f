//! The maintenance banner: the text the main menu starts with while flag `maintenance` is on,
//! one per language, set by an admin (plain text, shown escaped: an operator's `<` must not
//! break a screen), stored beside the flags in `settings` and audited like them.

use super::{locked_value, write};
use crate::admin::audit::{self, Actor, AuditAction, AuditEntry};
use crate::config::Language;
use crate::store::{Db, Tx};
use crate::time::Timestamp;
use crate::{on_db, on_tx};

/// The longest maintenance banner, in characters.
pub const BANNER_MAX_CHARS: usize = 1000;

fn banner_key(lang: Language) -> String {
    format!("banner.maintenance.{}", lang.code())
}

/// Why a banner text was refused; nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum BannerError {
    #[error("the maintenance banner is empty; send the text users should see")]
    Empty,
    #[error(
        "the maintenance banner has {chars} characters, more than {max}; shorten it",
        max = BANNER_MAX_CHARS
    )]
    TooLong { chars: usize },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The maintenance banner an operator stored for `lang`, if any (shown escaped: it is plain
/// text, not Telegram HTML).
pub async fn banner(db: &Db, lang: Language) -> Result<Option<String>, sqlx::Error> {
    on_db!(db, p => sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(banner_key(lang)).fetch_optional(p).await)
}

/// [`banner`] in the caller's transaction.
pub async fn banner_in(tx: &mut Tx, lang: Language) -> Result<Option<String>, sqlx::Error> {
    on_tx!(tx, c => sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
        .bind(banner_key(lang)).fetch_optional(c).await)
}

/// The banner text as it would be stored: trimmed, non-empty, at most [`BANNER_MAX_CHARS`].
pub fn check_banner(text: &str) -> Result<&str, BannerError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(BannerError::Empty);
    }
    let chars = text.chars().count();
    if chars > BANNER_MAX_CHARS {
        return Err(BannerError::TooLong { chars });
    }
    Ok(text)
}

/// Stores the maintenance banner for `lang` (checked by [`check_banner`]; a refused text
/// stores nothing) with its audit row, in the caller's transaction. Returns the banner it
/// replaces.
pub async fn set_banner(
    tx: &mut Tx,
    lang: Language,
    text: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<Option<String>, BannerError> {
    let (previous, entry) = change_banner(tx, lang, text, actor, now).await?;
    audit::record(tx, &entry, now).await?;
    Ok(previous)
}

/// [`set_banner`] without recording: the banner it replaces and the audit entry describing the
/// change, for a caller that records it itself in the same transaction (with the console's
/// `request`).
pub async fn change_banner(
    tx: &mut Tx,
    lang: Language,
    text: &str,
    actor: Actor,
    now: Timestamp,
) -> Result<(Option<String>, AuditEntry), BannerError> {
    let text = check_banner(text)?;
    let k = banner_key(lang);
    let previous = locked_value(tx, &k).await?;
    write(tx, &k, text, actor, now).await?;
    let entry = AuditEntry::new(actor, AuditAction::SetBanner)
        .subject(format!("maintenance-banner:{}", lang.code()))
        .change(previous.clone().unwrap_or_default(), text);
    Ok((previous, entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_banner_is_trimmed_and_bounded() {
        assert_eq!(check_banner("  back at 18:00 \n").unwrap(), "back at 18:00");
        assert!(matches!(check_banner(" \n"), Err(BannerError::Empty)));
        let long = "я".repeat(BANNER_MAX_CHARS);
        assert!(
            check_banner(&long).is_ok(),
            "counted in characters, not bytes"
        );
        let e = check_banner(&"x".repeat(5_000)).unwrap_err();
        assert!(matches!(e, BannerError::TooLong { chars: 5_000 }));
        assert!(
            e.to_string().contains("5000 characters, more than 1000"),
            "{e}"
        );
    }
}
