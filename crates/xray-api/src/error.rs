//! Errors of core API calls, classified so callers can act on them.
//!
//! Why classify by text: both cores report almost every failure of `AlterInbound` and
//! `GetStats` as gRPC `UNKNOWN` with a Go error chain as the message. The message is the only
//! signal, so this module turns the known phrases into an [`ErrorKind`] and always keeps the
//! core's original text for the operator. Transport failures and deadlines become
//! [`ErrorKind::Unavailable`]: the caller should retry, nothing was decided.
//!
//! Texts observed from Debian's v2ray 4.34 (Xray uses the same phrases with an
//! `github.com/xtls/xray-core/...` package prefix):
//! * `v2ray.com/core/proxy/vless: User alice@test already exists.`
//! * `v2ray.com/core/proxy/vless: User nobody@test not found.`
//! * `v2ray.com/core/app/proxyman/command: failed to get handler: no-such-tag >
//!   v2ray.com/core/app/proxyman/inbound: handler not found: no-such-tag`
//! * `v2ray.com/core/app/proxyman/command: proxy is not a UserManager`
//! * `v2ray.com/core/app/stats/command: user>>>x>>>traffic>>>uplink not found.`
//!
//! There is no error for "this inbound is VMess/Trojan": v2ray 4.34 *panics and exits* when a
//! VLESS user is added to such an inbound. [`crate::XrayClient::check_vless_inbound`] finds out
//! safely from the package named in a "not found" answer (`v2ray.com/core/proxy/vmess/inbound:
//! User x not found.` vs `v2ray.com/core/proxy/vless: User x not found.`).

use std::fmt;

use tonic::Code;

/// What kind of failure an [`Error`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Adding a user whose email the inbound already has (emails compare case-insensitively).
    AlreadyExists,
    /// Removing a user the inbound does not have, or reading a counter that does not exist
    /// (counters appear only after a user's first connection).
    NotFound,
    /// The inbound tag is not in the core's configuration.
    InboundNotFound,
    /// The inbound exists but cannot take VLESS users: it is not a user manager at all
    /// (`proxy is not a UserManager`: dokodemo-door, socks, http...) or, as found by
    /// [`crate::XrayClient::check_vless_inbound`], it manages users of another protocol.
    InboundNotVless,
    /// The core does not implement the call: the service is missing from the core's
    /// `api.services`, or the method does not exist in this core version.
    Unimplemented,
    /// The core could not be reached or did not answer before the deadline. Nothing is known
    /// about the outcome; retry.
    Unavailable,
    /// Anything else; the core's message says what.
    Other,
}

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            ErrorKind::AlreadyExists => "the user already exists",
            ErrorKind::NotFound => "not found",
            ErrorKind::InboundNotFound => {
                "the inbound tag does not exist in the core's configuration (check the tag)"
            }
            ErrorKind::InboundNotVless => {
                "the inbound cannot take VLESS users (point the tag at a \"protocol\": \"vless\" inbound)"
            }
            ErrorKind::Unimplemented => {
                "the core does not implement this call (is the service listed in the core's api.services? right dialect?)"
            }
            ErrorKind::Unavailable => {
                "the core API is unreachable or did not answer in time (is the core running with its API inbound on this address?)"
            }
            ErrorKind::Other => "the core rejected the call",
        }
    }
}

/// A failed core API call: its kind, what we were doing, and the core's own message.
#[derive(Clone, Debug)]
pub struct Error {
    kind: ErrorKind,
    operation: String,
    message: String,
    code: Option<Code>,
}

