//! Tollgate: a Telegram bot that sells VPN subscriptions and keeps every paying user's
//! access provisioned on Xray/V2Ray nodes.
//!
//! The modules follow the data's path (see ARCHITECTURE.md). Each owns its tables and
//! exposes a small API; nothing reaches into another module's tables.

pub mod access;
pub mod action;
pub mod admin;
pub mod alerts;
pub mod app;
pub mod audience;
pub mod backoff;
pub mod backup;
pub mod billing;
pub mod bot;
pub mod broadcast;
pub mod config;
pub mod domain;
pub mod flags;
pub mod housekeeping;
pub mod http;
pub mod i18n;
pub mod import;
pub mod jobs;
pub mod lease;
pub mod metrics;
pub mod nodes;
pub mod qr;
pub mod sandbox;
pub mod services;
pub mod shutdown;
pub mod store;
pub mod supervisor;
pub mod telegram;
pub mod telemetry;
pub mod time;
pub mod users;
