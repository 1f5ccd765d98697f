//! Texts that name a button name one the user can see (issue: "Open 📲 Connect in the menu"
//! pointed at a button the menu does not have).
//!
//! The rule the texts follow: a button is named by its exact label, emoji included (a
//! parameterised label may be named without its " · …" part). A button that is not on the
//! text's own message is named with its path from the main menu, labels joined by " → ":
//! "🔑 My access → 📲 Connect". The menu is one tap (🏠 Menu) or /menu away from everywhere.
//!
//! The test builds every screen through the screens module in each language, takes their
//! buttons and where each leads, finds every button name in every text (an emoji that starts
//! some label, anywhere but as the text's own leading icon), and checks the name is a label
//! and the path leads there.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::access::{NodeLink, ProvisioningSummary, Subscription};
use crate::action::Action;
use crate::bot::screens::{self, Button, Screen, View};
use crate::config::catalog::{Catalog, parse_catalog};
use crate::config::{Env, Language};
use crate::domain::money::Money;
use crate::time::Timestamp;

use super::{Texts, message_ids, source};

/// Texts sent with buttons of their own outside the screens module (`jobs::notices`): the
/// label keys on their message.
const OWN_BUTTONS: &[(&str, &[&str])] = &[
    ("trial-onboarding-text", &["btn-connect"]),
    ("trial-ending-text", &["btn-buy"]),
    ("reminder-text", &["btn-renew"]),
    ("trial-ended-text", &["btn-buy"]),
    ("expired-text", &["btn-renew"]),
];

const NOW: Timestamp = Timestamp::from_unix_seconds(1_760_000_000);

fn catalog() -> Catalog {
    let text = include_str!("../../../../config/tollgate.example.toml");
    match parse_catalog(text, "tollgate.example.toml", &Env::default()) {
        Ok(c) => c,
        Err(e) => panic!("the example catalog does not parse: {e}"),
    }
}

fn subscription(expires_at: Timestamp) -> Subscription {
    crate::access::fixtures::subscription(expires_at.as_millis(), false)
}

/// Every screen a user can meet, in one language; the first of each action is where a
/// button with that action leads.
struct Screens {
    /// (screen name, the screen, the action that opens it, if a button does).
    all: Vec<(&'static str, Screen, Option<Action>)>,
}

impl Screens {
    fn build(v: &View<'_>) -> Screens {
        let active = subscription(NOW.plus(Duration::from_secs(20 * 86_400)));
        let expired = subscription(NOW.minus(Duration::from_secs(86_400)));
        let plan = &v.catalog.plans[0];
        let rich = Money::new(100_000_000, v.catalog.bot.base_currency);
        let short = Money::new(1, v.catalog.bot.base_currency);
        let link = NodeLink {
            node: "nl-1".to_owned(),
            name: "🇳🇱 NL".to_owned(),
            link: "vless://x".to_owned(),
        };
        let feed = "https://example.org/sub/token";
        let all = vec![
            (
                "menu",
                screens::menu(v, Some(&active), true, &screens::Maintenance::Off),
                Some(Action::Menu),
            ),
            (
                "menu without trial",
                screens::menu(v, None, false, &screens::Maintenance::BuiltIn),
                None,
            ),
            (
                "my access",
                screens::access(v, Some(&active), false, Some(1)),
                Some(Action::Access),
            ),
            (
                "my access, auto-renewal on",
                screens::access(v, Some(&active), true, None),
                None,
            ),
            (
                "my access, expired",
                screens::access(v, Some(&expired), false, None),
                None,
            ),
            (
                "my access, none",
                screens::access(v, None, false, None),
                None,
            ),
            (
                "buy",
                screens::buy(v, Some(&active), &Default::default()),
                Some(Action::Buy),
            ),
            (
                "pay",
                screens::pay(
                    v,
                    plan,
                    rich,
                    screens::PayMethods {
                        card: true,
                        crypto: true,
                        yookassa: true,
                    },
                    1,
                    &Default::default(),
                ),
                Some(Action::Plan(plan.id.clone())),
            ),
            (
                "provider invoice",
                screens::provider_invoice(
                    v,
                    plan.price(v.catalog.bot.base_currency).unwrap_or(rich),
                    "https://pay.example/1",
                    7,
                    Action::Buy,
                ),
                Some(Action::PayCrypto(plan.id.clone())),
            ),
            (
                "pay, balance short",
                screens::pay(
                    v,
                    plan,
                    short,
                    screens::PayMethods::default(),
                    1,
                    &Default::default(),
                ),
                None,
            ),
            (
                "connect",
                screens::connect(
                    v,
                    Some(&active),
                    ProvisioningSummary::Ready,
                    std::slice::from_ref(&link),
                    feed,
                ),
                Some(Action::Connect),
            ),
            (
                "connect, none",
                screens::connect(v, None, ProvisioningSummary::Inactive, &[], feed),
                None,
            ),
            (
                "balance",
                screens::balance(v, rich, &[], true, true),
                Some(Action::Balance),
            ),
            (
                "receipt",
                screens::receipt(v, Some("ann@example.com")),
                Some(Action::Receipt),
            ),
            ("receipt, none", screens::receipt(v, None), None),
            (
                "promo",
                screens::promo(v, &Default::default()),
                Some(Action::Promo),
            ),
            ("help", screens::help(v), Some(Action::Help)),
            ("support", screens::support(v), Some(Action::Support)),
            ("languages", screens::languages(v), Some(Action::Languages)),
        ];
        Screens { all }
    }

