# Тексты бота Tollgate, русский. Сообщения уходят в режиме HTML: переменные экранирует
# код; литералы <, > и & пишите как &lt; &gt; &amp;.
# Каждое сообщение должно быть во всех языках (это проверяет тест).
# Кнопку текст называет её точной подписью, с эмодзи; кнопку не из этого же сообщения — путём
# от главного меню: 🔑 Мой доступ → 📲 Подключиться (тест сверяет названия с кнопками экранов).

## Главное меню

menu-text =
    <b>{ $bot }</b>

    { $status }

    Выберите действие ниже.
menu-status-none = У вас пока нет активного доступа.
menu-status-active = ✅ Доступ активен до { $until }.
menu-status-expired = ⌛ Доступ закончился { $until }.
btn-trial = 🎁 Пробный период · { $days ->
        [one] { $days } день
        [few] { $days } дня
       *[many] { $days } дней
    }
btn-access = 🔑 Мой доступ
btn-buy = 🛒 Купить / продлить
btn-balance = 💰 Баланс
btn-help = ❓ Помощь
btn-support = 💬 Поддержка
btn-language = 🌐 Язык
btn-back = ⬅️ Назад
btn-menu = 🏠 Меню
unknown-input = Не понял сообщение. Вот меню:
stale-button = Эта кнопка больше не действует.
maintenance-banner = 🛠 Идут технические работы; некоторые действия могут быть медленнее.

## Пробный период

trial-granted = 🎁 Пробный период включён: { $days ->
        [one] { $days } день
        [few] { $days } дня
       *[many] { $days } дней
    }, до { $until }.
trial-used = Вы уже использовали пробный период. Выберите тариф, чтобы продолжить.
trial-disabled = Пробный период сейчас недоступен.
trial-not-for-subscribers = У вас уже есть доступ — пробный период не нужен.

## Покупка

buy-text = <b>Выберите тариф</b>
buy-renew-note = Текущий доступ продлится от { $from }.
plan-button = { $title } · { $price }
pay-text =
    <b>{ $plan }</b> — { $days ->
        [one] { $days } день
        [few] { $days } дня
       *[many] { $days } дней
    }

    Выберите способ оплаты:
btn-pay-stars = ⭐ Telegram Stars · { $price }
btn-pay-card = 💳 Картой · { $price }
btn-pay-balance = 💰 С баланса · { $price }
pay-balance-short = На балансе { $balance }: не хватает { $missing }.
plan-unavailable = Этот тариф больше недоступен. Выберите другой.
payments-paused = Оплата сейчас приостановлена. Попробуйте позже.
invoice-description = Доступ к VPN на { $days ->
        [one] { $days } день
        [few] { $days } дня
       *[many] { $days } дней
    }.
invoice-sent = Вот счёт. Доступ включится сразу после оплаты.
topup-invoice-title = Пополнение баланса
topup-invoice-description = На баланс будет зачислено { $amount }.
payment-confirmed = ✅ Оплата получена — спасибо! Доступ активен до { $until }.
payment-balance-confirmed = ✅ Оплачено { $price } с баланса. Доступ активен до { $until }. Баланс: { $balance }.
topup-confirmed = ✅ На баланс зачислено { $amount }. Баланс: { $balance }.
payment-needs-review = Мы получили оплату; её нужно проверить вручную. Поддержка скоро свяжется с вами.
referral-reward = 🎉 Приглашённый вами друг оплатил — на ваш баланс зачислено { $amount }.
refund-done-user = ↩️ Оплата возвращена. Теперь доступ действует до { $until }.
refund-done-user-topup = ↩️ Пополнение на { $amount } возвращено. Баланс: { $balance }.
reject-unknown = Этот счёт больше не действует. Откройте меню и оформите покупку заново.
reject-not-yours = Этот счёт принадлежит другому аккаунту.
reject-price = Цена изменилась после создания счёта. Откройте меню и оформите покупку заново.
reject-disabled = Оплата сейчас приостановлена. Деньги не списаны.
reject-banned = Покупки для этого аккаунта недоступны.
reject-closed = Срок действия счёта истёк. Создайте новый в меню.

## Мой доступ

access-none = У вас пока нет доступа. Возьмите пробный период или выберите тариф.
access-active =
    <b>Статус:</b> активен ✅
    <b>Тип:</b> { $kind }
    <b>Действует до:</b> { $until } ({ $left })
access-expired =
    <b>Статус:</b> закончился ⌛
    <b>Тип:</b> { $kind }
    <b>Закончился:</b> { $until }
access-traffic = <b>Израсходовано трафика:</b> { $amount }
access-auto-renew-on = <b>Автопродление:</b> включено — продлим с баланса до окончания.
access-auto-renew-off = <b>Автопродление:</b> выключено
kind-trial = пробный период
kind-paid = оплаченный
kind-gift = подарок
kind-admin = выдан поддержкой
btn-connect = 📲 Подключиться
btn-renew = 🔄 Продлить
btn-reissue = ♻️ Новый ключ
btn-auto-renew-on = Автопродление: вкл ✅
btn-auto-renew-off = Автопродление: выкл
auto-renew-enabled = Автопродление включено.
auto-renew-disabled = Автопродление выключено.
reissue-done = ♻️ Выпущен новый ключ. Старый перестанет работать, как только новый заработает. Импортируйте подписку заново.
reissue-too-soon = Выпустить новый ключ можно будет через { $wait }.
reissue-nothing = Нет активного доступа, для которого можно выпустить ключ.

## Подключение

