// Web chat of the Telegram emulator. Plain JS, no build step. It talks only to the control API;
// every endpoint it uses is listed in ENDPOINTS (a test checks that each one works).
"use strict";

const ENDPOINTS = {
  bots: "/control/bots",
  users: "/control/users",
  messages: "/control/messages",
  callbacks: "/control/callbacks",
  payments: "/control/payments",
  abandon: "/control/payments/abandon",
  block: "/control/block",
  unblock: "/control/unblock",
  chats: "/control/chats/",
  counters: "/control/counters",
  time: "/control/time",
  advance: "/control/time/advance",
  files: "/control/files/",
};

const state = {
  bots: [],
  bot: null,          // username
  users: [],
  userId: null,
  transcript: null,
  version: 0,
  pollToken: 0,
  busy: new Set(),
};

const $ = (id) => document.getElementById(id);

async function request(method, path, body) {
  const options = { method, headers: {} };
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text }; }
  if (!response.ok) {
    throw new Error((data && data.error) || `${response.status} ${response.statusText}`);
  }
  return data;
}

const api = {
  bots: () => request("GET", ENDPOINTS.bots),
  users: () => request("GET", ENDPOINTS.users),
  createUser: (user) => request("POST", ENDPOINTS.users, user),
  transcript: (chatId) => request("GET", `${ENDPOINTS.chats}${chatId}?bot=${encodeURIComponent(state.bot)}&limit=300`),
  changes: (chatId, since) =>
    request("GET", `${ENDPOINTS.chats}${chatId}/changes?bot=${encodeURIComponent(state.bot)}&since=${since}&timeout_ms=25000`),
  sendText: (userId, text) => request("POST", ENDPOINTS.messages, { bot: state.bot, user_id: userId, text }),
  press: (chatId, messageId, data) =>
    request("POST", ENDPOINTS.callbacks, { bot: state.bot, chat_id: chatId, message_id: messageId, callback_data: data, wait_ms: 5000 }),
  pay: (chatId, messageId) => request("POST", ENDPOINTS.payments, { bot: state.bot, chat_id: chatId, message_id: messageId }),
  abandon: (chatId, messageId) => request("POST", ENDPOINTS.abandon, { bot: state.bot, chat_id: chatId, message_id: messageId }),
  block: (userId) => request("POST", ENDPOINTS.block, { bot: state.bot, user_id: userId }),
  unblock: (userId) => request("POST", ENDPOINTS.unblock, { bot: state.bot, user_id: userId }),
  counters: () => request("GET", `${ENDPOINTS.counters}?bot=${encodeURIComponent(state.bot)}`),
  time: () => request("GET", ENDPOINTS.time),
  advance: (seconds) => request("POST", ENDPOINTS.advance, { seconds }),
};

// ---------------------------------------------------------------------------------------------
// Small helpers

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function toast(text, kind) {
  const element = document.createElement("div");
  element.className = `toast ${kind || ""}`;
  element.textContent = text;
  $("toasts").appendChild(element);
  setTimeout(() => element.remove(), kind === "alert" ? 6000 : 3500);
}

function initials(name) {
  return (name || "?").trim().slice(0, 1).toUpperCase();
}

