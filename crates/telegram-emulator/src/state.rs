//! The emulator's in-memory state: users, bots, chats and their transcripts.
//!
//! Why this exists: the Bot API methods, the control API and the webhook engine all act on the
//! same world. Locks are deliberately fine-grained — one `RwLock` for the chat directory of a bot,
//! one `Mutex` per chat, one for the update queue — so that thousands of concurrent `sendMessage`
//! calls to different chats do not serialise on a global lock. No lock is held across an `.await`.
//! Every collection is bounded by [`crate::config::Limits`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{Notify, watch};

use crate::clock::Clock;
use crate::config::{BotConfig, EmulatorConfig};
use crate::counters::{Counters, bump};
use crate::error::{ApiError, text};
use crate::faults::Faults;
use crate::files::FileStore;
use crate::markup::InlineKeyboard;
use crate::model::{
    BotIdentity, ChatKind, Content, MessageJson, MessageRecord, Sender, UserRecord,
};
use crate::payments::PaymentLedger;
use crate::queries::OpenQueries;
use crate::ratelimit::{TokenBucket, retry_after_secs};
use crate::rng::Rng;
use crate::updates::{UpdateState, UpdateType};

/// Locks a mutex, recovering the data if another thread panicked while holding it (the state
/// stays usable; a panic is a bug that tests will show anyway).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State shared by all bots of one emulator.
#[derive(Debug)]
pub struct Shared {
    /// The configuration it was started with.
    pub config: EmulatorConfig,
    /// Emulated time.
    pub clock: Clock,
    /// Seeded randomness.
    pub rng: Rng,
    /// All users.
    pub users: Users,
    /// Uploaded photos.
    pub files: FileStore,
    /// Becomes `true` when the emulator shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// The user directory.
#[derive(Debug)]
pub struct Users {
    map: RwLock<HashMap<i64, Arc<UserRecord>>>,
    next_auto_id: AtomicI64,
}

impl Default for Users {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            next_auto_id: AtomicI64::new(100_000_001),
        }
    }
}

impl Users {
    /// The user with this id.
    pub fn get(&self, id: i64) -> Option<Arc<UserRecord>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// All users, ordered by id (bounded by `max_users`).
    pub fn list(&self) -> Vec<Arc<UserRecord>> {
        let mut users: Vec<_> = self
            .map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        users.sort_by_key(|u| u.id);
        users
    }

    /// A fresh id for a user created without one.
    pub fn next_id(&self) -> i64 {
        loop {
            let id = self.next_auto_id.fetch_add(1, Ordering::Relaxed);
            if self.get(id).is_none() {
                return id;
            }
        }
    }

    /// Adds a user; errors if the id is taken or the directory is full.
    pub fn insert(&self, user: UserRecord, max_users: usize) -> Result<Arc<UserRecord>, String> {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(&user.id) {
            return Err(format!("user {} already exists", user.id));
        }
        if map.len() >= max_users {
            return Err(format!(
                "the emulator holds at most {max_users} users (limits.max_users)"
            ));
        }
        let user = Arc::new(user);
        map.insert(user.id, user.clone());
        Ok(user)
    }
}

/// One chat of one bot.
#[derive(Debug)]
pub struct ChatState {
    /// Chat id (the user id for private chats, negative for groups).
    pub id: i64,
    /// Private or group.
    pub kind: ChatKind,
    /// Mutable part.
    pub inner: Mutex<ChatInner>,
    /// Incremented on every change of the transcript; waiters (control API, web page) watch it.
    pub changes: watch::Sender<u64>,
}

/// The mutable part of a chat.
#[derive(Debug)]
pub struct ChatInner {
    /// Next message id.
    pub next_message_id: i64,
    /// Transcript, oldest first, bounded.
    pub messages: VecDeque<Arc<MessageRecord>>,
    /// The user has started the bot (a private chat exists from the bot's point of view).
    pub started: bool,
    /// The user has blocked the bot.
    pub blocked: bool,
    /// Flood-limit bucket of this chat.
    pub bucket: TokenBucket,
    /// The custom reply keyboard currently shown to the user.
    pub reply_keyboard: Option<Value>,
    /// The last chat action and when (emulated Unix time).
    pub last_action: Option<(String, i64)>,
    /// Transcript version.
    pub version: u64,
    /// Group members (user ids).
    pub members: Vec<i64>,
}

impl ChatInner {
    /// Position of a message in the transcript.
    pub fn position(&self, message_id: i64) -> Option<usize> {
        self.messages
            .binary_search_by_key(&message_id, |m| m.message_id)
            .ok()
    }

