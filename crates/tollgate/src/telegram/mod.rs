//! The Telegram pipeline (docs/design.md §3.1, §3.2).
//!
//! Updates in: intake (webhook or poller) → `inbox` (durable, deduplicated by `update_id`)
//! → `dispatcher` (claims, per-chat order, deadlines, retries, dead letters) → a `Handler`.
//! Messages out: `outbox` rows written in business transactions → `sender` (one per
//! deployment, global and per-chat pacing, 429 pauses, retries). `api` is the Bot API client
//! both directions use.

pub mod api;
pub mod dispatcher;
pub mod echo;
pub mod inbox;
pub mod metrics;
pub mod outbox;
pub mod poller;
pub mod sender;
pub mod update;
pub mod webhook;
