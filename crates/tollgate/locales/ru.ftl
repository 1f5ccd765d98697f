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
btn-pay-yookassa = 🏦 Картой или СБП (ЮKassa) · { $price }
btn-pay-crypto = 🪙 Криптовалютой (Crypto Pay) · { $price }
btn-open-payment = ➡️ Оплатить { $price }
btn-i-paid = ✔️ Я оплатил
balance-topup-fiat-hint = Пополните баланс картой, через СБП или криптовалютой: пакет ниже или любая сумма от { $min } до { $max } командой /topup с суммой, например /topup 500.
btn-topup-fiat = ➕ { $amount }
topup-choose-text = Пополнение баланса на { $amount }: выберите способ оплаты.
topup-usage = Укажите сумму после команды, например /topup 500 (от { $min } до { $max }).
topup-not-a-number = «{ $text }» — не сумма. Напишите цифры, копейки через точку, если нужны: /topup 500 или /topup 499.90.
topup-too-precise = В «{ $text }» больше двух знаков после точки.
topup-too-small = Это меньше наименьшего пополнения: введите сумму от { $min } до { $max }.
topup-too-large = Это больше наибольшего пополнения: введите сумму от { $min } до { $max }.
topup-unavailable = Пополнение картой или криптовалютой сейчас недоступно.
provider-invoice-text = Страница оплаты на { $price } готова: откройте её кнопкой ниже. Доступ включится сразу после оплаты; если вы оплатили, а за минуту ничего не пришло, нажмите кнопку проверки.
provider-try-again = Платёжный сервис не ответил вовремя. Деньги не списаны. Попробуйте ещё раз через минуту.
provider-not-paid = Оплата ещё не поступила. Если вы только что оплатили, подождите минуту и проверьте снова.
provider-paid = Оплата получена — спасибо! Подтверждение уже в пути.
provider-ended = Срок страницы оплаты истёк, деньги не списаны. Выберите тариф снова, чтобы получить новую.
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
refund-failed = В возврате { $charge } отказано: { $reason }
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
payment-refund-elsewhere = Из бота возвращаются платежи Telegram Stars и ЮKassa; платёж картой через Telegram или счёт Crypto Pay верните в кабинете провайдера.
adm-btn-review = 🧾 На проверку
adm-review = 🧾 <b>На проверку</b>
    Платежи на проверке: { $kept } — откройте, чтобы зачесть или вернуть.
    Платежи, не относящиеся ни к одной покупке бота: { $unmatched } — верните их или отметьте урегулированными, когда урегулируете вне бота.
adm-btn-review-kept = 💳 { $amount } · { $provider } · пользователь { $user }
adm-btn-review-unmatched = ❓ { $amount } · { $provider } · { $date }
adm-unmatched-card = ❓ <b>Платёж без покупки</b> #{ $id }
    Платёж { $provider } <code>{ $external }</code>: { $amount }, получен { $date }.
    Он не относится ни к одной покупке этого бота, поэтому никому ничего не зачислено.

    { $state }

    Что сообщил провайдер:
    <pre>{ $raw }</pre>
adm-unmatched-open = ⚠️ Ждёт решения: верните его или отметьте урегулированным, когда урегулируете вне бота (возврат в кабинете провайдера или зачисление вручную).
adm-unmatched-refunded = ↩️ Возвращён через провайдера администратором { $admin }, { $at }.
adm-unmatched-settled = ✅ Отмечен урегулированным вне бота администратором { $admin }, { $at }.
adm-btn-unmatched-refund = ↩️ Вернуть через провайдера
adm-btn-unmatched-settle = ✅ Отметить урегулированным
adm-confirm-unmatched-refund = Вернуть платёж { $provider } <code>{ $external }</code> на { $amount } тому, кто его оплатил? Провайдер вернёт деньги; здесь никому ничего не зачисляется и не списывается.
adm-confirm-unmatched-settle = Отметить платёж { $provider } <code>{ $external }</code> на { $amount } урегулированным вне бота? Сделайте это после возврата в кабинете провайдера или зачисления вручную; больше бот ничего не меняет.
adm-unmatched-refunded-now = ↩️ Провайдер возвращает платёж; он урегулирован.
adm-unmatched-settled-now = ✅ Отмечен урегулированным.

## Напоминания и продления

