//! Screens: text and buttons for each place in the bot, rendered in the user's language.
//!
//! Pure functions of what the handler read (user, subscription, catalog, state) — no I/O —
//! so every screen can be rendered and checked in both languages by tests. Every screen
//! offers a way back (docs/product.md §3).

use crate::access::{NodeLink, ProvisioningSummary, Subscription};
use crate::billing::promo::{self, Benefit, Offer, Quote};
use crate::config::Language;
use crate::config::catalog::{Catalog, ClientApp, Plan, Platform};
use crate::domain::money::{Currency, Money};
use crate::i18n::{Arg, Texts, format};
use crate::time::Timestamp;

use crate::action::Action;

/// An inline button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Button {
    Action { text: String, action: Action },
    Url { text: String, url: String },
}

/// Something sent along with a screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extra {
    /// A photo of the QR code of `text`.
    Qr { text: String, caption: String },
}

/// One message: HTML text, inline keyboard rows, and extras sent after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    pub text: String,
    pub keyboard: Vec<Vec<Button>>,
    pub extras: Vec<Extra>,
}

impl Screen {
    pub(super) fn new(text: String, keyboard: Vec<Vec<Button>>) -> Screen {
        Screen {
            text,
            keyboard,
            extras: Vec::new(),
        }
    }

    /// The screen with `note` on top (an outcome such as "Trial granted").
    pub fn with_note(mut self, note: String) -> Screen {
        self.text = format!("{note}\n\n{}", self.text);
        self
    }

    /// Telegram's `reply_markup` for the keyboard.
    pub fn reply_markup(&self) -> serde_json::Value {
        let rows: Vec<Vec<serde_json::Value>> = self
            .keyboard
            .iter()
            .map(|row| {
                row.iter()
                    .map(|b| match b {
                        Button::Action { text, action } => {
                            serde_json::json!({ "text": text, "callback_data": action.encode() })
                        }
                        Button::Url { text, url } => {
                            serde_json::json!({ "text": text, "url": url })
                        }
                    })
                    .collect()
            })
            .collect();
        serde_json::json!({ "inline_keyboard": rows })
    }
}

/// What every screen needs: texts, catalog, language, the time.
pub struct View<'a> {
    pub texts: &'a Texts,
    pub catalog: &'a Catalog,
    pub lang: Language,
    pub now: Timestamp,
}

impl View<'_> {
    pub(super) fn t(&self, key: &str) -> String {
        self.texts.get(self.lang, key)
    }

    pub(super) fn tf(&self, key: &str, args: &[(&str, Arg)]) -> String {
        self.texts.fmt(self.lang, key, args)
    }

    pub(super) fn button(&self, key: &str, action: Action) -> Button {
        Button::Action {
            text: self.t(key),
            action,
        }
    }

    pub(super) fn date(&self, t: Timestamp) -> String {
        format::date_time(self.lang, t, self.catalog.bot.utc_offset_minutes)
    }

    pub(super) fn money(&self, m: Money) -> String {
        format::money(self.lang, m)
    }

    /// An amount as a provider or a stored row states it: minor units of a currency code,
    /// shown as money when the code is one we know, else as the bare figures.
    pub(super) fn stated(&self, minor: i64, currency: &str) -> String {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == currency)
            .map_or_else(
                || format!("{minor} {currency}"),
                |c| self.money(Money::new(minor, c)),
            )
    }

    pub(super) fn back_row(&self, back: Action) -> Vec<Button> {
        if back == Action::Menu {
            vec![self.button("btn-menu", Action::Menu)]
        } else {
            vec![
                self.button("btn-back", back),
                self.button("btn-menu", Action::Menu),
            ]
        }
    }

    pub(super) fn kind(&self, s: &Subscription) -> String {
        self.t(match s.kind {
            crate::access::Kind::Trial => "kind-trial",
            crate::access::Kind::Paid => "kind-paid",
            crate::access::Kind::Gift => "kind-gift",
            crate::access::Kind::Admin => "kind-admin",
        })
    }
}

