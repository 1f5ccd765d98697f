//! The bearer token: kept out of logs, compared in constant time.
//!
//! Why hash before comparing: `subtle`'s constant-time equality still reveals whether the
//! lengths differ. Comparing SHA-256 digests (always 32 bytes) hides the length too.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest token accepted: 32 characters (e.g. `openssl rand -hex 32` gives 64).
pub const MIN_TOKEN_LEN: usize = 32;

/// A secret token. `Debug` never shows it and there is no `Display`.
#[derive(Clone)]
pub struct Token(String);

impl Token {
    /// Checks a token's shape: at least [`MIN_TOKEN_LEN`] printable ASCII characters, no spaces.
    /// The error never contains the token.
    pub fn new(secret: impl Into<String>) -> Result<Token, String> {
        let secret = secret.into();
        if secret.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token is {} characters long; use at least {MIN_TOKEN_LEN} (e.g. `openssl rand -hex 32`)",
                secret.len()
            ));
        }
        if !secret.chars().all(|c| c.is_ascii_graphic()) {
            return Err("the token contains spaces, control or non-ASCII characters; use printable ASCII only (e.g. `openssl rand -hex 32`)".to_owned());
        }
        Ok(Token(secret))
    }

    /// A random 64-hex-character token (for tests and first setups).
    pub fn generate() -> Token {
        Token(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// The secret itself: only to build an `Authorization` header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn digest(&self) -> TokenDigest {
        TokenDigest(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The SHA-256 of the expected token.
#[derive(Clone, Copy)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// True if `header` is `Bearer <the token>` (scheme case-insensitive), in constant time
    /// with respect to the token.
    pub(crate) fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header else { return false };
        let Some((scheme, presented)) = split_scheme(header) else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(b"bearer") {
            return false;
        }
        let presented: [u8; 32] = Sha256::digest(presented).into();
        presented.ct_eq(&self.0).into()
    }
}

fn split_scheme(header: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = header.iter().position(|b| *b == b' ')?;
    let (scheme, rest) = header.split_at(space);
    let token = rest.trim_ascii();
    (!token.is_empty()).then_some((scheme, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_and_never_printed() {
        let secret = "s3cr3t-".repeat(6);
        let token = Token::new(secret.clone()).unwrap();
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        let err = Token::new("short").unwrap_err();
        assert!(
            err.contains("at least 32") && !err.contains("short"),
            "{err}"
        );
        assert!(
            Token::new(format!("{secret} x"))
                .unwrap_err()
                .contains("spaces")
        );
        assert_eq!(Token::generate().expose().len(), 64);
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let token = Token::new("a".repeat(40)).unwrap();
        let digest = token.digest();
        let good = format!("Bearer {}", "a".repeat(40));
        assert!(digest.accepts(Some(good.as_bytes())));
        assert!(digest.accepts(Some(format!("bearer {}", "a".repeat(40)).as_bytes())));
        assert!(!digest.accepts(None));
        assert!(!digest.accepts(Some(b"Bearer ")));
        assert!(!digest.accepts(Some("a".repeat(40).as_bytes())));
        assert!(!digest.accepts(Some(format!("Basic {}", "a".repeat(40)).as_bytes())));
        assert!(!digest.accepts(Some(format!("Bearer {}", "a".repeat(39)).as_bytes())));
        assert!(!digest.accepts(Some(format!("Bearer {}b", "a".repeat(40)).as_bytes())));
    }
}