reminder-text = ⏳ Доступ закончится через { $left } — { $until }. Продлите сейчас, чтобы не было перерыва.
expired-text = Доступ закончился. Продлите, чтобы снова подключиться — настройки останутся прежними.
trial-onboarding-text = Как вам пробный период? Если что-то не подключается, нажмите 📲 Подключиться ниже — там ссылка и приложения — или напишите в поддержку.
trial-ending-text = Пробный период закончится через { $left } ({ $until }). Выберите тариф, чтобы сохранить доступ.
trial-ended-text = Пробный период закончился. Выберите тариф, чтобы продолжить пользоваться VPN.
auto-renewed-text = 🔄 Продлено с баланса за { $price }. Доступ до { $until }. Баланс: { $balance }.
auto-renew-short-text = Для автопродления на балансе не хватает { $missing } до { $until }. Пополните баланс, чтобы сохранить доступ.

## Консоль администратора (/admin).
adm-home = 🛠 <b>Консоль администратора</b>
adm-btn-home = 🛠 Консоль
adm-btn-stats = 📊 Статистика
adm-btn-find = 🔎 Найти пользователя
adm-btn-flags = 🚦 Флаги
adm-btn-nodes = 🖥 Узлы
adm-btn-dead = 📭 Необработанные
adm-btn-audit = 📜 Журнал действий
adm-btn-confirm = ✅ Подтвердить
adm-btn-cancel = ✖️ Отмена
adm-cancelled = Отменено; ничего не изменено.
adm-already-done = Это уже сделано (кнопку уже нажимали); повторно ничего не изменено.
adm-draft-gone = Это подтверждение уже неактуально (выполнено, заменено или истекло); ничего не изменено.
adm-stats = 📊 <b>Статистика</b>
    Пользователи: { $total } (новые: сегодня { $today }, 7 дн. { $week }, 30 дн. { $month }); недоступны: { $unreachable }
    Активные подписки: { $active }
    Пробных за 30 дн.: { $trials }, из них оплатили: { $paid } ({ $conversion })
    Автопродления за 30 дн.: { $renewed } продлено, { $short } не хватило баланса
    Платежи на проверке: { $review }

    <b>Выручка</b>
    { $revenue }
adm-period-today = Сегодня
adm-period-7d = 7 дней
adm-period-30d = 30 дней
adm-period-all = За всё время
adm-find-ask = 🔎 Пришлите Telegram id пользователя, @username, токен подписки (или ссылку) или VPN UUID.
adm-find-invalid = Это не Telegram id, @username, токен или UUID. Пришлите одно из них или нажмите «Отмена».
adm-find-none = Никто не найден по { $query }. Пришлите другой id, @username, токен или UUID или нажмите «Отмена».
adm-find-many = Это имя было у нескольких пользователей; выберите:
adm-user-unknown = Пользователь с id { $user } не найден.
adm-user-card = 👤 <b>{ $name }</b> · <code>{ $user }</code>
    Язык: { $language } · с нами с { $joined }
    Пригласил: { $referrer } · приглашённых: { $referrals }
    Баланс: { $balance }
adm-user-banned = ⛔️ заблокирован
adm-user-unreachable = 📵 заблокировал бота
adm-user-auto-renew = 🔁 автопродление включено
adm-user-no-subscription = Подписки нет.
adm-user-subscription = Подписка: { $kind }, { $status } до { $until }
    Ключ: <code>{ $uuid }</code>
