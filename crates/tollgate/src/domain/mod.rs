//! Pure rules with no I/O: money, currencies, periods, the runtime flags' names. Everything here is deterministic and
//! unit-tested without a database, so the money math can be trusted wherever it is used.

pub mod address_set;
pub mod flag;
pub mod money;
pub mod receipt_contact;

/// Longest single grant of access: ten years (a plan, a gift, an admin's grant).
pub const MAX_GRANT_DAYS: u32 = 3650;