    fn opened_by(&self, action: &Action) -> Option<&Screen> {
        let plan = |a: &Action| matches!(a, Action::Plan(_));
        self.all
            .iter()
            .find(|(_, _, a)| {
                a.as_ref()
                    .is_some_and(|a| a == action || (plan(a) && plan(action)))
            })
            .map(|(_, s, _)| s)
    }

    /// Every label a screen can show, with what it does (`None`: a link).
    fn labels(&self) -> BTreeMap<String, Option<Action>> {
        let mut labels = BTreeMap::new();
        for (_, s, _) in &self.all {
            for (text, action) in buttons(s) {
                labels.insert(text, action);
            }
        }
        labels
    }
}

fn buttons(s: &Screen) -> Vec<(String, Option<Action>)> {
    s.keyboard
        .iter()
        .flatten()
        .map(|b| match b {
            Button::Action { text, action } => (text.clone(), Some(action.clone())),
            Button::Url { text, .. } => (text.clone(), None),
        })
        .collect()
}

/// A label's name as a text may use it: whole, or without its " · …" part.
fn names(label: &str) -> Vec<&str> {
    let mut n = vec![label];
    if let Some((stem, _)) = label.split_once(" · ") {
        n.push(stem);
    }
    n
}

/// The leading emoji of a label, when it has one.
fn mark(label: &str) -> Option<&str> {
    let first = label.split(' ').next()?;
    (!first.is_empty() && !first.chars().any(char::is_alphanumeric)).then_some(first)
}

/// The button paths a text names: at every mark (but the text's own leading icon), the
/// longest label name, then more after " → ". `Err` for a mark that starts no label.
fn mentions(
    text: &str,
    labels: &BTreeMap<String, Option<Action>>,
) -> Vec<Result<Vec<String>, String>> {
    let marks: Vec<&str> = labels.keys().filter_map(|l| mark(l)).collect();
    let label_at = |at: usize| -> Option<(String, usize)> {
        labels
            .keys()
            .flat_map(|l| names(l).into_iter().map(move |n| (l, n)))
            .filter(|(_, n)| text[at..].starts_with(n))
            .max_by_key(|(_, n)| n.len())
            .map(|(l, n)| (l.clone(), at + n.len()))
    };
    let mut found = Vec::new();
    let mut at = 1;
    while at < text.len() {
        if !text.is_char_boundary(at) || !marks.iter().any(|m| text[at..].starts_with(m)) {
            at += 1;
            continue;
        }
        let Some((first, mut end)) = label_at(at) else {
            let shown: String = text[at..].chars().take(30).collect();
            found.push(Err(format!("names no button: {shown:?}")));
            at += 1;
            continue;
        };
        let mut path = vec![first];
        while let Some(rest) = text[end..].strip_prefix(" → ") {
            let next = text.len() - rest.len();
            let Some((label, after)) = label_at(next) else {
                break;
            };
            path.push(label);
            end = after;
        }
        found.push(Ok(path));
        at = end;
    }
    found
}

/// Why `path` does not lead to its last button from `start` (the text's own buttons) or
/// from the main menu.
fn walk(
    path: &[String],
    start: &[String],
    s: &Screens,
    labels: &BTreeMap<String, Option<Action>>,
) -> Result<(), String> {
    let menu: Vec<String> = s
        .opened_by(&Action::Menu)
        .map(|m| buttons(m).into_iter().map(|(t, _)| t).collect())
        .unwrap_or_default();
    let Some(first) = path.first() else {
        return Ok(());
    };
    if !start.contains(first) && !menu.contains(first) {
        return Err(format!(
            "{first:?} is neither on the text's own message ({start:?}) nor on the main menu ({menu:?}); name its path from the menu, e.g. \"A → {first}\""
        ));
    }
    for pair in path.windows(2) {
        let [from, to] = pair else { continue };
        let shown = labels
            .get(from)
            .cloned()
            .flatten()
            .and_then(|a| s.opened_by(&a))
            .map(|screen| {
                buttons(screen)
                    .into_iter()
                    .map(|(t, _)| t)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !shown.contains(to) {
            return Err(format!(
                "{from:?} opens a screen without {to:?} (it has {shown:?})"
            ));
        }
    }
    Ok(())
}

#[test]
fn every_button_a_text_names_is_where_the_text_says() {
    let texts = Texts::load().unwrap();
    let catalog = catalog();
    let mut wrong = Vec::new();
    let mut named = 0;
    for lang in Language::ALL {
        let v = View {
            texts: &texts,
            catalog: &catalog,
            lang,
            now: NOW,
        };
        let s = Screens::build(&v);
        let labels = s.labels();
        let own = |key: &str| -> Vec<String> {
            OWN_BUTTONS
                .iter()
                .filter(|(k, _)| *k == key)
                .flat_map(|(_, b)| b.iter().map(|b| texts.get(lang, b)))
                .collect()
        };
        // Every text on its own (as a notice, or as part of a screen) …
        let keys = message_ids(source(lang));
        for key in keys
            .iter()
            .filter(|k| !k.starts_with("btn-") && *k != "plan-button")
        {
            let text = texts.get(lang, key);
            for m in mentions(&text, &labels) {
                named += 1;
                if let Err(e) = m.and_then(|path| walk(&path, &own(key), &s, &labels)) {
                    wrong.push(format!("{} {key}: {e}\n    {text:?}", lang.code()));
                }
            }
        }
        // … and every screen as shown, with its own buttons.
        for (name, screen, _) in &s.all {
            let start: Vec<String> = buttons(screen).into_iter().map(|(t, _)| t).collect();
            for m in mentions(&screen.text, &labels) {
                if let Err(e) = m.and_then(|path| walk(&path, &start, &s, &labels)) {
                    wrong.push(format!("{} screen {name:?}: {e}", lang.code()));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "texts name buttons the user cannot see:\n{}",
        wrong.join("\n")
    );
    assert!(
        named >= 4,
        "the texts name {named} buttons: is the search broken?"
    );
}

/// [`OWN_BUTTONS`] says what `jobs::notices` sends: after each text key there, the next label
/// key is its button's.
#[test]
fn the_notices_own_buttons_are_the_ones_they_are_sent_with() {
    let code = include_str!("../jobs/notices.rs");
    for (key, labels) in OWN_BUTTONS {
        let at = code
            .find(&format!("\"{key}\""))
            .unwrap_or_else(|| panic!("jobs/notices.rs no longer sends {key}; update OWN_BUTTONS"));
        let next = code[at..]
            .split('"')
            .find(|piece| piece.starts_with("btn-"))
            .unwrap_or_default();
        assert_eq!(
            &[next],
            *labels,
            "{key} is sent with {next}; update OWN_BUTTONS"
        );
    }
}

#[test]
fn button_names_are_found_with_their_paths() {
    let labels: BTreeMap<String, Option<Action>> = [
        ("🔑 My access", Some(Action::Access)),
        ("📲 Connect", Some(Action::Connect)),
        (
            "⭐ Telegram Stars · 100 ⭐",
            Some(Action::PayStars("m1".into())),
        ),
    ]
    .into_iter()
    .map(|(l, a)| (l.to_owned(), a))
    .collect();
    let found = mentions(
        "✅ Ready. Open 🔑 My access → 📲 Connect, or pay with ⭐ Telegram Stars, not 📲 Conn.",
        &labels,
    );
    assert_eq!(
        found,
        vec![
            Ok(vec!["🔑 My access".to_owned(), "📲 Connect".to_owned()]),
            Ok(vec!["⭐ Telegram Stars · 100 ⭐".to_owned()]),
            Err("names no button: \"📲 Conn.\"".to_owned()),
        ]
    );
    // The leading icon is not a name.
    assert_eq!(mentions("🔑 Your key", &labels), vec![]);
}