adm-sub-active = активна
adm-sub-expired = истекла
adm-sub-revoked = отозвана
adm-user-ledger = Изменения баланса:
adm-user-payments = Платежи:
adm-btn-grant = ➕ Начислить дни
adm-btn-balance = 💰 Изменить баланс
adm-btn-revoke = 🚫 Отозвать доступ
adm-btn-reissue = 🔑 Перевыпустить ключ
adm-btn-ban = ⛔️ Заблокировать
adm-btn-unban = ✅ Разблокировать
adm-btn-audit-user = 📜 Журнал по пользователю
adm-days-ask = ➕ Сколько дней начислить пользователю <code>{ $user }</code>? Пришлите число.
adm-days-invalid = Пришлите целое число дней от 1 до { $max }.
adm-confirm-grant = Начислить { $days } дн. пользователю <code>{ $user }</code>?
adm-confirm-grant-tell = Начислить { $days } дн. пользователю <code>{ $user }</code> и сообщить ему?
adm-confirm-grant-silent = Начислить { $days } дн. пользователю <code>{ $user }</code> без уведомления?
adm-btn-grant-tell = ✅ Начислить и сообщить
adm-btn-grant-silent = ✅ Начислить без уведомления
adm-granted = ✅ Дни начислены.
adm-told-grant = 🎁 Поддержка начислила вам { $days } дн. доступа, до { $until }.
adm-confirm-revoke = Отозвать доступ пользователя <code>{ $user }</code> сейчас? Его ключ перестанет работать.
adm-revoked = ✅ Доступ отозван.
adm-nothing-to-revoke = У пользователя нет активного доступа.
adm-told-revoke = Ваш доступ прекращён поддержкой. Напишите в поддержку, если считаете это ошибкой.
adm-confirm-reissue = Выдать пользователю <code>{ $user }</code> новый ключ? Старый перестанет работать, когда новый заработает.
adm-reissued = ✅ Новый ключ выдан.
adm-nothing-to-reissue = У пользователя нет активного доступа.
adm-told-reissue = 🔑 Поддержка выдала вам новый ключ. Откройте «Подключить», чтобы добавить его в приложение.
adm-confirm-ban = Заблокировать пользователя <code>{ $user }</code>? Его доступ будет отозван, бот перестанет ему отвечать.
adm-confirm-unban = Разблокировать пользователя <code>{ $user }</code>? Ничего не восстанавливается автоматически.
adm-banned = ✅ Пользователь заблокирован.
adm-unbanned = ✅ Пользователь разблокирован.
banned-text = Ваш аккаунт заблокирован. Напишите в поддержку, если считаете это ошибкой.
adm-balance-ask = 💰 Пришлите изменение для пользователя <code>{ $user }</code> в { $currency } со знаком и причину, например <code>+150 компенсация за сбой</code>.
adm-balance-invalid = Пришлите сумму в { $currency } со знаком и причину, например <code>-50 ошибочное пополнение</code>.
adm-balance-zero = Изменение не может быть нулевым.
adm-balance-no-reason = После суммы нужна причина.
adm-balance-reason-long = Причина слишком длинная: не более { $max } символов.
adm-balance-negative = Баланс станет отрицательным (сейчас { $balance }). Пришлите меньшее списание.
adm-confirm-balance = Изменить баланс пользователя <code>{ $user }</code> на { $delta }, до { $after }?
    Причина: { $reason }
adm-balance-adjusted = ✅ Баланс изменён.
adm-told-balance = 💰 Ваш баланс изменён на { $delta } (теперь { $balance }): { $reason }
adm-confirm-refund = Вернуть платёж <code>{ $charge }</code> на { $amount } { $currency } пользователю <code>{ $user }</code>? Оплаченное будет отозвано.
adm-flags = 🚦 <b>Флаги</b> (действуют при следующем использовании, везде)
    { $flags }
adm-btn-flag-on = Включить { $flag }
adm-btn-flag-off = Выключить { $flag }
adm-confirm-flag-on = Включить флаг { $flag }?
adm-confirm-flag-off = Выключить флаг { $flag }?
adm-flag-set = ✅ Флаг изменён.
adm-btn-banner = ✏️ Баннер работ ({ $language })
adm-banner-ask = ✏️ Пришлите текст баннера технических работ для языка { $language }.
adm-banner-invalid = В баннере должно быть от 1 до { $max } символов (в этом { $length }).
adm-confirm-banner = Установить баннер технических работ для { $language }:
    { $text }
adm-nodes = 🖥 <b>Узлы</b>
    { $nodes }
