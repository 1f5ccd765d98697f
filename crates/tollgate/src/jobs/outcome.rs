//! How a job's iteration ended: a closed set, the `outcome` label of the jobs' metrics and log
//! lines. A module of its own so that the metric families (`jobs::metrics`, gathered by the
//! process's registry below the jobs) can name it without depending on the runner.

/// How an iteration ended (the `outcome` label; a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Error,
    Panic,
    Deadline,
    /// Its runtime flag is off.
    FlagOff,
    /// A singleton whose lease another replica holds.
    NotLeader,
    /// Shutdown cut the iteration: it had not returned within `jobs::SHUTDOWN_GRACE`.
    Stopped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Panic => "panic",
            Outcome::Deadline => "deadline",
            Outcome::FlagOff => "flag_off",
            Outcome::NotLeader => "not_leader",
            Outcome::Stopped => "stopped",
        }
    }

    pub(super) fn failed(self) -> bool {
        matches!(self, Outcome::Error | Outcome::Panic | Outcome::Deadline)
    }
}
