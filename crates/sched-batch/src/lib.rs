//! Puts the calling thread in Linux's `SCHED_BATCH` scheduling policy.
//!
//! Why: the service's async workers hand every SQLite statement to the connection's own
//! thread and are woken when it answers. Under the default policy a woken worker preempts the
//! connection's thread on the spot, before that thread has gone back to waiting for the next
//! statement; each round trip then costs extra context switches, and the one writer
//! connection, which every write queues for, stays held longer (BENCHMARKS.md, "The sender
//! read beside the writer"). A `SCHED_BATCH` thread is scheduled like
//! any other (same time slices, its nice value unchanged) except that waking it never
//! preempts the running thread.
//!
//! The workspace forbids `unsafe`; this crate holds the two calls that need it, so that the
//! exception is small and in one place.
#![allow(unsafe_code)]

use std::io;

/// Moves the calling thread to `SCHED_BATCH`, keeping its nice value. Unprivileged: any
/// thread may choose it for itself. On systems other than Linux, does nothing.
pub fn set_current_thread() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid `sched_param` that outlives the call, and pid 0 names the
        // calling thread; the call reads `param` and changes nothing else.
        let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether the calling thread runs under `SCHED_BATCH` (always `false` off Linux).
pub fn current_thread_is_batch() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: takes a pid (0: the calling thread) and returns the policy or -1.
        let policy = unsafe { libc::sched_getscheduler(0) };
        policy == libc::SCHED_BATCH
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn a_thread_moves_itself_to_batch_and_others_are_left_alone() {
        let moved = std::thread::spawn(|| {
            let before = current_thread_is_batch();
            set_current_thread().map(|()| (before, current_thread_is_batch()))
        })
        .join()
        .expect("the thread ran");
        assert_eq!(
            moved.expect("SCHED_BATCH is allowed to any thread"),
            (false, true)
        );
        assert!(!current_thread_is_batch(), "only the calling thread moved");
    }
}