impl Error {
    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The core's (or the transport's) original message, unchanged.
    pub fn core_message(&self) -> &str {
        &self.message
    }

    /// What was being done, e.g. `add user alice@test to inbound vless-in`.
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// The gRPC status code, when the core answered with one.
    pub fn grpc_code(&self) -> Option<Code> {
        self.code
    }

    /// True for [`ErrorKind::Unavailable`]: a retry may succeed.
    pub fn is_unavailable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }

    pub(crate) fn new(
        kind: ErrorKind,
        operation: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error {
            kind,
            operation: operation.into(),
            message: message.into(),
            code: None,
        }
    }

    /// Classifies a gRPC status returned for `operation`.
    pub(crate) fn from_status(operation: impl Into<String>, status: &tonic::Status) -> Self {
        let code = status.code();
        let message = status.message().to_owned();
        let kind = classify(code, &message);
        Error {
            kind,
            operation: operation.into(),
            message,
            code: Some(code),
        }
    }

    /// True if this is the `UNIMPLEMENTED unknown service ...` answer of a core that speaks the
    /// other dialect.
    pub(crate) fn is_unknown_service(&self) -> bool {
        self.code == Some(Code::Unimplemented)
    }
}

/// Maps a status to a kind. Order matters: "handler not found" also contains "not found".
fn classify(code: Code, message: &str) -> ErrorKind {
    match code {
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
            return ErrorKind::Unavailable;
        }
        Code::Unimplemented => return ErrorKind::Unimplemented,
        _ => {}
    }
    if message.contains("handler not found") {
        ErrorKind::InboundNotFound
    } else if message.contains("not a UserManager") {
        ErrorKind::InboundNotVless
    } else if message.contains("already exists") {
        ErrorKind::AlreadyExists
    } else if message.contains("not found") {
        ErrorKind::NotFound
    } else if message.contains("transport error") || message.contains("connection error") {
        // hyper/h2 failures that tonic reports as UNKNOWN (e.g. the core died mid-call).
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.operation,
            self.kind.describe(),
            self.message
        )
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(code: Code, message: &str) -> ErrorKind {
        Error::from_status("test", &tonic::Status::new(code, message)).kind()
    }

    #[test]
    fn observed_v2ray_texts_are_classified() {
        assert_eq!(
            kind(
                Code::Unknown,
                "v2ray.com/core/proxy/vless: User alice@test already exists."
            ),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            kind(
                Code::Unknown,
                "v2ray.com/core/proxy/vless: User nobody@test not found."
            ),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(
                Code::Unknown,
                "v2ray.com/core/app/proxyman/command: failed to get handler: no-such-tag > \
                 v2ray.com/core/app/proxyman/inbound: handler not found: no-such-tag"
            ),
            ErrorKind::InboundNotFound
        );
        assert_eq!(
            kind(
                Code::Unknown,
                "v2ray.com/core/app/proxyman/command: proxy is not a UserManager"
            ),
            ErrorKind::InboundNotVless
        );
        assert_eq!(
            kind(
                Code::Unknown,
                "v2ray.com/core/app/stats/command: user>>>a@b>>>traffic>>>uplink not found."
            ),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(
                Code::Unimplemented,
                "unknown service xray.app.proxyman.command.HandlerService"
            ),
            ErrorKind::Unimplemented
        );
        assert_eq!(
            kind(Code::Unavailable, "tcp connect error"),
            ErrorKind::Unavailable
        );
        assert_eq!(
            kind(
                Code::Unknown,
                "v2ray.com/core/proxy/vless: Email must not be empty."
            ),
            ErrorKind::Other
        );
    }

    #[test]
    fn display_keeps_the_core_message() {
        let err = Error::from_status(
            "add user a@b to inbound vless-in",
            &tonic::Status::new(
                Code::Unknown,
                "v2ray.com/core/proxy/vless: User a@b already exists.",
            ),
        );
        let text = err.to_string();
        assert!(
            text.starts_with("add user a@b to inbound vless-in: "),
            "{text}"
        );
        assert!(text.ends_with("User a@b already exists."), "{text}");
        assert_eq!(
            err.core_message(),
            "v2ray.com/core/proxy/vless: User a@b already exists."
        );
    }
}