/// What the main menu says about maintenance (flag `maintenance`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    Off,
    /// On, with the shipped `maintenance-banner` text.
    BuiltIn,
    /// On, with the operator's banner for the user's language (plain text, shown escaped).
    Banner(String),
}

/// The main menu.
pub fn menu(
    v: &View<'_>,
    sub: Option<&Subscription>,
    trial_available: bool,
    maintenance: &Maintenance,
) -> Screen {
    let status = match sub {
        Some(s) if s.is_active(v.now) => v.tf(
            "menu-status-active",
            &[("until", v.date(s.expires_at).into())],
        ),
        Some(s) if s.revoked_at.is_none() => v.tf(
            "menu-status-expired",
            &[("until", v.date(s.expires_at).into())],
        ),
        _ => v.t("menu-status-none"),
    };
    let mut text = v.tf(
        "menu-text",
        &[
            ("bot", v.catalog.bot.name.as_str().into()),
            ("status", Arg::Html(status)),
        ],
    );
    match maintenance {
        Maintenance::Off => {}
        Maintenance::BuiltIn => text = format!("{}\n\n{text}", v.t("maintenance-banner")),
        Maintenance::Banner(banner) => {
            text = format!("{}\n\n{text}", crate::i18n::escape_html(banner));
        }
    }
    let mut rows = Vec::new();
    if trial_available {
        rows.push(vec![Button::Action {
            text: v.tf("btn-trial", &[("days", v.catalog.trial.days.into())]),
            action: Action::Trial,
        }]);
    }
    rows.push(vec![
        v.button("btn-access", Action::Access),
        v.button("btn-buy", Action::Buy),
    ]);
    rows.push(vec![
        v.button("btn-balance", Action::Balance),
        v.button("btn-invite", Action::Invite),
    ]);
    rows.push(vec![v.button("btn-promo", Action::Promo)]);
    rows.push(vec![
        v.button("btn-help", Action::Help),
        v.button("btn-support", Action::Support),
    ]);
    rows.push(vec![v.button("btn-language", Action::Languages)]);
    Screen::new(text, rows)
}

impl View<'_> {
    /// `plan`'s price in `currency` for a user with `offer` ([`promo::quote`]).
    pub(super) fn quote(&self, plan: &Plan, currency: Currency, offer: &Offer) -> Option<Quote> {
        let c = self.catalog;
        promo::quote(
            plan,
            currency,
            c.bot.base_currency,
            offer,
            c.discounts.stack,
        )
    }

    /// What a discount code gives, shortly ("−20 %", "−50 ₽", "+7 days", "+100 ₽").
    pub(super) fn benefit(&self, b: Benefit) -> String {
        match b {
            Benefit::Percent(p) => format!("−{p} %"),
            Benefit::Fixed(m) => format!("−{}", self.money(m)),
            Benefit::Days(d) => format!(
                "+{}",
                crate::i18n::format::duration(
                    self.texts,
                    self.lang,
                    std::time::Duration::from_secs(u64::from(d) * 86_400)
                )
            ),
            Benefit::Credit(m) => format!("+{}", self.money(m)),
        }
    }

    /// The discounts in `offer`, as a line above prices (empty when none).
    fn offer_line(&self, offer: &Offer) -> Option<String> {
        let code = offer.chosen.as_ref().filter(|c| c.usable).map(|c| {
            self.tf(
                "promo-active",
                &[
                    ("code", c.code.as_str().into()),
                    ("benefit", self.benefit(c.benefit).into()),
                ],
            )
        });
        let personal = offer
            .personal
            .map(|p| self.tf("discount-active", &[("percent", p.into())]));
        let lines: Vec<String> = personal.into_iter().chain(code).collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// The plan list with prices (after the user's discounts).
pub fn buy(v: &View<'_>, sub: Option<&Subscription>, offer: &Offer) -> Screen {
    let mut text = v.t("buy-text");
    if let Some(s) = sub.filter(|s| s.is_active(v.now)) {
        text.push_str("\n\n");
        text.push_str(&v.tf("buy-renew-note", &[("from", v.date(s.expires_at).into())]));
    }
    if let Some(line) = v.offer_line(offer) {
        text.push_str("\n\n");
        text.push_str(&line);
    }
    let base = v.catalog.bot.base_currency;
    let mut rows: Vec<Vec<Button>> = v
        .catalog
        .plans
        .iter()
        .map(|p| {
            let shown = |c| v.quote(p, c, offer).map(|q| v.money(q.price));
            let mut price = shown(base).unwrap_or_default();
            if let Some(stars) = shown(Currency::Xtr) {
                price = format!("{price} / {stars}");
            }
            vec![Button::Action {
                text: v.tf(
                    "plan-button",
                    &[
                        ("title", p.title.get(v.lang).into()),
                        ("price", price.into()),
                    ],
                ),
                action: Action::Plan(p.id.clone()),
            }]
        })
        .collect();
    rows.push(v.back_row(Action::Menu));
    Screen::new(text, rows)
}

/// How to pay for `plan`: Stars (when priced in XTR), card (when a provider token is set),
/// balance (when it covers the price).
/// The pay screen; `drawn_by` is the update drawing it, which its balance button carries
/// (see [`Action::PayBalance`]).
/// The ways to pay in the base currency this deployment offers besides the balance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PayMethods {
    /// Telegram's card provider (`PAYMENT_PROVIDER_TOKEN`).
    pub card: bool,
    /// Crypto Pay.
    pub crypto: bool,
    /// YooKassa.
    pub yookassa: bool,
}

