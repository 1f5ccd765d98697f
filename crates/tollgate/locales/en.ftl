# Tollgate bot texts, English. Messages are sent with Telegram's HTML parse mode: variables
# are escaped by the code; write literal <, > and & as &lt; &gt; &amp;.
# Every message here must exist in every shipped language (a test checks both ways).
# A text names a button by its exact label, emoji included; a button that is not on the text's
# own message is named with its path from the main menu: 🔑 My access → 📲 Connect (a test checks
# each name against the screens' buttons).

## Main menu

menu-text =
    <b>{ $bot }</b>

    { $status }

    Choose an action below.
menu-status-none = You have no active access yet.
menu-status-active = ✅ Access active until { $until }.
menu-status-expired = ⌛ Your access expired on { $until }.
btn-trial = 🎁 Free trial · { $days ->
        [one] { $days } day
       *[other] { $days } days
    }
btn-access = 🔑 My access
btn-buy = 🛒 Buy / Renew
btn-balance = 💰 Balance
btn-help = ❓ Help
btn-support = 💬 Support
btn-language = 🌐 Language
btn-back = ⬅️ Back
btn-menu = 🏠 Menu
unknown-input = I didn't get that. Here is the menu:
stale-button = This button is no longer active.
maintenance-banner = 🛠 Maintenance is under way; some actions may be slow.

## Trial

trial-granted = 🎁 Your free trial is on: { $days ->
        [one] { $days } day
       *[other] { $days } days
    }, until { $until }.
trial-used = You have already used your free trial. Choose a plan to continue.
trial-disabled = Free trials are not available right now.
trial-not-for-subscribers = You already have access — no trial needed.

## Buying

buy-text = <b>Choose a plan</b>
buy-renew-note = Your current access is extended from { $from }.
plan-button = { $title } · { $price }
pay-text =
    <b>{ $plan }</b> — { $days ->
        [one] { $days } day
       *[other] { $days } days
    }

    Choose how to pay:
btn-pay-stars = ⭐ Telegram Stars · { $price }
btn-pay-card = 💳 Card · { $price }
btn-pay-balance = 💰 From balance · { $price }
btn-pay-yookassa = 🏦 Card or SBP (YooKassa) · { $price }
btn-pay-crypto = 🪙 Crypto (Crypto Pay) · { $price }
btn-open-payment = ➡️ Pay { $price }
btn-i-paid = ✔️ I paid
balance-topup-fiat-hint = Top up by card, SBP or crypto: a package below, or any amount from { $min } to { $max } with the command /topup and the amount, e.g. /topup 500.
btn-topup-fiat = ➕ { $amount }
topup-choose-text = Top up the balance by { $amount }: choose how to pay.
topup-usage = Send the amount after the command, e.g. /topup 500 (from { $min } to { $max }).
topup-not-a-number = “{ $text }” is not an amount. Write digits, with a dot before kopecks if you need them: /topup 500 or /topup 499.90.
topup-too-precise = “{ $text }” has more than two digits after the dot.
topup-too-small = That is below the smallest top-up: enter an amount from { $min } to { $max }.
topup-too-large = That is above the largest top-up: enter an amount from { $min } to { $max }.
topup-unavailable = Top-ups by card or crypto are not available right now.
provider-invoice-text = Your payment page for { $price } is ready: open it with the button below. Access starts as soon as the payment goes through; if you have paid and nothing came within a minute, use the check button.
provider-try-again = The payment service did not answer in time. Nothing was charged. Please try again in a minute.
provider-not-paid = The payment has not arrived yet. If you have just paid, wait a minute and check again.
provider-paid = Payment received — thank you! The confirmation is on its way.
provider-ended = This payment page has expired and nothing was charged. Choose the plan again for a new one.
pay-balance-short = Your balance is { $balance }: { $missing } short for this plan.
plan-unavailable = This plan is no longer available. Please choose another.
payments-paused = Payments are paused right now. Please try again later.
invoice-description = VPN access for { $days ->
        [one] { $days } day
       *[other] { $days } days
    }.