adm-nodes-none = В каталоге нет узлов.
adm-node-line = <b>{ $node }</b>: { $state }, { $breaker }; пользователей { $users }, ожидают изменений { $backlog }
adm-node-off-in-catalog = выключен в каталоге
adm-node-breaker-open = ⚠️ не отвечает с { $since }
adm-node-breaker-closed = отвечает
adm-node-last-pass = Последняя сверка { $at }: в списке { $listed }, восстановлено { $restored }, удалено { $removed }, отложено { $refused }
adm-node-requested = 🔄 Сверка запрошена; выполнится в течение нескольких секунд.
adm-btn-node-on = ▶️ Включить { $node }
adm-btn-node-off = ⏸ Выключить { $node }
adm-node-switched-on = ✅ Узел включён; все копии сервиса применят это в течение нескольких секунд.
adm-node-switched-off = ✅ Узел выключен; все копии сервиса применят это в течение нескольких секунд.
adm-reconcile-asked = ✅ Сверка запрошена.
adm-refused = Не выполнено: { $why }
adm-flag-by = изменил { $admin }, { $at }
adm-flag-set-at = изменён { $at }
adm-flag-default = по умолчанию
adm-banner-line = Баннер ({ $language }): { $text }
adm-banner-set = ✅ Баннер сохранён.
adm-node-enabled = включён
adm-node-disabled = выключен
adm-btn-reconcile = 🔄 Сверить { $node }
adm-confirm-node-on = Включить узел { $node }? Активные пользователи будут на него добавлены.
adm-confirm-node-off = Выключить узел { $node }? Новые пользователи на него не добавляются.
adm-confirm-reconcile = Сверить узел { $node } сейчас?
adm-dead = 📭 <b>Необработанные обновления</b>: { $count }

    { $lines }
adm-dead-line = Обновление <code>{ $update }</code> ({ $kind }), попыток: { $attempts }: { $error }
adm-btn-redrive = ↩️ Повторить { $update }
adm-btn-discard = 🗑 Отбросить { $update }
adm-confirm-redrive = Вернуть обновление { $update } в очередь?
adm-confirm-discard = Отбросить обновление { $update } навсегда?
adm-redriven = ✅ Возвращено в очередь.
adm-discarded = ✅ Отброшено.
adm-not-dead = Это обновление уже не в списке необработанных.
adm-audit-all = 📜 <b>Журнал действий</b>
adm-audit-by = 📜 <b>Журнал действий</b>: администратор <code>{ $admin }</code>
adm-audit-about = 📜 <b>Журнал действий</b>: пользователь <code>{ $user }</code>
adm-audit-empty = Пока пусто.
adm-audit-user = пользователь { $user }
adm-actor-cli = командная строка
adm-btn-audit-all = Все
adm-btn-audit-by = От { $admin }

## Промокоды и персональные скидки

btn-promo = 🎟 Промокод
promo-text =
    🎟 <b>Промокод</b>

    Отправьте код сообщением (или в любой момент так: <code>/promo КОД</code>). Скидка действует на следующую покупку; бесплатные дни и пополнение баланса применяются сразу.
promo-active = 🎟 Код <b>{ $code }</b>: { $benefit } на следующую покупку.
discount-active = 🏷 Ваша персональная скидка: −{ $percent } %.
pay-discounted = 🏷 С вашей скидкой: <s>{ $list }</s> → <b>{ $price }</b>
promo-chosen = ✅ Код <b>{ $code }</b> принят: { $benefit } на следующую покупку. Цены ниже уже с ним.
promo-days = 🎁 Код принят: { $days ->
        [one] добавлен { $days } день
        [few] добавлено { $days } дня
       *[other] добавлено { $days } дней
    }, доступ до { $until }.
promo-credit = 💰 Код принят: на баланс зачислено { $amount } (теперь { $balance }).
promo-unknown = ❌ Такого промокода нет. Проверьте написание и попробуйте ещё раз.
promo-not-started = ⏳ Этот промокод ещё не действует.
promo-expired = ⌛ Срок действия промокода истёк.
promo-used-up = 😔 Этот промокод закончился.
promo-already-used = ☑️ Вы уже использовали этот промокод.
promo-already-chosen = ☑️ Этот промокод уже применён к вашей следующей покупке.
promo-not-applicable = 🚫 Этот промокод только для первой покупки.

adm-btn-promos = 🎟 Промокоды
adm-promos =
    🎟 <b>Промокоды</b> { $from }–{ $to } из { $total } (сначала действующие, затем отключённые; новые сверху; использовано / всего)

    { $lines }
