//! Debug builds catch a task that asks for the writer while it holds the writer's transaction.
//!
//! The writer is one connection, and a [`SqliteTx`](super::SqliteTx) holds it until the
//! transaction ends. A task that holds one and then runs a statement that needs the writer
//! through the [`SqliteDb`](super::SqliteDb) (or begins a second transaction) waits for
//! itself: it stalls until the acquire timeout and fails with `PoolTimedOut`, which under load
//! looks like any other timeout. PostgreSQL's pool hides the mistake until the pool is full.
//!
//! So in debug builds (tests included) a transaction records the task that began it (the
//! thread, outside a task), and a wait for the writer that times out in that same task panics
//! with a message that names the rule, instead of returning `PoolTimedOut`. Release builds
//! record nothing and check nothing: these types are empty there.
//!
//! Why at the timeout, not as soon as the task asks: futures joined in one task (a batch's
//! workers, a test's concurrent payers) each take the writer in turn, and one of them waiting
//! while another holds the transaction is no deadlock; that wait ends with the other's commit.
//! A task that waits for itself never gets the writer, so its wait always ends at the timeout.
//!
//! What it cannot see: a transaction handed to another task after it began is still recorded
//! as its first task's, and a read that goes to a reader is allowed (it does not wait for the
//! writer).

#[cfg(debug_assertions)]
pub(super) use checked::{TxOwner, TxOwnerMark};
#[cfg(not(debug_assertions))]
pub(super) use unchecked::{TxOwner, TxOwnerMark};

#[cfg(debug_assertions)]
mod checked {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::thread::ThreadId;

    /// Who holds the writer's transaction: a task, or a thread outside any task (a
    /// `block_on`, such as a `#[tokio::test]` body).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Holder {
        Task(tokio::task::Id),
        Thread(ThreadId),
    }

    impl Holder {
        fn current() -> Holder {
            match tokio::task::try_id() {
                Some(id) => Holder::Task(id),
                None => Holder::Thread(std::thread::current().id()),
            }
        }
    }

    #[derive(Debug, Default)]
    struct State {
        /// The open transaction's holder, with the ticket of its mark.
        held: Mutex<Option<(Holder, u64)>>,
        tickets: AtomicU64,
    }

    /// The holder of the writer's open transaction, if any.
    #[derive(Debug, Default)]
    pub(in crate::store::sqlite) struct TxOwner {
        state: Arc<State>,
    }

    impl TxOwner {
        pub(in crate::store::sqlite) fn new() -> TxOwner {
            TxOwner::default()
        }

        /// Records the current task as the transaction's holder until the mark is dropped.
        pub(in crate::store::sqlite) fn mark(&self) -> TxOwnerMark {
            let ticket = self.state.tickets.fetch_add(1, Ordering::Relaxed);
            let mut held = self
                .state
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *held = Some((Holder::current(), ticket));
            TxOwnerMark {
                state: self.state.clone(),
                ticket,
            }
        }

        /// Panics when the current task holds the writer's transaction: called when a wait
        /// for the writer timed out, which then was a wait for this task's own transaction.
        pub(in crate::store::sqlite) fn check_not_held_here(&self) {
            let held = *self
                .state
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if held.is_some_and(|(holder, _)| holder == Holder::current()) {
                panic!(
                    "this task waited for the SQLite writer while it holds a transaction on it, \
                     that is for itself, until the acquire timeout: never use the Db while a Tx \
                     is held — run the statement in the transaction, or read before it begins \
                     (store/sqlite/self_wait.rs)"
                );
            }
        }
    }

    /// Clears the holder when the transaction ends, unless a newer transaction marked it.
    #[derive(Debug)]
    pub(in crate::store::sqlite) struct TxOwnerMark {
        state: Arc<State>,
        ticket: u64,
    }

    impl Drop for TxOwnerMark {
        fn drop(&mut self) {
            let mut held = self
                .state
                .held
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if held.is_some_and(|(_, ticket)| ticket == self.ticket) {
                *held = None;
            }
        }
    }
}

#[cfg(not(debug_assertions))]
mod unchecked {
    /// Release builds: nothing recorded (see the module's doc).
    #[derive(Debug)]
    pub(in crate::store::sqlite) struct TxOwner;

    impl TxOwner {
        pub(in crate::store::sqlite) fn new() -> TxOwner {
            TxOwner
        }

        pub(in crate::store::sqlite) fn mark(&self) -> TxOwnerMark {
            TxOwnerMark
        }

        pub(in crate::store::sqlite) fn check_not_held_here(&self) {}
    }

    #[derive(Debug)]
    pub(in crate::store::sqlite) struct TxOwnerMark;
}
