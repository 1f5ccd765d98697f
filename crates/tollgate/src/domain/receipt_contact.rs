//! The contact a 54-FZ receipt is sent to: an email or a phone number, parsed once at the
//! edge (the user's typed answer) so that what is stored and handed to YooKassa is already
//! in the form the provider accepts (a phone as digits only, e.g. `79001234567`).

use std::fmt;

/// The longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// A valid receipt contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptContact {
    Email(String),
    /// Digits only, 11 to 15 of them (country code included).
    Phone(String),
}

/// Why a typed contact is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactError {
    Empty,
    /// Looks like an email (has an @) but is not a valid one.
    BadEmail,
    /// Neither an email nor 11–15 digits.
    BadPhone,
}

impl ReceiptContact {
    /// Parses a typed email or phone (see the module doc).
    pub fn parse(input: &str) -> Result<ReceiptContact, ContactError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(ContactError::Empty);
        }
        if s.contains('@') {
            return parse_email(s).map(ReceiptContact::Email);
        }
        parse_phone(s).map(ReceiptContact::Phone)
    }

    /// The stored form (an email as typed, a phone as digits).
    pub fn as_str(&self) -> &str {
        match self {
            ReceiptContact::Email(s) | ReceiptContact::Phone(s) => s,
        }
    }
}

impl fmt::Display for ReceiptContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address as mail servers take it: a local part of letters, digits and RFC 5322's
/// `atext` signs, dots only between them; a domain of dot-separated labels of letters,
/// digits and inner hyphens (letters of any script: `почта.рф`). Quoted local parts and
/// address literals are legal but no shop's receipts go to them, and the provider refuses
/// what is not plainly an address, so they are refused here, where the user can fix it.
fn parse_email(s: &str) -> Result<String, ContactError> {
    const ATEXT_SIGNS: &str = "!#$%&'*+/=?^_`{|}~-";
    let dotted = |part: &str, ok: &dyn Fn(&str) -> bool| {
        part.split('.').all(|piece| !piece.is_empty() && ok(piece))
    };
    let local_ok = |piece: &str| {
        piece
            .chars()
            .all(|c| c.is_alphanumeric() || ATEXT_SIGNS.contains(c))
    };
    let label_ok = |label: &str| {
        label.chars().all(|c| c.is_alphanumeric() || c == '-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let ok = s.chars().count() <= MAX_EMAIL_CHARS
        && s.split_once('@').is_some_and(|(local, domain)| {
            dotted(local, &local_ok) && domain.contains('.') && dotted(domain, &label_ok)
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ContactError::BadEmail)
    }
}

fn parse_phone(s: &str) -> Result<String, ContactError> {
    let body = s.strip_prefix('+').unwrap_or(s);
    let mut digits = String::new();
    for ch in body.chars() {
        match ch {
            '0'..='9' => digits.push(ch),
            ' ' | '-' | '(' | ')' => {}
            _ => return Err(ContactError::BadPhone),
        }
    }
    if (11..=15).contains(&digits.len()) {
        Ok(digits)
    } else {
        Err(ContactError::BadPhone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            ReceiptContact::parse(" user@example.com "),
            Ok(ReceiptContact::Email("user@example.com".into()))
        );
        for bad in [
            "@example.com",
            "user@example",
            "a@b@c.com",
            "us er@example.com",
            "user@.com",
            "user@example.",
            "cid<b>@example.com",
            "\"a b\"@example.com",
            "a..b@example.com",
            ".a@example.com",
            "a@exa_mple.com",
            "a@-example.com",
            "a@[192.0.2.1]",
            "a,b@example.com",
        ] {
            assert_eq!(
                ReceiptContact::parse(bad),
                Err(ContactError::BadEmail),
                "{bad}"
            );
        }
        for good in [
            "o'neil&co+receipts@example.com",
            "first.last@mail.example.co.uk",
            "ivan@почта.рф",
        ] {
            assert_eq!(
                ReceiptContact::parse(good),
                Ok(ReceiptContact::Email(good.into())),
                "{good}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(ReceiptContact::parse(&long), Err(ContactError::BadEmail));
    }

    #[test]
    fn phones() {
        for (typed, digits) in [
            ("+7 (900) 123-45-67", "79001234567"),
            ("79001234567", "79001234567"),
            ("+44 20 7946 0958", "442079460958"),
        ] {
            assert_eq!(
                ReceiptContact::parse(typed),
                Ok(ReceiptContact::Phone(digits.into()))
            );
        }
        for bad in [
            "12345",
            "+7 900 123",
            "7900123456712345",
            "7900x1234567",
            "++79001234567",
        ] {
            assert_eq!(
                ReceiptContact::parse(bad),
                Err(ContactError::BadPhone),
                "{bad}"
            );
        }
        assert_eq!(ReceiptContact::parse("   "), Err(ContactError::Empty));
    }
}
