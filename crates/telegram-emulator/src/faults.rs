//! Injected faults: the next N calls of a method fail in a chosen way.
//!
//! Why this exists: Telegram does fail — 5xx from its front-ends, requests that hang, 429 floods,
//! connections dropped mid-response. Tollgate's sender and poller must survive each of these
//! without losing or duplicating work, and a test can only prove that if it can make the failure
//! happen on demand. Faults are consumed in the order they were injected.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::methods::Method;

/// Most faults that can be queued at once per bot.
pub const MAX_QUEUED_FAULTS: usize = 1_000;

/// How an affected call fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// `500 {"ok":false,"error_code":500,"description":"Internal Server Error"}`.
    ServerError,
    /// `502 Bad Gateway` with an HTML body, as Telegram's nginx front-end answers.
    BadGateway,
    /// The request is held without an answer (until the client gives up, or the emulator's
    /// `hang_duration`, or shutdown). Nothing is executed.
    Hang,
    /// `429 Too Many Requests: retry after N`. Nothing is executed.
    TooManyRequests {
        /// The announced `retry_after`.
        retry_after: u32,
    },
    /// The connection is closed after the status line, before a complete body.
    DropConnection,
}

/// A fault waiting to fire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultSpec {
    /// The method it applies to; `None` for every method.
    pub method: Option<Method>,
    /// How the call fails.
    pub fault: FaultKind,
    /// How many more calls it affects.
    pub remaining: u32,
}

/// The queue of injected faults of one bot.
#[derive(Debug, Default)]
pub struct Faults {
    queued: Mutex<Vec<FaultSpec>>,
    active: AtomicUsize,
}

impl Faults {
    /// Queues a fault. Errors when too many are queued.
    pub fn inject(&self, spec: FaultSpec) -> Result<(), String> {
        if spec.remaining == 0 {
            return Ok(());
        }
        let mut queued = self.lock();
        if queued.len() >= MAX_QUEUED_FAULTS {
            return Err(format!("at most {MAX_QUEUED_FAULTS} faults can be queued"));
        }
        queued.push(spec);
        self.active.store(queued.len(), Ordering::Release);
        Ok(())
    }

    /// Removes every queued fault.
    pub fn clear(&self) {
        let mut queued = self.lock();
        queued.clear();
        self.active.store(0, Ordering::Release);
    }

    /// The queued faults.
    pub fn list(&self) -> Vec<FaultSpec> {
        self.lock().clone()
    }

    /// Consumes one fault for a call of `method`, if one applies. Cheap when nothing is queued.
    pub fn take(&self, method: Method) -> Option<FaultKind> {
        if self.active.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut queued = self.lock();
        let index = queued
            .iter()
            .position(|f| f.method.is_none_or(|m| m == method))?;
        let fault = queued[index].fault.clone();
        queued[index].remaining -= 1;
        if queued[index].remaining == 0 {
            queued.remove(index);
        }
        self.active.store(queued.len(), Ordering::Release);
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultSpec>> {
        self.queued
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_count_times_in_order() {
        let faults = Faults::default();
        faults
            .inject(FaultSpec {
                method: Some(Method::SendMessage),
                fault: FaultKind::ServerError,
                remaining: 2,
            })
            .unwrap();
        faults
            .inject(FaultSpec {
                method: None,
                fault: FaultKind::Hang,
                remaining: 1,
            })
            .unwrap();
        assert_eq!(faults.take(Method::GetMe), Some(FaultKind::Hang));
        assert_eq!(faults.take(Method::GetMe), None);
        assert_eq!(
            faults.take(Method::SendMessage),
            Some(FaultKind::ServerError)
        );
        assert_eq!(
            faults.take(Method::SendMessage),
            Some(FaultKind::ServerError)
        );
        assert_eq!(faults.take(Method::SendMessage), None);
    }
}
