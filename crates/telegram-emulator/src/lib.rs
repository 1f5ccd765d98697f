//! # telegram-emulator
//!
//! A local emulator of the Telegram Bot API: the test double of every end-to-end, reliability and
//! benchmark test of Tollgate, and the back-end of `tollgate sandbox`.
//!
//! Why it exists: there is no network in tests, and a mock that always answers "ok" hides exactly
//! the failures that hurt in production — 429 floods, stale callback queries, webhook
//! redeliveries, 409 conflicts, blocked users. The emulator behaves like the real Bot API server
//! (error texts, status codes, webhook retry schedule, flood limits, the Stars payment flow), so
//! code that passes against it works against Telegram.
//!
//! ```no_run
//! use std::time::Duration;
//! use telegram_emulator::{Emulator, EmulatorConfig, MessageFilter, NewUser};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let emulator = Emulator::start(EmulatorConfig::default()).await?;
//! // Point the bot under test at emulator.api_url() with token emulator.token().
//! let control = emulator.client();
//! let alice = control.create_user(NewUser::new("Alice").language("en")).await?;
//! control.send_text(alice.id, "/start ref_42").await?;
//! let reply = control
//!     .wait_for_message(alice.id, MessageFilter::from_bot(), Duration::from_secs(5))
//!     .await?;
//! if let Some(data) = reply.callback_buttons().first().map(|(_, d)| d.clone()) {
//!     control.press_button(alice.id, reply.message_id, &data).await?;
//! }
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Modules, following a request's path: [`server`] starts everything; [`bot_api`] serves
//! `/bot<token>/<method>` using [`params`], [`entities`], [`markup`], [`state`], [`updates`],
//! [`webhook`], [`payments`], [`queries`], [`ratelimit`], [`faults`]; [`control`] is the control
//! API and its client; [`web`] is the chat page.

pub mod bot_api;
pub mod clock;
pub mod config;
pub mod control;
pub mod counters;
pub mod entities;
pub mod error;
pub mod faults;
pub mod files;
pub mod markup;
pub mod methods;
pub mod model;
pub mod params;
pub mod payments;
pub mod queries;
pub mod ratelimit;
pub mod rng;
pub mod server;
pub mod state;
pub mod updates;
pub mod web;
pub mod webhook;

pub use config::{BotConfig, EmulatorConfig, Limits, RateLimitConfig, WebhookConfig};
pub use control::types::{
    CallbackAnswer, CallbackOutcome, Counters, FaultKind, MessageFilter, NewUser, PaymentOutcome,
    PaymentStatus, Transcript, TranscriptMessage, User,
};
pub use control::{BotApiResponse, ControlClient, ControlError};
pub use methods::Method;
pub use server::{Emulator, RunningEmulator, StartError};
