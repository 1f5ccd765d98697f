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
refund-failed = Telegram refused the refund of { $charge }: { $reason }
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
payment-refund-elsewhere = Only Telegram Stars payments are refunded from the bot; refund a card payment in your payment provider's dashboard.

## Reminders and renewals

reminder-text = ⏳ Your access ends in { $left } — on { $until }. Renew now to keep it without a break.
expired-text = Your access has ended. Renew to connect again — your settings stay the same.
trial-onboarding-text = How is your free trial going? If something does not connect, tap 📲 Connect below for the link and the apps, or write to support.
trial-ending-text = Your free trial ends in { $left } ({ $until }). Choose a plan to keep your access.
trial-ended-text = Your free trial has ended. Choose a plan to keep using the VPN.
auto-renewed-text = 🔄 Renewed from your balance for { $price }. Access until { $until }. Balance: { $balance }.
auto-renew-short-text = Auto-renewal needs { $missing } more on your balance before { $until }. Top up to keep your access.