    /// A live (not deleted) message.
    pub fn find(&self, message_id: i64) -> Option<(usize, Arc<MessageRecord>)> {
        let index = self.position(message_id)?;
        let message = self.messages.get(index)?;
        (!message.deleted).then(|| (index, message.clone()))
    }

    fn push(&mut self, record: Arc<MessageRecord>, retention: usize) {
        self.messages.push_back(record);
        while self.messages.len() > retention {
            self.messages.pop_front();
        }
        self.version += 1;
    }
}

impl ChatState {
    fn new(id: i64, kind: ChatKind, started: bool, burst: f64, members: Vec<i64>) -> Self {
        let (changes, _) = watch::channel(0);
        Self {
            id,
            kind,
            inner: Mutex::new(ChatInner {
                next_message_id: 1,
                messages: VecDeque::new(),
                started,
                blocked: false,
                bucket: TokenBucket::full(burst),
                reply_keyboard: None,
                last_action: None,
                version: 0,
                members,
            }),
            changes,
        }
    }

    /// Publishes a new transcript version to waiters.
    pub fn publish(&self, version: u64) {
        self.changes.send_if_modified(|current| {
            if *current < version {
                *current = version;
                true
            } else {
                false
            }
        });
    }

    /// The private chat's user.
    pub fn private_user(&self) -> Option<&Arc<UserRecord>> {
        match &self.kind {
            ChatKind::Private(user) => Some(user),
            ChatKind::Group { .. } => None,
        }
    }
}

/// Everything about one emulated bot.
#[derive(Debug)]
pub struct BotState {
    /// Shared emulator state.
    pub shared: Arc<Shared>,
    /// The bot user.
    pub identity: BotIdentity,
    /// Its token.
    pub token: String,
    chats: RwLock<HashMap<i64, Arc<ChatState>>>,
    group_count: AtomicUsize,
    /// Update queue, webhook settings and poller.
    pub updates: Mutex<UpdateState>,
    /// Woken when an update is queued (long polls wait on it).
    pub updates_arrived: Notify,
    /// Woken when the webhook engine has something to do.
    pub webhook_kick: Notify,
    /// Counters.
    pub counters: Counters,
    /// Injected faults.
    pub faults: Faults,
    /// When set, webhook deliveries fail as if the endpoint refused connections.
    pub webhook_unreachable: AtomicBool,
    /// When set, `getStarTransactions` lists newest first instead of the documented
    /// chronological order, so a reconciler can be shown not to depend on the order.
    pub star_transactions_newest_first: AtomicBool,
    global_bucket: Mutex<TokenBucket>,
    paid_bucket: Mutex<TokenBucket>,
    /// Open callback and pre-checkout queries.
    pub queries: Mutex<OpenQueries>,
    /// Invoice links, charges and Star transactions.
    pub payments: Mutex<PaymentLedger>,
    /// Commands set with setMyCommands, keyed by scope and language.
    pub commands: Mutex<Vec<CommandSet>>,
}

/// Commands for one scope and language.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandSet {
    /// The scope as normalised JSON (`{"type":"default"}` by default).
    pub scope: Value,
    /// Language code, empty for all languages.
    pub language_code: String,
    /// `[{command, description}]`.
    pub commands: Vec<Value>,
}

/// Most command sets kept per bot.
pub const MAX_COMMAND_SETS: usize = 256;

impl BotState {
    /// A bot with no chats yet.
    pub fn new(shared: Arc<Shared>, config: &BotConfig) -> Self {
        let rl = &shared.config.rate_limits;
        let first_update_id =
            100_000_000 + i64::try_from(shared.rng.next_u64() % 100_000_000).unwrap_or(0);
        Self {
            identity: BotIdentity {
                id: config.id().unwrap_or(0),
                first_name: config.first_name.clone(),
                username: config.username.clone(),
            },
            token: config.token.clone(),
            chats: RwLock::new(HashMap::new()),
            group_count: AtomicUsize::new(0),
            updates: Mutex::new(UpdateState::new(first_update_id)),
            updates_arrived: Notify::new(),
            webhook_kick: Notify::new(),
            counters: Counters::default(),
            faults: Faults::default(),
            webhook_unreachable: AtomicBool::new(false),
            star_transactions_newest_first: AtomicBool::new(false),
            global_bucket: Mutex::new(TokenBucket::full(rl.global_burst)),
            paid_bucket: Mutex::new(TokenBucket::full(rl.paid_broadcast_per_sec)),
            queries: Mutex::new(OpenQueries::default()),
            payments: Mutex::new(PaymentLedger::default()),
            commands: Mutex::new(Vec::new()),
            shared,
        }
    }

    /// The chat with this id.
    pub fn chat(&self, id: i64) -> Option<Arc<ChatState>> {
        self.chats
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
    }

