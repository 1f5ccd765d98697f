//! The control API (`/control/...`): what tests and the sandbox do to the emulated providers —
//! pay, cancel or expire, fail calls, shape notifications, read everything back — and its typed
//! client.
//!
//! Why over HTTP: the same client drives an in-process emulator and a `payment-emulator`
//! process, so a test and a person at the sandbox use one surface.

pub mod client;
pub mod server;

pub use client::{ControlClient, ControlError};