pub fn pay(
    v: &View<'_>,
    plan: &Plan,
    balance: Money,
    methods: PayMethods,
    drawn_by: i64,
    offer: &Offer,
) -> Screen {
    let mut text = v.tf(
        "pay-text",
        &[
            ("plan", plan.title.get(v.lang).into()),
            ("days", plan.days.into()),
        ],
    );
    let base = v.catalog.bot.base_currency;
    if let Some(q) = v.quote(plan, base, offer).filter(Quote::discounted) {
        text.push_str("\n\n");
        text.push_str(&v.tf(
            "pay-discounted",
            &[
                ("list", v.money(q.list).into()),
                ("price", v.money(q.price).into()),
            ],
        ));
    }
    let mut rows = Vec::new();
    if let Some(stars) = v.quote(plan, Currency::Xtr, offer) {
        rows.push(vec![Button::Action {
            text: v.tf("btn-pay-stars", &[("price", v.money(stars.price).into())]),
            action: Action::PayStars(plan.id.clone()),
        }]);
    }
    if let Some(price) = v.quote(plan, base, offer).map(|q| q.price) {
        if methods.card {
            rows.push(vec![Button::Action {
                text: v.tf("btn-pay-card", &[("price", v.money(price).into())]),
                action: Action::PayCard(plan.id.clone()),
            }]);
        }
        if methods.yookassa {
            rows.push(vec![Button::Action {
                text: v.tf("btn-pay-yookassa", &[("price", v.money(price).into())]),
                action: Action::PayYooKassa(plan.id.clone()),
            }]);
        }
        if methods.crypto {
            rows.push(vec![Button::Action {
                text: v.tf("btn-pay-crypto", &[("price", v.money(price).into())]),
                action: Action::PayCrypto(plan.id.clone()),
            }]);
        }
        if balance.minor >= price.minor {
            rows.push(vec![Button::Action {
                text: v.tf("btn-pay-balance", &[("price", v.money(price).into())]),
                action: Action::PayBalance {
                    plan: plan.id.clone(),
                    screen: drawn_by,
                },
            }]);
        } else if balance.minor > 0 {
            text.push_str("\n\n");
            text.push_str(
                &v.tf(
                    "pay-balance-short",
                    &[
                        ("balance", v.money(balance).into()),
                        (
                            "missing",
                            v.money(Money::new(price.minor - balance.minor, base))
                                .into(),
                        ),
                    ],
                ),
            );
        }
    }
    rows.push(v.back_row(Action::Buy));
    Screen::new(text, rows)
}