invoice-sent = Here is your invoice. Access starts as soon as the payment goes through.
topup-invoice-title = Balance top-up
topup-invoice-description = { $amount } added to your balance.
payment-confirmed = ✅ Payment received — thank you! Your access is active until { $until }.
payment-balance-confirmed = ✅ Paid { $price } from your balance. Your access is active until { $until }. Balance: { $balance }.
topup-confirmed = ✅ { $amount } added to your balance. Balance: { $balance }.
payment-needs-review = We received your payment; it needs a manual check. Support will contact you shortly.
referral-reward = 🎉 A friend you invited paid — { $amount } added to your balance.
refund-done-user = ↩️ Your payment was refunded. Your access now lasts until { $until }.
refund-done-user-topup = ↩️ Your top-up of { $amount } was refunded. Balance: { $balance }.
reject-unknown = This invoice is not valid any more. Please open the menu and buy again.
reject-not-yours = This invoice belongs to another account.
reject-price = The price has changed since this invoice was made. Please open the menu and buy again.
reject-disabled = Payments are paused right now. You have not been charged.
reject-banned = Purchases are not available for this account.
reject-closed = This invoice has expired. Please create a new one from the menu.

## My access

access-none = You have no access yet. Take the free trial or choose a plan.
access-active =
    <b>Status:</b> active ✅
    <b>Type:</b> { $kind }
    <b>Valid until:</b> { $until } ({ $left })
access-expired =
    <b>Status:</b> expired ⌛
    <b>Type:</b> { $kind }
    <b>Expired on:</b> { $until }
access-traffic = <b>Traffic used:</b> { $amount }
access-auto-renew-on = <b>Auto-renewal:</b> on — renewed from your balance before expiry.
access-auto-renew-off = <b>Auto-renewal:</b> off
kind-trial = free trial
kind-paid = paid
kind-gift = gift
kind-admin = granted by support
btn-connect = 📲 Connect
btn-renew = 🔄 Renew
btn-reissue = ♻️ Reissue key
btn-auto-renew-on = Auto-renewal: on ✅
btn-auto-renew-off = Auto-renewal: off
auto-renew-enabled = Auto-renewal is on.
auto-renew-disabled = Auto-renewal is off.
reissue-done = ♻️ You have a new key. The old one stops working once the new one is live. Import your subscription again.
reissue-too-soon = You can reissue your key again in { $wait }.
reissue-nothing = There is no active access to reissue.

## Connect

connect-text =
    <b>Connect</b>

    { $status }

    <b>Subscription URL</b> — import it in your app:
    <code>{ $url }</code>

    <b>Servers</b>
    { $links }

    <b>Apps</b>
    { $apps }
connect-link = { $name }: <code>{ $link }</code>
connect-app = { $platform }: <a href="{ $url }">{ $name }</a>
connect-no-apps = Any app that imports VLESS subscriptions works (Hiddify, Happ, v2rayNG, Streisand, v2rayN).
connect-status-ready = ✅ Your access is ready.
connect-status-pending = ⏳ Setting up your access — ready in a moment.
connect-status-failing = ⚠️ Some servers are not reachable right now; we keep trying.
connect-status-inactive = ⌛ Your access is not active. Renew to connect again.
connect-status-no-nodes = No server is available right now. We will notify you when one is.
connect-none = You have no access yet. Take the free trial or choose a plan.
access-ready-notice = ✅ Your access is ready. Open 🔑 My access → 📲 Connect in the menu to import it.
qr-caption = QR code of your subscription URL — scan it in your app.
platform-android = Android
platform-ios = iPhone / iPad
platform-windows = Windows
platform-macos = macOS
platform-linux = Linux

## Balance

balance-text =
    <b>Balance:</b> { $amount }

    { $history }
balance-history-empty = No transactions yet.
balance-history-line = { $date } · { $amount } · { $reason }
balance-topup-hint = Top up with Telegram Stars:
btn-topup-stars = ⭐ { $stars } → { $credit }
ledger-topup = top-up
ledger-purchase = purchase
ledger-renewal = auto-renewal
ledger-referral = referral reward
ledger-refund = refund
ledger-withdrawal = withdrawal
ledger-withdrawal-returned = withdrawal returned
ledger-admin = adjustment

## Help, support, language

help-text =
    <b>How it works</b>

    1. Take the free trial or buy a plan.
    2. Open 🔑 My access → 📲 Connect and import the subscription URL into a VPN app (links to apps are there).
    3. Renew before the end — or turn on auto-renewal and keep money on your balance.

    Commands: /menu /buy /access /balance /help /language
support-text = Questions or problems? Write to { $contact } — we answer quickly.
language-text = Choose your language:
language-set = Language set: English.

## Durations and amounts