    /// All chats (bounded by users + groups).
    pub fn chats(&self) -> Vec<Arc<ChatState>> {
        self.chats
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Creates the private chat with a new user.
    pub fn add_private_chat(&self, user: Arc<UserRecord>, started: bool) {
        let burst = self.shared.config.rate_limits.per_chat_burst;
        let chat = Arc::new(ChatState::new(
            user.id,
            ChatKind::Private(user),
            started,
            burst,
            Vec::new(),
        ));
        self.chats
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(chat.id, chat);
    }

    /// Creates a group with the bot as a member.
    pub fn add_group(
        &self,
        id: i64,
        title: String,
        members: Vec<i64>,
    ) -> Result<Arc<ChatState>, String> {
        let max = self.shared.config.limits.max_groups;
        let mut chats = self.chats.write().unwrap_or_else(PoisonError::into_inner);
        if chats.contains_key(&id) {
            return Err(format!("chat {id} already exists"));
        }
        if self.group_count.load(Ordering::Relaxed) >= max {
            return Err(format!("at most {max} groups per bot (limits.max_groups)"));
        }
        self.group_count.fetch_add(1, Ordering::Relaxed);
        let burst = self.shared.config.rate_limits.group_burst;
        let chat = Arc::new(ChatState::new(
            id,
            ChatKind::Group { title },
            true,
            burst,
            members,
        ));
        chats.insert(id, chat.clone());
        Ok(chat)
    }

    /// Resolves a `chat_id` argument like TBA's `check_chat`.
    pub fn target_chat(&self, chat_id: &str) -> Result<Arc<ChatState>, ApiError> {
        if chat_id.is_empty() {
            return Err(ApiError::bad_request_static(text::CHAT_ID_EMPTY));
        }
        if chat_id.starts_with('@') {
            // Only public groups and channels have @usernames usable here; the emulator has none.
            return Err(ApiError::bad_request_static(text::CHAT_NOT_FOUND));
        }
        let id = crate::params::lenient_int(chat_id);
        self.chat(id)
            .ok_or_else(|| ApiError::bad_request_static(text::CHAT_NOT_FOUND))
    }

    /// Whether the bot may send to this chat now (blocked / never started).
    pub fn check_writable(chat: &ChatState, inner: &ChatInner) -> Result<(), ApiError> {
        if inner.blocked {
            return Err(ApiError::forbidden(text::BOT_BLOCKED));
        }
        if !inner.started && matches!(chat.kind, ChatKind::Private(_)) {
            return Err(ApiError::forbidden(text::CANT_INITIATE));
        }
        Ok(())
    }

    /// Applies the flood limits for one message to `chat`; takes the tokens only on success.
    fn check_flood(
        &self,
        chat: &ChatState,
        inner: &mut ChatInner,
        paid_broadcast: bool,
    ) -> Result<(), ApiError> {
        let rl = &self.shared.config.rate_limits;
        if !rl.enabled {
            return Ok(());
        }
        let now = Instant::now();
        let (rate, burst) = match chat.kind {
            ChatKind::Private(_) => (rl.per_chat_per_sec, rl.per_chat_burst),
            ChatKind::Group { .. } => (rl.group_per_min / 60.0, rl.group_burst),
        };
        let chat_wait = inner.bucket.wait_secs(now, rate, burst);
        let (bucket, global_rate, global_burst) = if paid_broadcast {
            (
                &self.paid_bucket,
                rl.paid_broadcast_per_sec,
                rl.paid_broadcast_per_sec,
            )
        } else {
            (&self.global_bucket, rl.global_per_sec, rl.global_burst)
        };
        let mut global = lock(bucket);
        let global_wait = global.wait_secs(now, global_rate, global_burst);
        let wait = chat_wait.max(global_wait);
        if wait > 0.0 {
            return Err(ApiError::too_many_requests(retry_after_secs(wait)));
        }
        inner.bucket.take();
        global.take();
        Ok(())
    }

    /// Stores a message sent by the bot, after the writability and flood checks.
    pub fn store_bot_message(
        &self,
        chat: &ChatState,
        content: Content,
        reply_markup: Option<InlineKeyboard>,
        reply_keyboard: Option<Option<Value>>,
        reply_to_message_id: Option<(i64, bool)>,
        paid_broadcast: bool,
    ) -> Result<Arc<MessageRecord>, ApiError> {
        let retention = self.shared.config.limits.transcript_messages_per_chat;
        let date = self.shared.clock.now_secs();
        let (record, version) = {
            let mut inner = lock(&chat.inner);
            Self::check_writable(chat, &inner)?;
            let reply_to = match reply_to_message_id {
                Some((id, allow_without)) => match inner.find(id) {
                    Some((_, message)) => Some(message),
                    None if allow_without => None,
                    None => {
                        return Err(ApiError::bad_request("message to be replied not found"));
                    }
                },
                None => None,
            };
            self.check_flood(chat, &mut inner, paid_broadcast)?;
            let record = Arc::new(MessageRecord {
                message_id: inner.next_message_id,
                sender: Sender::Bot,
                date,
                edit_date: None,
                content,
                reply_markup,
                reply_to,
                deleted: false,
                edit_count: 0,
                paid_by_charge: None,
            });
            inner.next_message_id += 1;
            if let Some(keyboard) = reply_keyboard {
                inner.reply_keyboard = keyboard;
            }
            inner.push(record.clone(), retention);
            (record, inner.version)
        };
        chat.publish(version);
        bump(&self.counters.messages_sent);
        if paid_broadcast {
            bump(&self.counters.paid_broadcast_messages);
        }
        Ok(record)
    }

    /// Stores a message written by a user (or a service message attributed to the user) and
    /// queues the `message` update for the bot. Returns the record and the update id.
    pub fn store_user_message(
        &self,
        chat: &ChatState,
        user: Arc<UserRecord>,
        content: Content,
        reply_to_message_id: Option<i64>,
    ) -> Result<(Arc<MessageRecord>, Option<i64>), String> {
        let retention = self.shared.config.limits.transcript_messages_per_chat;
        let date = self.shared.clock.now_secs();
        let (record, version) = {
            let mut inner = lock(&chat.inner);
            if inner.blocked {
                return Err(format!(
                    "user {} has blocked the bot; unblock it first (as pressing \"Restart\" would)",
                    user.id
                ));
            }
            let reply_to = match reply_to_message_id {
                Some(id) => Some(
                    inner
                        .find(id)
                        .map(|(_, m)| m)
                        .ok_or_else(|| format!("message {id} not found in chat {}", chat.id))?,
                ),
                None => None,
            };
            // A user can only write to a bot after starting it (the client sends /start).
            inner.started = true;
            let record = Arc::new(MessageRecord {
                message_id: inner.next_message_id,
                sender: Sender::User(user),
                date,
                edit_date: None,
                content,
                reply_markup: None,
                reply_to,
                deleted: false,
                edit_count: 0,
                paid_by_charge: None,
            });
            inner.next_message_id += 1;
            inner.push(record.clone(), retention);
            (record, inner.version)
        };
        chat.publish(version);
        let body = format!("\"message\":{}", self.message_json(chat, &record));
        let lifetime = u32::try_from((record.date + 86_400 - self.shared.clock.now_secs()).max(1))
            .unwrap_or(86_400);
        let update_id = self.push_update(UpdateType::Message, body, chat.id, lifetime);
        Ok((record, update_id))
    }

    /// Replaces a message (edit, delete, paid invoice) and publishes the change.
    pub fn replace_message(&self, chat: &ChatState, index: usize, record: Arc<MessageRecord>) {
        let version = {
            let mut inner = lock(&chat.inner);
            if let Some(slot) = inner.messages.get_mut(index)
                && slot.message_id == record.message_id
            {
                *slot = record;
            }
            inner.version += 1;
            inner.version
        };
        chat.publish(version);
    }

    /// Bumps the transcript version of a chat without changing messages (chat actions, blocks).
    pub fn touch(&self, chat: &ChatState, change: impl FnOnce(&mut ChatInner)) {
        let version = {
            let mut inner = lock(&chat.inner);
            change(&mut inner);
            inner.version += 1;
            inner.version
        };
        chat.publish(version);
    }

    /// The Bot API JSON of a message of `chat`.
    pub fn message_json(&self, chat: &ChatState, record: &MessageRecord) -> String {
        serde_json::to_string(&MessageJson {
            record,
            chat_id: chat.id,
            chat: &chat.kind,
            bot: &self.identity,
            with_reply: true,
        })
        .unwrap_or_else(|_| "{}".to_owned())
    }

    /// Queues an update unless `allowed_updates` excludes its type. `body` is the update's field
    /// without braces, e.g. `"message":{…}`; `lifetime_secs` is how long it may wait for delivery.
    /// Returns the update id.
    pub fn push_update(
        &self,
        kind: UpdateType,
        body: String,
        queue_id: i64,
        lifetime_secs: u32,
    ) -> Option<i64> {
        let now = self.shared.clock.now_ms();
        let max = self.shared.config.limits.max_pending_updates;
        let id = {
            let mut updates = lock(&self.updates);
            updates.push(
                kind,
                body,
                queue_id,
                now,
                lifetime_secs,
                max,
                &self.counters,
            )
        };
        if id.is_some() {
            self.updates_arrived.notify_waiters();
            self.webhook_kick.notify_one();
        }
        id
    }
}
