//! Injected faults: the next N calls of a method answer HTTP 500, or hang, on purpose.
//!
//! Why this exists: the hardest cases are a provider that is down or hanging while an
//! invoice is created — the bot must give a clear "try again", leave nothing half-made, and not
//! create a second invoice on retry. A test can only show that if it can make the failure
//! happen on demand, and "executed, then 500" is the case idempotence keys exist for.

use std::time::Duration;

use crate::model::FaultKind;
use crate::state::App;

/// Crypto Pay methods the emulator serves (fault names are the method names).
pub const CRYPTOPAY_METHODS: &[&str] = &[
    "getMe",
    "createInvoice",
    "getInvoices",
    "deleteInvoice",
    "getExchangeRates",
];

/// YooKassa operations the emulator serves, as fault names.
pub const YOOKASSA_OPERATIONS: &[&str] = &[
    "me",
    "payments.create",
    "payments.get",
    "payments.list",
    "payments.capture",
    "payments.cancel",
    "refunds.create",
    "refunds.get",
    "refunds.list",
];

/// Whether `method` names something a fault can apply to.
pub fn is_known(method: &str) -> bool {
    method == "*" || CRYPTOPAY_METHODS.contains(&method) || YOOKASSA_OPERATIONS.contains(&method)
}

/// What a call does after consulting the fault queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Execute and answer normally.
    Proceed,
    /// Answer 500 without executing.
    FailNow,
    /// Execute, then answer 500.
    FailAfter,
}

/// Takes the next fault for `method`, hanging here if it says so.
pub async fn apply(app: &App, method: &str) -> Outcome {
    let fault = app.lock().take_fault(method);
    match fault {
        None => Outcome::Proceed,
        Some(FaultKind::ServerError) => Outcome::FailNow,
        Some(FaultKind::ServerErrorAfterExecuting) => Outcome::FailAfter,
        Some(FaultKind::Hang { ms }) => {
            let mut shutdown = app.shutdown.clone();
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = shutdown.wait_for(|stop| *stop) => {}
            }
            Outcome::Proceed
        }
    }
}