function formatTime(unix) {
  const date = new Date(unix * 1000);
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function formatAmount(currency, amount) {
  if (currency === "XTR") return `⭐ ${amount}`;
  const zeroDecimal = ["JPY", "KRW", "VND", "CLP", "ISK", "UGX"];
  const value = zeroDecimal.includes(currency) ? amount : (amount / 100).toFixed(2);
  return `${value} ${currency}`;
}

function userName(user) {
  return [user.first_name, user.last_name].filter(Boolean).join(" ");
}

// Renders a text with Bot API entities (offsets are UTF-16, like JS strings).
function renderEntities(text, entities) {
  if (!entities || entities.length === 0) return escapeHtml(text);
  const points = new Set([0, text.length]);
  for (const e of entities) { points.add(e.offset); points.add(Math.min(text.length, e.offset + e.length)); }
  const bounds = [...points].sort((a, b) => a - b);
  let html = "";
  for (let i = 0; i + 1 < bounds.length; i++) {
    const start = bounds[i], end = bounds[i + 1];
    let piece = escapeHtml(text.slice(start, end));
    for (const e of entities) {
      if (e.offset > start || e.offset + e.length < end) continue;
      switch (e.type) {
        case "bold": piece = `<b>${piece}</b>`; break;
        case "italic": piece = `<i>${piece}</i>`; break;
        case "underline": piece = `<u>${piece}</u>`; break;
        case "strikethrough": piece = `<s>${piece}</s>`; break;
        case "code": piece = `<code>${piece}</code>`; break;
        case "pre": piece = `<code>${piece}</code>`; break;
        case "spoiler": piece = `<span class="spoiler" onclick="this.classList.add('shown')">${piece}</span>`; break;
        case "text_link": piece = `<a href="${escapeHtml(e.url || "#")}" target="_blank" rel="noopener">${piece}</a>`; break;
        case "url": piece = `<a href="${escapeHtml(text.slice(e.offset, e.offset + e.length))}" target="_blank" rel="noopener">${piece}</a>`; break;
        case "bot_command": piece = `<a href="#" data-command="${escapeHtml(text.slice(e.offset, e.offset + e.length))}">${piece}</a>`; break;
        default: break;
      }
    }
    html += piece;
  }
  return html;
}

// ---------------------------------------------------------------------------------------------
// Bots and users

async function loadBots() {
  state.bots = await api.bots();
  const select = $("bot-select");
  select.innerHTML = "";
  for (const bot of state.bots) {
    const option = document.createElement("option");
    option.value = bot.username;
    option.textContent = `@${bot.username}`;
    select.appendChild(option);
  }
  select.hidden = state.bots.length < 2;
  if (!state.bot && state.bots.length) state.bot = state.bots[0].username;
  select.value = state.bot;
  renderBotHeader();
}

function currentBot() {
  return state.bots.find((b) => b.username === state.bot);
}

function renderBotHeader() {
  const bot = currentBot();
  if (!bot) return;
  $("bot-name").textContent = bot.first_name;
  $("bot-avatar").textContent = initials(bot.first_name);
  renderStatus();
  renderCommandsMenu();
}

function renderStatus() {
  const bot = currentBot();
  const status = $("bot-status");
  const action = state.transcript && state.transcript.last_action;
  const now = Date.now() / 1000 + (state.timeOffset || 0);
  if (action && now - action.date < 6) {
    status.textContent = action.action === "typing" ? "typing…" : `${action.action.replace(/_/g, " ")}…`;
    status.classList.add("typing");
  } else {
    status.textContent = bot ? `@${bot.username} · bot` : "bot";
    status.classList.remove("typing");
  }
}

function renderCommandsMenu() {
  const bot = currentBot();
  const menu = $("commands-menu");
  menu.innerHTML = "";
  const commands = (bot && bot.commands) || [];
  for (const c of commands) {
    const row = document.createElement("div");
    row.innerHTML = `<span class="cmd">/${escapeHtml(c.command)}</span><span class="desc">${escapeHtml(c.description)}</span>`;
    row.addEventListener("click", () => { menu.hidden = true; sendText(`/${c.command}`); });
    menu.appendChild(row);
  }
  $("commands-button").disabled = !state.userId || commands.length === 0;
}

async function loadUsers() {
  state.users = await api.users();
  renderUsers();
}

function renderUsers() {
  const list = $("user-list");
  list.innerHTML = "";
  $("no-users").hidden = state.users.length > 0;
  for (const user of state.users) {
    const item = document.createElement("li");
    if (user.id === state.userId) item.classList.add("selected");
    const blocked = state.transcript && state.transcript.chat.id === user.id && state.transcript.blocked;
    item.innerHTML = `
      <div class="avatar">${escapeHtml(initials(user.first_name))}</div>
      <div>
        <div>${escapeHtml(userName(user))}</div>
        <div class="meta">${user.username ? "@" + escapeHtml(user.username) + " · " : ""}id ${user.id}${user.language_code ? " · " + escapeHtml(user.language_code) : ""}</div>
      </div>
      ${blocked ? '<span class="badge">blocked</span>' : ""}`;
    item.addEventListener("click", () => selectUser(user.id));
    list.appendChild(item);
  }
}

async function selectUser(userId) {
  state.userId = userId;
  state.transcript = null;
  state.version = 0;
  const user = state.users.find((u) => u.id === userId);
  $("chatting-as").textContent = user ? `as ${userName(user)}` : "";
  for (const id of ["composer-input", "send-button", "block-button"]) $(id).disabled = false;
  renderUsers();
  renderCommandsMenu();
  await refreshTranscript();
  pollChanges();
}

// ---------------------------------------------------------------------------------------------
// The chat

async function refreshTranscript() {
  if (!state.userId) return;
  try {
    state.transcript = await api.transcript(state.userId);
    state.version = state.transcript.version;
    renderTranscript();
    renderUsers();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function pollChanges() {
  const token = ++state.pollToken;
  while (token === state.pollToken && state.userId) {
    try {
      const { version } = await api.changes(state.userId, state.version);
      if (token !== state.pollToken) return;
      if (version !== state.version) {
        await refreshTranscript();
        await loadBots(); // commands may have changed
      }
    } catch (error) {
      if (token !== state.pollToken) return;
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }
}

function renderTranscript() {
  const container = $("messages");
  const transcript = state.transcript;
  const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 60;
  container.innerHTML = "";
  if (!transcript || transcript.messages.length === 0) {
    container.innerHTML = `<div class="empty">${transcript && !transcript.started ? "Press START to talk to the bot." : "No messages yet."}</div>`;
  }
  const byId = new Map();
  for (const m of (transcript ? transcript.messages : [])) byId.set(m.message_id, m);
  for (const message of (transcript ? transcript.messages : [])) {
    container.appendChild(renderMessage(message, byId));
  }
  if (atBottom || transcript) container.scrollTop = container.scrollHeight;
  renderReplyKeyboard();
  renderStatus();
  $("start-bar").hidden = !transcript || transcript.started || transcript.blocked;
  $("block-button").textContent = transcript && transcript.blocked ? "Unblock bot" : "Block bot";
  const blocked = Boolean(transcript && transcript.blocked);
  $("composer-input").disabled = blocked;
  $("send-button").disabled = blocked;
  $("composer-input").placeholder = blocked ? "You blocked the bot — unblock it to write" : "Message";
}

function renderMessage(message, byId) {
  if (message.kind === "successful_payment" || message.kind === "refunded_payment") {
    const payment = message.api.successful_payment || message.api.refunded_payment;
    const element = document.createElement("div");
    element.className = "service";
    const amount = formatAmount(payment.currency, payment.total_amount);
    element.textContent = message.kind === "successful_payment"
      ? `You paid ${amount} (charge ${payment.telegram_payment_charge_id.slice(0, 12)}…)`
      : `The bot refunded ${amount}`;
    return element;
  }
  const element = document.createElement("div");
  element.className = `message ${message.from_bot ? "bot" : "user"}${message.deleted ? " deleted" : ""}`;
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  if (message.deleted) {
    bubble.textContent = "message deleted";
    element.appendChild(bubble);
    return element;
  }
  let html = "";
  if (message.reply_to_message_id && byId.has(message.reply_to_message_id)) {
    const quoted = byId.get(message.reply_to_message_id);
    html += `<div class="reply-quote">${escapeHtml((quoted.text || quoted.kind).slice(0, 80))}</div>`;
  }
  if (message.photo) {
    html += `<img src="${escapeHtml(message.photo.url)}" alt="photo ${message.photo.width}×${message.photo.height}">`;
  }
  if (message.kind === "invoice" && message.invoice) {
    const invoice = message.invoice;
    const price = escapeHtml(formatAmount(invoice.currency, invoice.total_amount));
    const action = invoice.paid_by_charge
      ? '<div class="paid">Paid ✓</div>'
      : `<div class="pay-row"><button type="button" class="primary" data-pay="${message.message_id}">Pay ${price}</button>` +
        `<button type="button" data-abandon="${message.message_id}">Cancel</button></div>`;
    html += `<div class="invoice"><div class="title">${escapeHtml(invoice.title)}</div>` +
      `<div class="description">${escapeHtml(invoice.description)}</div>` +
      `<div class="amount">${price}</div>${action}</div>`;
  } else {
    const text = message.text || "";
    const api = message.api;
    const entities = api.entities || api.caption_entities || [];
    html += renderEntities(text, entities);
  }
  const edited = message.edit_date ? "edited " : "";
  html += `<span class="footer">${edited}${formatTime(message.edit_date || message.date)}</span>`;
  bubble.innerHTML = html;
  element.appendChild(bubble);
  if (message.reply_markup && message.reply_markup.inline_keyboard) {
    element.appendChild(renderInlineKeyboard(message));
  }
  bubble.querySelectorAll("[data-command]").forEach((a) =>
    a.addEventListener("click", (event) => { event.preventDefault(); sendText(a.dataset.command); }));
  bubble.querySelectorAll("[data-pay]").forEach((b) =>
    b.addEventListener("click", () => payInvoice(Number(b.dataset.pay), b)));
  bubble.querySelectorAll("[data-abandon]").forEach((b) =>
    b.addEventListener("click", () => abandonInvoice(Number(b.dataset.abandon))));
  return element;
}

function renderInlineKeyboard(message) {
  const keyboard = document.createElement("div");
  keyboard.className = "keyboard";
  for (const row of message.reply_markup.inline_keyboard) {
    const rowElement = document.createElement("div");
    rowElement.className = "kb-row";
    for (const button of row) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = button.text;
      if (button.callback_data !== undefined) {
        b.addEventListener("click", () => pressButton(message.message_id, button.callback_data, b));
      } else if (button.url) {
        b.textContent = `${button.text} ↗`;
        b.addEventListener("click", () => window.open(button.url, "_blank", "noopener"));
      } else if (button.pay) {
        b.addEventListener("click", () => payInvoice(message.message_id, b));
      } else if (button.copy_text) {
        b.addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText(button.copy_text.text).then(() => toast("Copied")));
      } else {
        b.disabled = true;
        b.title = "not supported by the emulator";
      }
      rowElement.appendChild(b);
    }
    keyboard.appendChild(rowElement);
  }
  return keyboard;
}

function renderReplyKeyboard() {
  const container = $("reply-keyboard");
  const keyboard = state.transcript && state.transcript.reply_keyboard;
  container.innerHTML = "";
  container.hidden = !keyboard || state.transcript.blocked;
  if (!keyboard) return;
  for (const row of keyboard.keyboard) {
    const rowElement = document.createElement("div");
    rowElement.className = "kb-row";
    for (const button of row) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = button.text;
      b.addEventListener("click", () => sendText(button.text));
      rowElement.appendChild(b);
    }
    container.appendChild(rowElement);
  }
}

// ---------------------------------------------------------------------------------------------
// User actions

async function sendText(text) {
  if (!state.userId || !text.trim()) return;
  try {
    await api.sendText(state.userId, text);
    await refreshTranscript();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function pressButton(messageId, data, button) {
  button.disabled = true;
  try {
    const outcome = await api.press(state.userId, messageId, data);
    if (outcome.answer && outcome.answer.text) {
      toast(outcome.answer.text, outcome.answer.show_alert ? "alert" : "");
    } else if (!outcome.answer) {
      toast("The bot did not answer the button press (answerCallbackQuery)", "error");
    }
    if (outcome.answer && outcome.answer.url) window.open(outcome.answer.url, "_blank", "noopener");
  } catch (error) {
    toast(error.message, "error");
  } finally {
    button.disabled = false;
  }
}

async function payInvoice(messageId, button) {
  if (button) button.disabled = true;
  try {
    const outcome = await api.pay(state.userId, messageId);
    if (outcome.status === "paid") toast("Payment successful");
    else if (outcome.status === "declined") toast(`Payment declined: ${outcome.error_message}`, "error");
    else toast("Payment failed: the bot did not confirm the order in time", "error");
    await refreshTranscript();
  } catch (error) {
    toast(error.message, "error");
  } finally {
    if (button) button.disabled = false;
  }
}

async function abandonInvoice(messageId) {
  try {
    await api.abandon(state.userId, messageId);
    toast("Payment form closed");
  } catch (error) {
    toast(error.message, "error");
  }
}

async function toggleBlock() {
  if (!state.userId || !state.transcript) return;
  try {
    if (state.transcript.blocked) await api.unblock(state.userId);
    else await api.block(state.userId);
    await refreshTranscript();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function createUser(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  const user = { first_name: data.get("first_name").trim() };
  for (const key of ["last_name", "username", "language_code"]) {
    const value = (data.get(key) || "").trim();
    if (value) user[key] = value;
  }
  const id = (data.get("id") || "").trim();
  if (id) user.id = Number(id);
  if (data.get("is_premium")) user.is_premium = true;
  try {
    const created = await api.createUser(user);
    form.reset();
    await loadUsers();
    await selectUser(created.id);
  } catch (error) {
    toast(error.message, "error");
  }
}

async function showTime() {
  try {
    const info = await api.time();
    state.timeOffset = info.offset_ms / 1000;
    $("emulated-time").textContent = new Date(info.now_ms).toLocaleString();
  } catch (_) { /* the emulator may be restarting */ }
}

async function advanceTime() {
  const seconds = Number($("advance-seconds").value);
  if (!(seconds > 0)) return;
  try {
    await api.advance(seconds);
    toast(`Emulated time advanced by ${seconds} s`);
    await showTime();
  } catch (error) {
    toast(error.message, "error");
  }
}

async function showCounters() {
  try {
    $("counters").textContent = JSON.stringify(await api.counters(), null, 2);
  } catch (error) {
    toast(error.message, "error");
  }
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $("new-user").addEventListener("submit", createUser);
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("composer-input");
    const text = input.value;
    input.value = "";
    sendText(text);
  });
  $("start-button").addEventListener("click", () => sendText("/start"));
  $("block-button").addEventListener("click", toggleBlock);
  $("commands-button").addEventListener("click", () => { $("commands-menu").hidden = !$("commands-menu").hidden; });
  $("advance-button").addEventListener("click", advanceTime);
  $("counters-button").addEventListener("click", showCounters);
  $("bot-select").addEventListener("change", async (event) => {
    state.bot = event.target.value;
    renderBotHeader();
    if (state.userId) await selectUser(state.userId);
  });
}

async function main() {
  wire();
  try {
    await loadBots();
    await loadUsers();
    if (state.users.length) await selectUser(state.users[0].id);
  } catch (error) {
    toast(`Cannot reach the emulator: ${error.message}`, "error");
  }
  showTime();
  setInterval(showTime, 5000);
  setInterval(renderStatus, 1000);
}

main();