adm-promos-empty = Промокодов пока нет.
adm-btn-newer = ‹ Новее
adm-btn-older = Старее ›
adm-btn-promo-new = ➕ Новый код
adm-btn-promo-disable = ⛔ Отключить { $code }
adm-promo-uses = использовано { $uses }
adm-promo-from = с { $at }
adm-promo-until = до { $at }
adm-promo-first = только первая покупка
adm-promo-ask =
    Отправьте новый код и его правила одной строкой:
    <code>КОД ВИД ЗНАЧЕНИЕ [uses=N] [from=ГГГГ-ММ-ДД] [until=ГГГГ-ММ-ДД] [first] [plans=m1,m3]</code>
    ВИД: <code>percent</code> (1–99), <code>fixed</code> (скидка суммой), <code>days</code> (бесплатные дни) или <code>credit</code> (на баланс). Даты — в часовом поясе бота; <code>until</code> — последний день.
    Пример: <code>SPRING20 percent 20 uses=100 until=2027-03-31 first</code>
adm-promo-bad-code = Код — это 3–32 латинские буквы, цифры, - или _ («{ $word }» не подходит). Отправьте строку ещё раз.
adm-promo-bad-kind = «{ $word }» — не вид кода: percent, fixed, days или credit. Отправьте строку ещё раз.
adm-promo-bad-value = «{ $word }» не подходит для этого вида (percent 1–99, days 1–3650, сумма больше 0). Отправьте строку ещё раз.
adm-promo-bad-option = «{ $word }» не понято: uses=N, from=ГГГГ-ММ-ДД, until=ГГГГ-ММ-ДД, first или plans=…. Отправьте строку ещё раз.
adm-promo-bad-plan = Тарифа «{ $word }» нет. Отправьте строку ещё раз.
adm-promo-bad-window = Код закончится раньше, чем начнётся. Отправьте строку ещё раз.
adm-confirm-promo = Создать промокод <b>{ $code }</b>: { $rules }?
adm-promo-created = ✅ Промокод создан.
adm-promo-exists = Промокод { $code } уже есть; ничего не создано.
adm-confirm-promo-disable = Отключить промокод #{ $id }? Неоплаченные счета с ним сохранят свою цену.
adm-promo-disabled = ✅ Промокод отключён.
adm-btn-discount = 🏷 Скидка
adm-discount-ask = Отправьте персональную скидку для пользователя <code>{ $user }</code>: процент (1–99), при желании с последним днём (<code>15 2027-01-31</code>); <code>0</code> снимает скидку.
adm-discount-invalid = Отправьте процент от 0 до 99, при желании с датой ГГГГ-ММ-ДД.
adm-discount-past = Этот день уже прошёл. Отправьте более позднюю дату.
adm-confirm-discount = Дать пользователю <code>{ $user }</code> персональную скидку { $percent } %?
adm-confirm-discount-until = Дать пользователю <code>{ $user }</code> персональную скидку { $percent } % до { $until }?
adm-confirm-discount-remove = Снять персональную скидку пользователя <code>{ $user }</code>?
adm-discount-set = ✅ Персональная скидка сохранена.
adm-user-discount = 🏷 Персональная скидка { $percent } %
adm-user-discount-until = 🏷 Персональная скидка { $percent } % до { $until }
adm-user-receipt = 🧾 Чеки на: <code>{ $contact }</code>
adm-told-discount = 🏷 У вас персональная скидка { $percent } % на покупки.
adm-told-discount-until = 🏷 У вас персональная скидка { $percent } % на покупки до { $until }.
adm-told-discount-removed = Ваша персональная скидка закончилась.
## Пригласить друзей

btn-invite = 👥 Пригласить друзей
btn-share = 📤 Поделиться ссылкой
invite-text =
    👥 <b>Пригласить друзей</b>

    Ваша ссылка: { $link }

    Приглашено: { $invited } · оплатили: { $paying }
    Вы получаете { $percent }% от оплат ваших друзей.
    { $next }
    Всего заработано: { $earned }
invite-next = Ещё { $more } { $more ->
        [one] оплативший друг
        [few] оплативших друга
       *[other] оплативших друзей
    } — и вы будете получать { $percent }%.
invite-top = У вас максимальный уровень.
invite-recent = Последние начисления:
invite-share-text = Присоединяйся к { $bot }
referral-joined = 👋 { $name } запустил(а) бота по вашей ссылке.
referral-first-payment = 🎉 Приглашённый вами друг впервые оплатил. Оплативших друзей: { $paying } · ваша доля: { $percent }%.

## Вывод средств