duration-days = { $n ->
        [one] { $n } day
       *[other] { $n } days
    }
duration-hours = { $n ->
        [one] { $n } hour
       *[other] { $n } hours
    }
duration-minutes = { $n ->
        [one] { $n } minute
       *[other] { $n } minutes
    }
time-left = { $duration } left

## Admin

admin-only = This command is for admins.
refund-usage = Usage: /refund &lt;telegram payment charge id&gt;
refund-unknown = No payment with charge id { $charge } is known.
refund-sent = ↩️ Refund of { $charge } requested; the user's access is reduced accordingly.
refund-failed = The refund of { $charge } was refused: { $reason }
payment-usage = Usage: /payment &lt;telegram payment charge id&gt;
payment-unknown = No payment with charge id { $charge } is known.
payment-card = 💳 Payment <code>{ $charge }</code>: { $amount } { $currency } ({ $provider }) from user <code>{ $user }</code>, { $date }.
payment-state-applied = Applied to purchase { $purchase }.
payment-state-refunded = Refunded.
payment-state-kept = ⚠️ Kept for review: { $reason }
payment-cannot-apply = It cannot be applied: { $why }. Refund it, or settle it with the user by hand.
payment-apply-explained = Apply gives the payer what purchase { $purchase } sells, with the usual confirmation.
btn-payment-apply = ✅ Apply to purchase { $purchase }
btn-payment-refund = ↩️ Refund
payment-applied-now = ✅ Applied: the user got what purchase { $purchase } sells.
payment-already-settled = This payment was applied or refunded already; nothing changed.
payment-refund-elsewhere = Telegram Stars and YooKassa payments are refunded from the bot; refund a Telegram card payment or a Crypto Pay invoice in that provider's dashboard.
adm-btn-review = 🧾 To review
adm-review = 🧾 <b>To review</b>
    Payments kept for review: { $kept } — open one to apply or refund it.
    Payments that name no purchase of this bot: { $unmatched } — refund them, or mark them settled once settled outside the bot.
adm-btn-review-kept = 💳 { $amount } · { $provider } · user { $user }
adm-btn-review-unmatched = ❓ { $amount } · { $provider } · { $date }
adm-unmatched-card = ❓ <b>Unmatched payment</b> #{ $id }
    { $provider } payment <code>{ $external }</code>: { $amount }, reported { $date }.
    It names no purchase of this bot, so nothing was credited to anyone.

    { $state }

    What the provider reported:
    <pre>{ $raw }</pre>
