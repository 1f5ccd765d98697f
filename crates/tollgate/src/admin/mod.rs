//! The operator's side: what admins did (`audit`) and what their next text answers
//! (`prompts`).
//!
//! The console's screens live in the bot; this module owns the two tables they write besides
//! the owners' own, so that every admin action can be recorded in its own transaction by
//! whoever carries it out — a button in Telegram or `tollgate flags set` on the command line.

pub mod audit;
pub mod prompts;

pub use audit::{Actor, AuditAction, AuditEntry, AuditFilter, AuditRecord};