btn-withdraw = 💸 Вывести реферальный доход
btn-withdraw-confirm = ✅ Запросить вывод
btn-withdraw-cancel = ✖️ Отмена
withdraw-not-enough = Вывести реферальный доход можно от { $min }. Сейчас доступно: { $available }.
withdraw-ask-amount = 💸 Какую сумму вывести? Доступно: { $available } (не меньше { $min }). Отправьте сумму, например <code>500</code>.
withdraw-amount-invalid = Это не сумма: отправьте число в { $currency }, например <code>500</code> или <code>750.50</code>.
withdraw-below-min = Минимальная сумма вывода — { $min }.
withdraw-above-available = Сейчас можно вывести не больше { $available } (реферальный доход, ещё не выведенный, и не больше баланса).
withdraw-ask-requisites = Выводим { $amount }. Теперь отправьте реквизиты: номер карты или кошелька и имя получателя, одним сообщением.
withdraw-requisites-empty = Реквизиты пустые: отправьте номер карты или кошелька и имя получателя.
withdraw-requisites-long = Реквизиты слишком длинные: не больше { $max } символов.
withdraw-confirm =
    Вывести { $amount } на:
    <code>{ $requisites }</code>

    Сумма сразу резервируется с баланса; администратор выплатит её вручную.
withdraw-requested = ✅ Вывод { $amount } запрошен. Сумма зарезервирована; мы сообщим, когда она будет выплачена.
withdraw-draft-gone = Этот вывод больше не актуален (отменён или заменён); ничего не изменилось.
withdraw-cancelled = Вывод отменён; ничего не зарезервировано.
withdrawal-paid = ✅ Ваш вывод { $amount } выплачен.
withdrawal-rejected = ↩️ Ваш вывод { $amount } отклонён: { $reason }. Сумма возвращена на баланс.
adm-btn-withdrawals = 💸 Выводы
adm-withdrawals = 💸 <b>Выводы</b> ждут решения: { $count }
adm-btn-withdrawal = #{ $id } · { $amount } · { $user }
adm-withdrawal-new = 💸 Новый запрос на вывод #{ $id }: { $amount } для пользователя { $user }. Решите его в /admin → Выводы.
adm-withdrawal-card =
    💸 <b>Вывод #{ $id }</b> · { $status }
    Пользователь: <code>{ $user }</code> { $name }
    Сумма: { $amount }
    Реквизиты: <code>{ $requisites }</code>
    Запрошен: { $requested }
adm-withdrawal-decided-by = Решил { $admin }, { $at }
adm-withdrawal-pending = ждёт решения
adm-withdrawal-paid-status = выплачен
adm-withdrawal-rejected-status = отклонён
adm-btn-withdrawal-paid = ✅ Выплачено
adm-btn-withdrawal-reject = ↩️ Отклонить
adm-btn-withdrawal-user = 👤 Пользователь { $user }
adm-confirm-withdrawal-paid = Отметить вывод #{ $id } на { $amount } пользователю <code>{ $user }</code> как выплаченный? Сначала выплатите на: <code>{ $requisites }</code>
adm-reject-ask = ↩️ Отправьте причину отклонения вывода #{ $id } (её увидит пользователь).
adm-reject-invalid = Отправьте причину длиной от 1 до { $max } символов.
adm-confirm-withdrawal-reject = Отклонить вывод #{ $id } на { $amount } пользователя <code>{ $user }</code>? Сумма вернётся на его баланс.
    Причина: { $reason }
adm-withdrawal-marked-paid = ✅ Отмечено как выплаченное; пользователь уведомлён.
adm-withdrawal-marked-rejected = ✅ Отклонено; сумма возвращена на баланс пользователя, он уведомлён.
adm-withdrawal-already = Этот запрос уже решён ({ $status }); ничего не изменилось.
## Рассылки (консоль администратора)
bc-btn-broadcasts = 📣 Рассылки
bc-btn-new = ✏️ Новая рассылка
bc-btn-cancel = ⛔️ Отменить рассылку
bc-btn-cancel-id = ⛔️ Отменить №{ $id }
bc-btn-paid-on = 💫 Платная рассылка (до 1000/с): вкл.
bc-btn-paid-off = 💫 Платная рассылка (до 1000/с): выкл.
bc-btn-preview = 👁 Предпросмотр и отправка
bc-btn-edit = ✏️ Изменить текст
bc-btn-discard = 🗑 Удалить черновик
bc-history = 📣 <b>Рассылки</b>

    { $lines }
