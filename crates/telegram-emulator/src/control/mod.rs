//! The control API: acting as users and observing the emulator.
//!
//! Why this exists: a test (or a person in the web page) must be able to do what Telegram users
//! do — write to the bot, press buttons, pay, block it — and to see what the bot did, inject
//! failures and move time, without any Telegram. The API is plain HTTP + JSON under `/control`
//! so that it also works against a separately running `telegram-emulator` process;
//! [`ControlClient`] is its typed Rust client.

pub mod client;
pub mod server;
pub mod types;

pub use client::{BotApiResponse, ControlClient, ControlError};