/// My access: status, kind, expiry, traffic, auto-renewal.
pub fn access(
    v: &View<'_>,
    sub: Option<&Subscription>,
    auto_renew: bool,
    traffic_bytes: Option<u64>,
) -> Screen {
    let Some(s) = sub.filter(|s| s.revoked_at.is_none()) else {
        let rows = vec![
            vec![v.button("btn-buy", Action::Buy)],
            v.back_row(Action::Menu),
        ];
        return Screen::new(v.t("access-none"), rows);
    };
    let mut text = if s.is_active(v.now) {
        let left = format::duration(v.texts, v.lang, s.expires_at.since(v.now));
        v.tf(
            "access-active",
            &[
                ("kind", v.kind(s).into()),
                ("until", v.date(s.expires_at).into()),
                (
                    "left",
                    v.tf("time-left", &[("duration", left.into())]).into(),
                ),
            ],
        )
    } else {
        v.tf(
            "access-expired",
            &[
                ("kind", v.kind(s).into()),
                ("until", v.date(s.expires_at).into()),
            ],
        )
    };
    if let Some(bytes) = traffic_bytes.filter(|b| *b > 0) {
        text.push('\n');
        text.push_str(&v.tf(
            "access-traffic",
            &[("amount", format::bytes(v.lang, bytes).into())],
        ));
    }
    text.push('\n');
    text.push_str(&v.t(if auto_renew {
        "access-auto-renew-on"
    } else {
        "access-auto-renew-off"
    }));
    let mut rows = Vec::new();
    if s.is_active(v.now) {
        rows.push(vec![
            v.button("btn-connect", Action::Connect),
            v.button("btn-renew", Action::Buy),
        ]);
        rows.push(vec![v.button("btn-reissue", Action::Reissue)]);
    } else {
        rows.push(vec![v.button("btn-renew", Action::Buy)]);
    }
    rows.push(vec![if auto_renew {
        v.button("btn-auto-renew-on", Action::AutoRenew(false))
    } else {
        v.button("btn-auto-renew-off", Action::AutoRenew(true))
    }]);
    rows.push(v.back_row(Action::Menu));
    Screen::new(text, rows)
}

fn platform_key(p: Platform) -> &'static str {
    match p {
        Platform::Android => "platform-android",
        Platform::Ios => "platform-ios",
        Platform::Windows => "platform-windows",
        Platform::Macos => "platform-macos",
        Platform::Linux => "platform-linux",
    }
}

/// Connect: feed URL, per-node links, app links, and a QR code of the feed URL.
pub fn connect(
    v: &View<'_>,
    sub: Option<&Subscription>,
    summary: ProvisioningSummary,
    links: &[NodeLink],
    feed_url: &str,
) -> Screen {
    let Some(_) = sub.filter(|s| s.revoked_at.is_none()) else {
        let rows = vec![
            vec![v.button("btn-buy", Action::Buy)],
            v.back_row(Action::Menu),
        ];
        return Screen::new(v.t("connect-none"), rows);
    };
    let status = v.t(match summary {
        ProvisioningSummary::Ready => "connect-status-ready",
        ProvisioningSummary::Partial | ProvisioningSummary::Pending => "connect-status-pending",
        ProvisioningSummary::Failing => "connect-status-failing",
        ProvisioningSummary::Inactive => "connect-status-inactive",
        ProvisioningSummary::NoNodes => "connect-status-no-nodes",
    });
    let link_lines: Vec<String> = links
        .iter()
        .map(|l| {
            v.tf(
                "connect-link",
                &[
                    ("name", l.name.as_str().into()),
                    ("link", l.link.as_str().into()),
                ],
            )
        })
        .collect();
    let apps = app_lines(v, &v.catalog.apps);
    let text = v.tf(
        "connect-text",
        &[
            ("status", status.into()),
            ("url", feed_url.into()),
            (
                "links",
                Arg::Html(if link_lines.is_empty() {
                    "—".to_owned()
                } else {
                    link_lines.join("\n")
                }),
            ),
            ("apps", Arg::Html(apps)),
        ],
    );
    let rows = vec![
        vec![v.button("btn-access", Action::Access)],
        v.back_row(Action::Menu),
    ];
    let mut screen = Screen::new(text, rows);
    screen.extras.push(Extra::Qr {
        text: feed_url.to_owned(),
        caption: v.t("qr-caption"),
    });
    screen
}

