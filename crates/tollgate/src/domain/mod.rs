//! Pure rules with no I/O: money, currencies, periods. Everything here is deterministic and
//! unit-tested without a database, so the money math can be trusted wherever it is used.

pub mod money;