adm-unmatched-open = ⚠️ Waiting for a decision: refund it, or mark it settled after settling it outside the bot (refunded in the provider's dashboard, or credited by hand).
adm-unmatched-refunded = ↩️ Refunded through the provider by admin { $admin }, { $at }.
adm-unmatched-settled = ✅ Marked settled outside the bot by admin { $admin }, { $at }.
adm-btn-unmatched-refund = ↩️ Refund through the provider
adm-btn-unmatched-settle = ✅ Mark settled outside the bot
adm-confirm-unmatched-refund = Refund { $provider } payment <code>{ $external }</code> of { $amount } to whoever paid it? The provider gives the money back; nobody here is credited or charged.
adm-confirm-unmatched-settle = Mark { $provider } payment <code>{ $external }</code> of { $amount } settled outside the bot? Do this once it is refunded in the provider's dashboard or credited by hand; the bot changes nothing else.
adm-unmatched-refunded-now = ↩️ The provider is refunding it; the payment is settled.
adm-unmatched-settled-now = ✅ Marked settled.

## Reminders and renewals

reminder-text = ⏳ Your access ends in { $left } — on { $until }. Renew now to keep it without a break.
expired-text = Your access has ended. Renew to connect again — your settings stay the same.
trial-onboarding-text = How is your free trial going? If something does not connect, tap 📲 Connect below for the link and the apps, or write to support.
trial-ending-text = Your free trial ends in { $left } ({ $until }). Choose a plan to keep your access.
trial-ended-text = Your free trial has ended. Choose a plan to keep using the VPN.
auto-renewed-text = 🔄 Renewed from your balance for { $price }. Access until { $until }. Balance: { $balance }.
auto-renew-short-text = Auto-renewal needs { $missing } more on your balance before { $until }. Top up to keep your access.

## The admin console (/admin).
adm-home = 🛠 <b>Admin console</b>
adm-btn-home = 🛠 Console
adm-btn-stats = 📊 Stats
adm-btn-find = 🔎 Find a user
adm-btn-flags = 🚦 Flags
adm-btn-nodes = 🖥 Nodes
adm-btn-dead = 📭 Dead letters
adm-btn-audit = 📜 Audit log
adm-btn-confirm = ✅ Confirm
adm-btn-cancel = ✖️ Cancel
adm-cancelled = Cancelled; nothing was changed.
adm-already-done = This was already done (the button was pressed before); nothing was changed again.
adm-draft-gone = This confirmation is no longer current (done already, replaced or expired); nothing was changed.
adm-stats = 📊 <b>Stats</b>
    Users: { $total } (new: today { $today }, 7 d { $week }, 30 d { $month }); unreachable: { $unreachable }
    Active subscriptions: { $active }
    Trials in 30 d: { $trials }, of them paid: { $paid } ({ $conversion })
    Auto-renewals in 30 d: { $renewed } renewed, { $short } short of balance
    Payments kept for review: { $review }

    <b>Revenue</b>
    { $revenue }
adm-period-today = Today
adm-period-7d = 7 days
adm-period-30d = 30 days
adm-period-all = All time
adm-find-ask = 🔎 Send the user's Telegram id, @username, subscription token (or feed link) or VPN UUID.
adm-find-invalid = That is not a Telegram id, @username, token or UUID. Send one of those, or Cancel.
adm-find-none = Nobody matches { $query }. Send another id, @username, token or UUID, or Cancel.
adm-find-many = Several users have had that username; choose one:
adm-user-unknown = No user with id { $user } is known.
adm-user-card = 👤 <b>{ $name }</b> · <code>{ $user }</code>
    Language: { $language } · joined { $joined }
    Referrer: { $referrer } · referrals: { $referrals }
    Balance: { $balance }
adm-user-banned = ⛔️ banned
adm-user-unreachable = 📵 blocked the bot
adm-user-auto-renew = 🔁 auto-renewal on
adm-user-no-subscription = No subscription.
adm-user-subscription = Subscription: { $kind }, { $status } until { $until }
    Key: <code>{ $uuid }</code>
adm-sub-active = active
adm-sub-expired = expired
adm-sub-revoked = revoked
adm-user-ledger = Balance changes:
adm-user-payments = Payments:
adm-btn-grant = ➕ Grant days
adm-btn-balance = 💰 Adjust balance
adm-btn-revoke = 🚫 Revoke access
adm-btn-reissue = 🔑 Reissue key
adm-btn-ban = ⛔️ Ban
adm-btn-unban = ✅ Unban
adm-btn-audit-user = 📜 Audit of this user
adm-days-ask = ➕ How many days to grant user <code>{ $user }</code>? Send a number.
adm-days-invalid = Send a whole number of days from 1 to { $max }.
adm-confirm-grant = Grant { $days } days to user <code>{ $user }</code>?
adm-confirm-grant-tell = Grant { $days } days to user <code>{ $user }</code> and tell them?
adm-confirm-grant-silent = Grant { $days } days to user <code>{ $user }</code> without telling them?
adm-btn-grant-tell = ✅ Grant and tell the user
adm-btn-grant-silent = ✅ Grant silently
adm-granted = ✅ Days granted.
adm-told-grant = 🎁 Support granted you { $days } days of access, until { $until }.
adm-confirm-revoke = Revoke the access of user <code>{ $user }</code> now? Their key stops working.
adm-revoked = ✅ Access revoked.
adm-nothing-to-revoke = The user has no active access to revoke.
adm-told-revoke = Your access was ended by support. Write to support if you think this is a mistake.
adm-confirm-reissue = Issue a new key to user <code>{ $user }</code>? The old one stops working once the new one is live.
adm-reissued = ✅ New key issued.
adm-nothing-to-reissue = The user has no active access to reissue.
adm-told-reissue = 🔑 Support issued you a new key. Open Connect to add it to your app.
adm-confirm-ban = Ban user <code>{ $user }</code>? Their access is revoked and the bot stops answering them.
adm-confirm-unban = Unban user <code>{ $user }</code>? Nothing is restored automatically.
adm-banned = ✅ User banned.
adm-unbanned = ✅ User unbanned.
banned-text = Your account has been blocked. Write to support if you think this is a mistake.
adm-balance-ask = 💰 Send the change for user <code>{ $user }</code> in { $currency } with its sign, then the reason, e.g. <code>+150 compensation for the outage</code>.
adm-balance-invalid = Send the amount in { $currency } with its sign, then the reason, e.g. <code>-50 wrong top-up</code>.
adm-balance-zero = The change must not be zero.
adm-balance-no-reason = A reason is required after the amount.
adm-balance-reason-long = The reason is too long: at most { $max } characters.
adm-balance-negative = That would make the balance negative (it is { $balance }). Send a smaller debit.
adm-confirm-balance = Change the balance of user <code>{ $user }</code> by { $delta } to { $after }?
    Reason: { $reason }
adm-balance-adjusted = ✅ Balance adjusted.
adm-told-balance = 💰 Your balance was changed by { $delta } (now { $balance }): { $reason }
adm-confirm-refund = Refund payment <code>{ $charge }</code> of { $amount } { $currency } to user <code>{ $user }</code>? What it paid for is taken back.
adm-flags = 🚦 <b>Flags</b> (they apply at the next use, everywhere)
    { $flags }
adm-btn-flag-on = Turn { $flag } on
adm-btn-flag-off = Turn { $flag } off
adm-confirm-flag-on = Turn flag { $flag } on?
adm-confirm-flag-off = Turn flag { $flag } off?
adm-flag-set = ✅ Flag changed.
adm-btn-banner = ✏️ Maintenance banner ({ $language })
adm-banner-ask = ✏️ Send the maintenance banner's text for language { $language }.
adm-banner-invalid = The banner must have 1 to { $max } characters (this one has { $length }).
adm-confirm-banner = Set the maintenance banner for { $language } to:
    { $text }
adm-nodes = 🖥 <b>Nodes</b>
    { $nodes }
adm-nodes-none = No node is declared in the catalog.
adm-node-line = <b>{ $node }</b>: { $state }, { $breaker }; users { $users }, waiting changes { $backlog }
adm-node-off-in-catalog = disabled in the catalog
adm-node-breaker-open = ⚠️ not answering since { $since }
adm-node-breaker-closed = answering
adm-node-last-pass = Last reconcile { $at }: listed { $listed }, restored { $restored }, removed { $removed }, refused { $refused }
adm-node-requested = 🔄 A reconcile is requested; it runs within seconds.
adm-btn-node-on = ▶️ Enable { $node }
adm-btn-node-off = ⏸ Disable { $node }
adm-node-switched-on = ✅ Node enabled; every replica applies it within seconds.
adm-node-switched-off = ✅ Node disabled; every replica applies it within seconds.
adm-reconcile-asked = ✅ Reconcile requested.
adm-refused = Not done: { $why }
adm-flag-by = set by { $admin }, { $at }
adm-flag-set-at = set { $at }
adm-flag-default = default
adm-banner-line = Banner ({ $language }): { $text }
adm-banner-set = ✅ Banner saved.
adm-node-enabled = enabled
adm-node-disabled = disabled
adm-btn-reconcile = 🔄 Reconcile { $node }
adm-confirm-node-on = Enable node { $node }? Active users are added to it.
adm-confirm-node-off = Disable node { $node }? No new users are added to it.
adm-confirm-reconcile = Reconcile node { $node } now?
adm-dead = 📭 <b>Dead letters</b>: { $count }

    { $lines }
adm-dead-line = Update <code>{ $update }</code> ({ $kind }), { $attempts } attempts: { $error }
adm-btn-redrive = ↩️ Redrive { $update }
adm-btn-discard = 🗑 Discard { $update }
adm-confirm-redrive = Put update { $update } back in the queue?
adm-confirm-discard = Discard update { $update } for good?
adm-redriven = ✅ Back in the queue.
adm-discarded = ✅ Discarded.
adm-not-dead = That update is no longer a dead letter.
adm-audit-all = 📜 <b>Audit log</b>
adm-audit-by = 📜 <b>Audit log</b>: by admin <code>{ $admin }</code>
adm-audit-about = 📜 <b>Audit log</b>: about user <code>{ $user }</code>
adm-audit-empty = Nothing yet.
adm-audit-user = user { $user }
adm-actor-cli = command line
adm-btn-audit-all = All
adm-btn-audit-by = By { $admin }

## Promo codes and personal discounts

btn-promo = 🎟 Promo code
promo-text =
    🎟 <b>Promo code</b>

    Send your code as a message (or as <code>/promo CODE</code> at any time). A discount applies to your next purchase; free days and balance credits apply at once.
promo-active = 🎟 Code <b>{ $code }</b>: { $benefit } on your next purchase.
discount-active = 🏷 Your personal discount: −{ $percent } %.
pay-discounted = 🏷 With your discount: <s>{ $list }</s> → <b>{ $price }</b>
promo-chosen = ✅ Code <b>{ $code }</b> accepted: { $benefit } on your next purchase. The prices below include it.
promo-days = 🎁 Code accepted: { $days ->
        [one] { $days } day
       *[other] { $days } days
    } added, access until { $until }.
promo-credit = 💰 Code accepted: { $amount } added to your balance (now { $balance }).
promo-unknown = ❌ There is no such promo code. Check the spelling and try again.
promo-not-started = ⏳ This promo code is not valid yet.
promo-expired = ⌛ This promo code has expired.
promo-used-up = 😔 This promo code has been used up.
promo-already-used = ☑️ You have already used this promo code.
promo-already-chosen = ☑️ This promo code is already applied to your next purchase.
promo-not-applicable = 🚫 This promo code is for a first purchase only.

adm-btn-promos = 🎟 Promo codes
adm-promos =
    🎟 <b>Promo codes</b> { $from }–{ $to } of { $total } (in force first, then disabled; newest first; uses taken / allowed)

    { $lines }
adm-promos-empty = No promo codes yet.
adm-btn-newer = ‹ Newer
adm-btn-older = Older ›
adm-btn-promo-new = ➕ New code
adm-btn-promo-disable = ⛔ Disable { $code }
adm-promo-uses = used { $uses }
adm-promo-from = from { $at }
adm-promo-until = until { $at }
adm-promo-first = first purchase only
adm-promo-ask =
    Send the new code and its rules on one line:
    <code>CODE KIND VALUE [uses=N] [from=YYYY-MM-DD] [until=YYYY-MM-DD] [first] [plans=m1,m3]</code>
    KIND is <code>percent</code> (1–99), <code>fixed</code> (an amount off), <code>days</code> (free days) or <code>credit</code> (balance). Dates are in the bot's time zone; <code>until</code> is the last day.
    Example: <code>SPRING20 percent 20 uses=100 until=2027-03-31 first</code>
adm-promo-bad-code = A code is 3–32 letters, digits, - or _ («{ $word }» is not). Send the line again.
adm-promo-bad-kind = «{ $word }» is not a kind: use percent, fixed, days or credit. Send the line again.
adm-promo-bad-value = «{ $word }» is not a valid value for that kind (percent 1–99, days 1–3650, an amount above 0). Send the line again.
adm-promo-bad-option = «{ $word }» is not understood: use uses=N, from=YYYY-MM-DD, until=YYYY-MM-DD, first or plans=…. Send the line again.
adm-promo-bad-plan = There is no plan «{ $word }». Send the line again.
adm-promo-bad-window = The code would end before it starts. Send the line again.
adm-confirm-promo = Create promo code <b>{ $code }</b>: { $rules }?
adm-promo-created = ✅ Promo code created.
adm-promo-exists = A promo code { $code } exists already; nothing was created.
adm-confirm-promo-disable = Disable promo code #{ $id }? Unpaid invoices that hold it keep their price.
adm-promo-disabled = ✅ Promo code disabled.
adm-btn-discount = 🏷 Discount
adm-discount-ask = Send the personal discount for user <code>{ $user }</code>: a percent (1–99), optionally with the last day (<code>15 2027-01-31</code>); <code>0</code> removes it.
adm-discount-invalid = Send a percent from 0 to 99, optionally followed by a date as YYYY-MM-DD.
adm-discount-past = That day is over already. Send a later date.
adm-confirm-discount = Give user <code>{ $user }</code> a personal discount of { $percent } %?
adm-confirm-discount-until = Give user <code>{ $user }</code> a personal discount of { $percent } % until { $until }?
adm-confirm-discount-remove = Remove the personal discount of user <code>{ $user }</code>?
adm-discount-set = ✅ Personal discount saved.
adm-user-discount = 🏷 Personal discount { $percent } %
adm-user-discount-until = 🏷 Personal discount { $percent } % until { $until }
adm-user-receipt = 🧾 Receipts to: <code>{ $contact }</code>
adm-told-discount = 🏷 You have a personal discount of { $percent } % on purchases.
adm-told-discount-until = 🏷 You have a personal discount of { $percent } % on purchases until { $until }.
adm-told-discount-removed = Your personal discount has ended.
## Invite friends

btn-invite = 👥 Invite friends
btn-share = 📤 Share the link
invite-text =
    👥 <b>Invite friends</b>

    Your link: { $link }

    Invited: { $invited } · paying: { $paying }
    You earn { $percent }% of what your friends pay.
    { $next }
    Earned in total: { $earned }
invite-next = { $more } more paying { $more ->
        [one] friend
       *[other] friends
    } and you earn { $percent }%.
invite-top = You are at the top level.
invite-recent = Latest rewards:
invite-share-text = Join me on { $bot }
referral-joined = 👋 { $name } started the bot with your invite link.
referral-first-payment = 🎉 A friend you invited paid for the first time. Paying friends: { $paying } · your share: { $percent }%.

## Withdrawals

btn-withdraw = 💸 Withdraw referral earnings
btn-withdraw-confirm = ✅ Request the withdrawal
btn-withdraw-cancel = ✖️ Cancel
withdraw-not-enough = You can withdraw referral earnings from { $min }. Available now: { $available }.
withdraw-ask-amount = 💸 How much do you want to withdraw? Available: { $available } (at least { $min }). Send the amount, e.g. <code>500</code>.
withdraw-amount-invalid = That is not an amount: send a number in { $currency }, e.g. <code>500</code> or <code>750.50</code>.
withdraw-below-min = The smallest withdrawal is { $min }.
withdraw-above-available = You can withdraw at most { $available } now (referral earnings not yet withdrawn, and no more than your balance).
withdraw-ask-requisites = Withdrawing { $amount }. Now send where to pay it: card or wallet number and the recipient's name, as one message.
withdraw-requisites-empty = The requisites are empty: send the card or wallet number and the recipient's name.
withdraw-requisites-long = The requisites are too long: at most { $max } characters.
withdraw-confirm =
    Withdraw { $amount } to:
    <code>{ $requisites }</code>

    The amount is reserved from your balance at once; an admin pays it out by hand.
withdraw-requested = ✅ Withdrawal of { $amount } requested. The amount is reserved; we will tell you when it is paid.
withdraw-draft-gone = This withdrawal is no longer current (cancelled or replaced); nothing was changed.
withdraw-cancelled = Withdrawal cancelled; nothing was reserved.
withdrawal-paid = ✅ Your withdrawal of { $amount } was paid out.
withdrawal-rejected = ↩️ Your withdrawal of { $amount } was rejected: { $reason }. The amount is back on your balance.
adm-btn-withdrawals = 💸 Withdrawals
adm-withdrawals = 💸 <b>Withdrawals</b> waiting: { $count }
adm-btn-withdrawal = #{ $id } · { $amount } · { $user }
adm-withdrawal-new = 💸 New withdrawal request #{ $id }: { $amount } for user { $user }. Decide it in /admin → Withdrawals.
adm-withdrawal-card =
    💸 <b>Withdrawal #{ $id }</b> · { $status }
    User: <code>{ $user }</code> { $name }
    Amount: { $amount }
    Requisites: <code>{ $requisites }</code>
    Requested: { $requested }
adm-withdrawal-decided-by = Decided by { $admin } at { $at }
adm-withdrawal-pending = pending
adm-withdrawal-paid-status = paid
adm-withdrawal-rejected-status = rejected
adm-btn-withdrawal-paid = ✅ Paid out
adm-btn-withdrawal-reject = ↩️ Reject
adm-btn-withdrawal-user = 👤 User { $user }
adm-confirm-withdrawal-paid = Mark withdrawal #{ $id } of { $amount } to user <code>{ $user }</code> as paid out? Pay it first to: <code>{ $requisites }</code>
adm-reject-ask = ↩️ Send the reason to reject withdrawal #{ $id } (the user sees it).
adm-reject-invalid = Send a reason of 1 to { $max } characters.
adm-confirm-withdrawal-reject = Reject withdrawal #{ $id } of { $amount } of user <code>{ $user }</code>? The amount returns to their balance.
    Reason: { $reason }
adm-withdrawal-marked-paid = ✅ Marked paid out; the user was told.
adm-withdrawal-marked-rejected = ✅ Rejected; the amount is back on the user's balance and they were told.
adm-withdrawal-already = This request was already decided ({ $status }); nothing was changed.
## Broadcasts (admin console)
bc-btn-broadcasts = 📣 Broadcasts
bc-btn-new = ✏️ New broadcast
bc-btn-cancel = ⛔️ Cancel broadcast
bc-btn-cancel-id = ⛔️ Cancel #{ $id }
bc-btn-paid-on = 💫 Paid broadcast (up to 1000/s): on
bc-btn-paid-off = 💫 Paid broadcast (up to 1000/s): off
bc-btn-preview = 👁 Preview and send
bc-btn-edit = ✏️ Edit text
bc-btn-discard = 🗑 Discard
bc-history = 📣 <b>Broadcasts</b>

    { $lines }
bc-history-empty = No broadcasts yet.
bc-history-line = #{ $id } · { $at } · { $state } · { $audience } · sent { $sent }, failed { $failed }, blocked { $blocked } of { $recipients } · admin { $admin }
bc-ask = Send the broadcast's text (Telegram HTML: &lt;b&gt;, &lt;i&gt;, &lt;a href="…"&gt; …). For link buttons add a line <code>---</code> and then one button per line: <code>Label | https://…</code>; for a photo, a line <code>photo: https://…</code> there (the text becomes its caption, up to 1024 characters).
bc-invalid = ⚠️ This text cannot be sent: { $error }
    Nothing was saved. Send a corrected text.
bc-draft = 📣 <b>Draft #{ $id }</b>

    { $text }

    Link buttons: { $buttons }
    Audience: <b>{ $audience }</b> — { $count } recipients now
    { $paid }
bc-free = Free: about 25 messages a second, after replies.
bc-paid-cost = Paid: up to 1000 messages a second, about { $stars } Stars from the bot's balance.
bc-confirm-send = 📣 Send broadcast #{ $id } to <b>{ $audience }</b>: { $count } recipients.
    { $paid }
    The message exactly as they will see it is below.
bc-confirm-cancel = Cancel broadcast #{ $id }? Nobody who has not received it yet will.
bc-started = Broadcast started; its progress message follows.
bc-cancelled = Broadcast cancelled; nothing more will be sent.
bc-not-running = That broadcast is no longer running; nothing was changed.
bc-not-draft = That draft was sent or discarded already.
bc-progress = 📣 <b>Broadcast #{ $id }</b> — { $state }
    Sent: { $sent } · failed: { $failed } · blocked: { $blocked }
    Remaining: { $remaining } · { $rate }/s · ETA { $eta }
bc-state-draft = draft
bc-state-sending = sending
bc-state-paused = paused (broadcasts flag off)
bc-state-cancelled = cancelled
bc-state-done = done
bc-aud-all = Everyone
bc-aud-active = Active subscribers
bc-aud-expired = Expired
bc-aud-trial = Trial, never paid
bc-aud-notrial = Never took a trial
bc-aud-lang = Language { $language }

## 54-FZ receipt contact (YooKassa)
receipt-ask = 🧾 For the receipt required by law, send your email or phone number, e.g. <code>name@example.com</code> or <code>+7 900 123-45-67</code>. It is asked once and kept for your next payments; /receipt changes it.
receipt-contact-empty = The message is empty: send an email or a phone number.
receipt-email-invalid = This is not an email address: it needs one @, a name before it and a domain with a dot after it, without spaces.
receipt-phone-invalid = This is not a phone number: send 11 to 15 digits with the country code, e.g. <code>+7 900 123-45-67</code>, or an email.
receipt-contact-saved = 🧾 Receipts will go to { $contact }.
receipt-text =
    🧾 <b>Receipts</b>

    The receipts required by law for payments by card or SBP (YooKassa) go to <b>{ $contact }</b>.
receipt-text-none =
    🧾 <b>Receipts</b>

    No email or phone for receipts yet: it is asked at your first payment by card or SBP (YooKassa), or you can enter it now.
receipt-ask-change = 🧾 Send the email or phone number your receipts should go to, e.g. <code>name@example.com</code> or <code>+7 900 123-45-67</code>.
receipt-contact-removed = 🧾 Removed: your next payment by card or SBP (YooKassa) will ask for an email or phone again.
receipt-off = 🧾 This shop does not send receipts by email or phone: there is nothing to set here.
btn-receipt = 🧾 Receipts
btn-receipt-change = ✏️ Change
btn-receipt-set = ✏️ Enter an email or phone
btn-receipt-remove = 🗑 Remove