connect-text =
    <b>Подключение</b>

    { $status }

    <b>Ссылка на подписку</b> — импортируйте её в приложение:
    <code>{ $url }</code>

    <b>Серверы</b>
    { $links }

    <b>Приложения</b>
    { $apps }
connect-link = { $name }: <code>{ $link }</code>
connect-app = { $platform }: <a href="{ $url }">{ $name }</a>
connect-no-apps = Подойдёт любое приложение с импортом VLESS-подписок (Hiddify, Happ, v2rayNG, Streisand, v2rayN).
connect-status-ready = ✅ Доступ готов.
connect-status-pending = ⏳ Настраиваем доступ — будет готов через мгновение.
connect-status-failing = ⚠️ Некоторые серверы сейчас недоступны; мы продолжаем попытки.
connect-status-inactive = ⌛ Доступ не активен. Продлите его, чтобы снова подключиться.
connect-status-no-nodes = Сейчас нет доступных серверов. Мы сообщим, когда появятся.
connect-none = У вас пока нет доступа. Возьмите пробный период или выберите тариф.
access-ready-notice = ✅ Доступ готов. Откройте в меню 🔑 Мой доступ → 📲 Подключиться, чтобы импортировать его.
qr-caption = QR-код ссылки на подписку — отсканируйте его в приложении.
platform-android = Android
platform-ios = iPhone / iPad
platform-windows = Windows
platform-macos = macOS
platform-linux = Linux

## Баланс

balance-text =
    <b>Баланс:</b> { $amount }

    { $history }
balance-history-empty = Операций пока нет.
balance-history-line = { $date } · { $amount } · { $reason }
balance-topup-hint = Пополнить звёздами Telegram:
btn-topup-stars = ⭐ { $stars } → { $credit }
ledger-topup = пополнение
ledger-purchase = покупка
ledger-renewal = автопродление
ledger-referral = реферальное вознаграждение
ledger-refund = возврат
ledger-withdrawal = вывод
ledger-withdrawal-returned = возврат вывода
ledger-admin = корректировка

## Помощь, поддержка, язык

help-text =
    <b>Как это работает</b>

    1. Возьмите пробный период или купите тариф.
    2. Откройте 🔑 Мой доступ → 📲 Подключиться и импортируйте ссылку на подписку в VPN-приложение (ссылки на приложения там же).
    3. Продлевайте до окончания — или включите автопродление и держите деньги на балансе.

    Команды: /menu /buy /access /balance /help /language
support-text = Вопросы или проблемы? Пишите { $contact } — отвечаем быстро.
language-text = Выберите язык:
language-set = Язык: русский.

## Длительности и объёмы

duration-days = { $n ->
        [one] { $n } день
        [few] { $n } дня
       *[many] { $n } дней
    }
duration-hours = { $n ->
        [one] { $n } час
        [few] { $n } часа
       *[many] { $n } часов
    }
duration-minutes = { $n ->
        [one] { $n } минута
        [few] { $n } минуты
       *[many] { $n } минут
    }
time-left = осталось { $duration }

## Администрирование

admin-only = Эта команда только для администраторов.
refund-usage = Использование: /refund &lt;telegram payment charge id&gt;
refund-unknown = Платёж с charge id { $charge } не найден.
refund-sent = ↩️ Запрошен возврат { $charge }; доступ пользователя уменьшен соответственно.
refund-failed = Telegram отказал в возврате { $charge }: { $reason }
payment-usage = Использование: /payment &lt;telegram payment charge id&gt;
payment-unknown = Платёж с charge id { $charge } не найден.
payment-card = 💳 Платёж <code>{ $charge }</code>: { $amount } { $currency } ({ $provider }) от пользователя <code>{ $user }</code>, { $date }.
payment-state-applied = Зачтён в покупку { $purchase }.
payment-state-refunded = Возвращён.
payment-state-kept = ⚠️ Ждёт проверки: { $reason }
payment-cannot-apply = Зачесть его нельзя: { $why }. Верните его или договоритесь с пользователем вручную.
payment-apply-explained = «Зачесть» даёт плательщику то, что продаёт покупка { $purchase }, с обычным подтверждением.
btn-payment-apply = ✅ Зачесть в покупку { $purchase }
btn-payment-refund = ↩️ Вернуть
payment-applied-now = ✅ Зачтено: пользователь получил то, что продаёт покупка { $purchase }.
payment-already-settled = Этот платёж уже зачтён или возвращён; ничего не изменилось.
payment-refund-elsewhere = Из бота возвращаются только платежи в Telegram Stars; платёж картой верните в кабинете платёжного провайдера.

## Напоминания и продления

reminder-text = ⏳ Доступ закончится через { $left } — { $until }. Продлите сейчас, чтобы не было перерыва.
expired-text = Доступ закончился. Продлите, чтобы снова подключиться — настройки останутся прежними.
trial-onboarding-text = Как вам пробный период? Если что-то не подключается, нажмите 📲 Подключиться ниже — там ссылка и приложения — или напишите в поддержку.
trial-ending-text = Пробный период закончится через { $left } ({ $until }). Выберите тариф, чтобы сохранить доступ.
trial-ended-text = Пробный период закончился. Выберите тариф, чтобы продолжить пользоваться VPN.
auto-renewed-text = 🔄 Продлено с баланса за { $price }. Доступ до { $until }. Баланс: { $balance }.
auto-renew-short-text = Для автопродления на балансе не хватает { $missing } до { $until }. Пополните баланс, чтобы сохранить доступ.
