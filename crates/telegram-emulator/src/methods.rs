//! The Bot API methods the emulator implements.
//!
//! Why this exists: method names are case-insensitive in the Bot API (TBA lower-cases them), and
//! counters and fault injection are keyed by method. A closed enum makes both bounded — an
//! unknown method name can never grow a map.

use serde::{Deserialize, Serialize};

macro_rules! methods {
    ($($variant:ident => $name:literal,)*) => {
        /// A Bot API method served by the emulator.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum Method {
            $(
                #[doc = concat!("`", $name, "`")]
                #[serde(rename = $name)]
                $variant,
            )*
        }

        impl Method {
            /// Every method, in a fixed order (the index of counters).
            pub const ALL: &'static [Method] = &[$(Method::$variant,)*];

            /// The canonical (camelCase) name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Method::$variant => $name,)*
                }
            }

            /// Looks a method up by name, ignoring case like the Bot API does.
            pub fn from_name(name: &str) -> Option<Method> {
                $(
                    if name.eq_ignore_ascii_case($name) {
                        return Some(Method::$variant);
                    }
                )*
                None
            }
        }
    };
}

methods! {
    GetMe => "getMe",
    GetUpdates => "getUpdates",
    SetWebhook => "setWebhook",
    DeleteWebhook => "deleteWebhook",
    GetWebhookInfo => "getWebhookInfo",
    SendMessage => "sendMessage",
    SendPhoto => "sendPhoto",
    SendDocument => "sendDocument",
    EditMessageText => "editMessageText",
    EditMessageReplyMarkup => "editMessageReplyMarkup",
    EditMessageCaption => "editMessageCaption",
    DeleteMessage => "deleteMessage",
    AnswerCallbackQuery => "answerCallbackQuery",
    SetMyCommands => "setMyCommands",
    GetMyCommands => "getMyCommands",
    DeleteMyCommands => "deleteMyCommands",
    SendInvoice => "sendInvoice",
    CreateInvoiceLink => "createInvoiceLink",
    AnswerPreCheckoutQuery => "answerPreCheckoutQuery",
    RefundStarPayment => "refundStarPayment",
    GetStarTransactions => "getStarTransactions",
    GetMyStarBalance => "getMyStarBalance",
    EditUserStarSubscription => "editUserStarSubscription",
    SendChatAction => "sendChatAction",
}

impl Method {
    /// Index into per-method arrays.
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|m| *m == self).unwrap_or(0)
    }

    /// Whether Telegram's message flood limits apply to this method.
    pub fn is_rate_limited_send(self) -> bool {
        matches!(
            self,
            Self::SendMessage | Self::SendPhoto | Self::SendDocument | Self::SendInvoice
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case() {
        assert_eq!(Method::from_name("sendmessage"), Some(Method::SendMessage));
        assert_eq!(Method::from_name("SENDMESSAGE"), Some(Method::SendMessage));
        assert_eq!(Method::from_name("sendMessages"), None);
        for (i, m) in Method::ALL.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(Method::from_name(m.name()), Some(*m));
        }
    }
}