bc-history-empty = Рассылок пока не было.
bc-history-line = №{ $id } · { $at } · { $state } · { $audience } · отправлено { $sent }, ошибок { $failed }, заблокировали { $blocked } из { $recipients } · админ { $admin }
bc-ask = Пришлите текст рассылки (HTML Telegram: &lt;b&gt;, &lt;i&gt;, &lt;a href="…"&gt; …). Для кнопок-ссылок добавьте строку <code>---</code>, затем по кнопке в строке: <code>Надпись | https://…</code>; для фото — там же строку <code>photo: https://…</code> (текст станет подписью, до 1024 символов).
bc-invalid = ⚠️ Такой текст отправить нельзя: { $error }
    Ничего не сохранено. Пришлите исправленный текст.
bc-draft = 📣 <b>Черновик №{ $id }</b>

    { $text }

    Кнопок-ссылок: { $buttons }
    Аудитория: <b>{ $audience }</b> — сейчас получателей: { $count }
    { $paid }
bc-free = Бесплатно: около 25 сообщений в секунду, после ответов пользователям.
bc-paid-cost = Платно: до 1000 сообщений в секунду, около { $stars } Stars с баланса бота.
bc-confirm-send = 📣 Отправить рассылку №{ $id } аудитории <b>{ $audience }</b>: получателей { $count }.
    { $paid }
    Ниже — сообщение в точности как его увидят.
bc-confirm-cancel = Отменить рассылку №{ $id }? Те, кто её ещё не получил, не получат.
bc-started = Рассылка запущена; ниже придёт сообщение о ходе.
bc-cancelled = Рассылка отменена; больше ничего не отправится.
bc-not-running = Эта рассылка уже не идёт; ничего не изменено.
bc-not-draft = Этот черновик уже отправлен или удалён.
bc-progress = 📣 <b>Рассылка №{ $id }</b> — { $state }
    Отправлено: { $sent } · ошибок: { $failed } · заблокировали: { $blocked }
    Осталось: { $remaining } · { $rate }/с · осталось времени { $eta }
bc-state-draft = черновик
bc-state-sending = идёт
bc-state-paused = на паузе (флаг broadcasts выключен)
bc-state-cancelled = отменена
bc-state-done = завершена
bc-aud-all = Все
bc-aud-active = Активные подписчики
bc-aud-expired = Истёкшие
bc-aud-trial = Пробный, без оплаты
bc-aud-notrial = Без пробного периода
bc-aud-lang = Язык { $language }

## Контакт для чека по 54-ФЗ (ЮKassa)
receipt-ask = 🧾 Для чека, который требует закон, отправьте вашу почту или номер телефона, например <code>name@example.com</code> или <code>+7 900 123-45-67</code>. Спросим один раз и запомним для следующих оплат; изменить — /receipt.
receipt-contact-empty = Сообщение пустое: отправьте почту или номер телефона.
receipt-email-invalid = Это не адрес почты: нужен один знак @, имя перед ним и домен с точкой после него, без пробелов.
receipt-phone-invalid = Это не номер телефона: отправьте от 11 до 15 цифр с кодом страны, например <code>+7 900 123-45-67</code>, или почту.
receipt-contact-saved = 🧾 Чеки будут приходить на { $contact }.
receipt-text =
    🧾 <b>Чеки</b>

    Чеки, которые требует закон, за оплату картой или СБП (ЮKassa) приходят на <b>{ $contact }</b>.
receipt-text-none =
    🧾 <b>Чеки</b>

    Почта или телефон для чеков ещё не указаны: спросим при первой оплате картой или СБП (ЮKassa), или укажите сейчас.
receipt-ask-change = 🧾 Отправьте почту или номер телефона, на которые будут приходить чеки, например <code>name@example.com</code> или <code>+7 900 123-45-67</code>.
receipt-contact-removed = 🧾 Удалено: при следующей оплате картой или СБП (ЮKassa) спросим почту или телефон снова.
receipt-off = 🧾 Этот магазин не отправляет чеки на почту или телефон: настраивать здесь нечего.
btn-receipt = 🧾 Чеки
btn-receipt-change = ✏️ Изменить
btn-receipt-set = ✏️ Указать почту или телефон
btn-receipt-remove = 🗑 Удалить
