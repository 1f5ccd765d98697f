//! How updates reach the service and where it listens: webhook mode (`PUBLIC_URL` with its
//! `WEBHOOK_SECRET` and `WEBHOOK_PATH`) or long polling, and the HTTP listener's address.

use std::net::IpAddr;

use url::Url;

use super::reader::{Reader, parse_http_url};
use crate::config::secret::{Secret, describe_secret};

pub const DEFAULT_WEBHOOK_PATH: &str = "/telegram/webhook";
/// The shortest `WEBHOOK_SECRET` accepted (`openssl rand -hex 32` gives 64).
pub const MIN_WEBHOOK_SECRET: usize = 32;

/// How updates reach us. Webhook mode needs a public URL and a secret; without a public URL
/// the service long-polls `getUpdates`.
#[derive(Debug, Clone)]
pub enum IntakeMode {
    Webhook {
        public_url: Url,
        secret: Secret<String>,
    },
    Polling,
}

impl IntakeMode {
    pub fn name(&self) -> &'static str {
        match self {
            IntakeMode::Webhook { .. } => "webhook",
            IntakeMode::Polling => "polling",
        }
    }
}

/// What the intake settings give `deployment`: the mode, and the public base URL the feed
/// falls back to.
pub(super) struct Intake {
    pub(super) mode: Option<IntakeMode>,
    pub(super) public_base: Option<String>,
    pub(super) webhook_path: Option<String>,
}

/// `PUBLIC_URL`, `WEBHOOK_SECRET` and `WEBHOOK_PATH`: webhook mode needs the first two.
pub(super) fn read_intake(r: &mut Reader<'_>) -> Intake {
    let public_url = r.read(
        "PUBLIC_URL",
        None,
        "set PUBLIC_URL to the https address Telegram can reach, e.g. https://bot.example.com, or unset it to poll",
        parse_http_url,
        Url::to_string,
    );
    // The secret is the only guard against forged updates, `successful_payment` included:
    // Telegram accepts one character, we demand enough randomness that guessing is hopeless.
    let secret_rule = |t: &str| {
        let charset = t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !charset || t.len() > 256 {
            Err(format!(
                "{} is not a valid secret token: Telegram allows 1-256 characters of A-Z a-z 0-9 _ -",
                describe_secret(t)
            ))
        } else if t.len() < MIN_WEBHOOK_SECRET {
            Err(format!(
                "{} is too short to guard against forged payments: use at least {MIN_WEBHOOK_SECRET}",
                describe_secret(t)
            ))
        } else {
            Ok(Secret::new(t.to_owned()))
        }
    };
    let secret_fix = "set WEBHOOK_SECRET to 32 or more random characters of A-Z a-z 0-9 _ -, e.g. from `openssl rand -hex 32`";
    let webhook_secret = r.read("WEBHOOK_SECRET", None, secret_fix, secret_rule, |_| {
        "***".to_owned()
    });
    let public_base = public_url.as_ref().map(Url::to_string);
    let intake = match (public_url, webhook_secret) {
        (Some(public_url), Some(secret)) => Some(IntakeMode::Webhook { public_url, secret }),
        (Some(_), None) if r.env.get("WEBHOOK_SECRET").is_none() => {
            r.fail(
                "WEBHOOK_SECRET",
                "is not set, but PUBLIC_URL is: without it anyone could post fake updates"
                    .to_owned(),
                secret_fix,
            );
            None
        }
        (None, _) if r.env.get("PUBLIC_URL").is_none() => Some(IntakeMode::Polling),
        // The variable that failed to parse has already been reported.
        _ => None,
    };
    let webhook_path = r.read(
        "WEBHOOK_PATH",
        Some(DEFAULT_WEBHOOK_PATH),
        "set WEBHOOK_PATH to an absolute path such as /telegram/webhook",
        |t| {
            let ok = t.starts_with('/')
                && t.len() > 1
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'));
            if ok {
                Ok(t.to_owned())
            } else {
                Err(format!(
                    "{t:?} is not an absolute path of letters, digits, / - _ ."
                ))
            }
        },
        Clone::clone,
    );
    Intake {
        mode: intake,
        public_base,
        webhook_path,
    }
}

/// `BIND_ADDR` and `PORT`: the HTTP listener.
pub(super) fn read_listener(r: &mut Reader<'_>) -> (Option<IpAddr>, Option<u16>) {
    let bind = r.read(
        "BIND_ADDR",
        Some("0.0.0.0"),
        "set BIND_ADDR to an IP address such as 0.0.0.0 (all interfaces) or 127.0.0.1",
        |t| {
            t.parse::<IpAddr>()
                .map_err(|_| format!("{t:?} is not an IP address"))
        },
        IpAddr::to_string,
    );
    let port = r.read(
        "PORT",
        Some("8080"),
        "set PORT to a TCP port from 1 to 65535, e.g. PORT=8080 (0 picks a free port and logs it)",
        |t| {
            t.parse::<u16>()
                .map_err(|_| format!("{t:?} is not a port number from 0 to 65535"))
        },
        u16::to_string,
    );
    (bind, port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::env::deployment;
    use crate::config::env::testing::{env, errors};

    #[test]
    fn webhook_mode_needs_a_secret() {
        let e = errors(&[("PUBLIC_URL", "https://bot.example.com")]);
        assert!(e.contains("WEBHOOK_SECRET"), "{e}");
        let (d, _) = deployment(&env(&[
            ("PUBLIC_URL", "https://bot.example.com"),
            ("WEBHOOK_SECRET", "s3cr3t_-value-0123456789abcdef-xyz"),
        ]))
        .unwrap();
        assert!(matches!(d.intake, IntakeMode::Webhook { .. }));
    }
}