fn app_lines(v: &View<'_>, apps: &[ClientApp]) -> String {
    if apps.is_empty() {
        return crate::i18n::escape_html(&v.t("connect-no-apps"));
    }
    apps.iter()
        .map(|a| {
            v.tf(
                "connect-app",
                &[
                    ("platform", v.t(platform_key(a.platform)).into()),
                    ("url", a.url.as_str().into()),
                    ("name", a.name.as_str().into()),
                ],
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Help.
pub fn help(v: &View<'_>) -> Screen {
    Screen::new(v.t("help-text"), vec![v.back_row(Action::Menu)])
}

/// Support: the contact, and a link button when it is a @username or URL.
pub fn support(v: &View<'_>) -> Screen {
    let contact = v.catalog.bot.support.trim();
    let mut rows = Vec::new();
    let url = if let Some(name) = contact.strip_prefix('@') {
        Some(format!("https://t.me/{name}"))
    } else if contact.starts_with("https://") {
        Some(contact.to_owned())
    } else {
        None
    };
    if let Some(url) = url {
        rows.push(vec![Button::Url {
            text: v.t("btn-support"),
            url,
        }]);
    }
    rows.push(v.back_row(Action::Menu));
    Screen::new(v.tf("support-text", &[("contact", contact.into())]), rows)
}

/// The language picker: each language named in itself.
pub fn languages(v: &View<'_>) -> Screen {
    let mut rows: Vec<Vec<Button>> = v
        .catalog
        .bot
        .languages
        .iter()
        .map(|l| {
            let name = match l {
                Language::En => "🇬🇧 English",
                Language::Ru => "🇷🇺 Русский",
            };
            vec![Button::Action {
                text: name.to_owned(),
                action: Action::SetLanguage(*l),
            }]
        })
        .collect();
    rows.push(v.back_row(Action::Menu));
    Screen::new(v.t("language-text"), rows)
}

/// `text` with the buttons `rows` and the way back to the menu under them.
pub fn with_menu(v: &View<'_>, text: String, mut rows: Vec<Vec<Button>>) -> Screen {
    rows.push(v.back_row(Action::Menu));
    Screen::new(text, rows)
}

/// The Promo code screen: how to enter one, and the discounts in force.
pub fn promo(v: &View<'_>, offer: &Offer) -> Screen {
    let mut text = v.t("promo-text");
    if let Some(line) = v.offer_line(offer) {
        text.push_str("\n\n");
        text.push_str(&line);
    }
    let rows = vec![
        vec![v.button("btn-buy", Action::Buy)],
        v.back_row(Action::Menu),
    ];
    Screen::new(text, rows)
}

/// A short outcome with the way back to the menu.
pub fn notice(v: &View<'_>, text: String, back: Action) -> Screen {
    Screen::new(text, vec![v.back_row(back)])
}

/// A provider's payment page for a purchase: the page's link, "I paid" (which asks the
/// provider at once) and the way back.
pub fn provider_invoice(
    v: &View<'_>,
    price: Money,
    url: &str,
    purchase_id: i64,
    back: Action,
) -> Screen {
    let text = v.tf("provider-invoice-text", &[("price", v.money(price).into())]);
    Screen::new(
        text,
        vec![
            vec![Button::Url {
                text: v.tf("btn-open-payment", &[("price", v.money(price).into())]),
                url: url.to_owned(),
            }],
            vec![v.button("btn-i-paid", Action::CheckPaid(purchase_id))],
            v.back_row(back),
        ],
    )
}

/// The balance: amount, the last changes, Stars top-up packages, and, when a provider outside
/// Telegram is configured (`fiat`), the base-currency packages and the custom amount; the
/// Receipts screen's button when YooKassa payments carry receipts (`receipts`).
pub fn balance(
    v: &View<'_>,
    balance: Money,
    history: &[crate::billing::ledger::Entry],
    fiat: bool,
    receipts: bool,
) -> Screen {
    let base = v.catalog.bot.base_currency;
    let lines = if history.is_empty() {
        v.t("balance-history-empty")
    } else {
        history
            .iter()
            .map(|e| {
                let sign = if e.delta > 0 { "+" } else { "−" };
                v.tf(
                    "balance-history-line",
                    &[
                        ("date", v.date(e.created_at).into()),
                        (
                            "amount",
                            format!("{sign}{}", v.money(Money::new(e.delta.abs(), base))).into(),
                        ),
                        ("reason", v.t(e.reason.text_key()).into()),
                    ],
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut text = v.tf(
        "balance-text",
        &[
            ("amount", v.money(balance).into()),
            ("history", Arg::Html(lines)),
        ],
    );
    let packages = &v.catalog.balance.stars_packages;
    let mut rows = Vec::new();
    if !packages.is_empty() {
        text.push_str("\n\n");
        text.push_str(&v.t("balance-topup-hint"));
        for (i, p) in packages.iter().enumerate() {
            rows.push(vec![Button::Action {
                text: v.tf(
                    "btn-topup-stars",
                    &[
                        ("stars", p.stars.into()),
                        ("credit", v.money(p.credit).into()),
                    ],
                ),
                action: Action::TopUpStars(i),
            }]);
        }
    }
    let b = &v.catalog.balance;
    if fiat {
        text.push_str("\n\n");
        text.push_str(&v.tf(
            "balance-topup-fiat-hint",
            &[
                ("min", v.money(b.custom_topup_min).into()),
                ("max", v.money(b.custom_topup_max).into()),
            ],
        ));
        let buttons: Vec<Button> = b
            .topup_packages
            .iter()
            .map(|m| Button::Action {
                text: v.tf("btn-topup-fiat", &[("amount", v.money(*m).into())]),
                action: Action::TopUpFiat(m.minor),
            })
            .collect();
        rows.extend(buttons.chunks(3).map(<[Button]>::to_vec));
    }
    if receipts {
        rows.push(vec![v.button("btn-receipt", Action::Receipt)]);
    }
    rows.push(vec![v.button("btn-withdraw", Action::Withdraw)]);
    rows.push(v.back_row(Action::Menu));
    Screen::new(text, rows)
}

/// Where the user's 54-FZ receipts go (`contact`, as stored; `None`: not given yet), with
/// Change (or Enter) and Remove; reached from the balance and `/receipt`.
pub fn receipt(v: &View<'_>, contact: Option<&str>) -> Screen {
    let (text, mut rows) = match contact {
        Some(c) => (
            v.tf("receipt-text", &[("contact", c.into())]),
            vec![vec![
                v.button("btn-receipt-change", Action::ReceiptChange),
                v.button("btn-receipt-remove", Action::ReceiptRemove),
            ]],
        ),
        None => (
            v.t("receipt-text-none"),
            vec![vec![v.button("btn-receipt-set", Action::ReceiptChange)]],
        ),
    };
    rows.push(v.back_row(Action::Balance));
    Screen::new(text, rows)
}

/// A base-currency top-up: which provider takes the money.
pub fn topup_methods(v: &View<'_>, amount: Money, methods: PayMethods) -> Screen {
    let text = v.tf("topup-choose-text", &[("amount", v.money(amount).into())]);
    let mut rows = Vec::new();
    if methods.yookassa {
        rows.push(vec![Button::Action {
            text: v.tf("btn-pay-yookassa", &[("price", v.money(amount).into())]),
            action: Action::TopUpYooKassa(amount.minor),
        }]);
    }
    if methods.crypto {
        rows.push(vec![Button::Action {
            text: v.tf("btn-pay-crypto", &[("price", v.money(amount).into())]),
            action: Action::TopUpCrypto(amount.minor),
        }]);
    }
    rows.push(v.back_row(Action::Balance));
    Screen::new(text, rows)
}
