//! What the agent does: keep the core's users equal to its stored set, one change at a time.
//!
//! Ordering rule, so the stored set is always a superset of what the core serves (the agent's
//! list never hides a user who has access):
//! * **add**: store the user first (intent), then add it on the core. If the core is
//!   unreachable the user stays stored and is applied when the core is back (503 says so);
//!   if the core refuses, the new row is rolled back.
//! * **remove**: remove from the core first, then delete the row. If the core is unreachable
//!   nothing changes (503) and the caller retries.
//!
//! Concurrency: changes to one email are serialized (striped locks); a converge or a re-apply
//! takes the whole set exclusively so it works on a stable snapshot. Core calls are bounded
//! (see [`crate::core::CoreLink`]) and a bulk operation stops early once the core is gone.
//!
//! Traffic: counters are read with reset (`QueryStats("user>>>", reset=true)`) and the deltas
//! added to the stored totals in one transaction. Deltas that could not be stored are kept in
//! memory and retried with the next collection. The one window that can lose bytes is a crash
//! of the agent between the core's answer and the commit (milliseconds); we accept
//! under-counting there rather than risk double counting (the alternative, keeping
//! per-counter baselines without reset, double counts or loses when a restart and new traffic
//! race). Traffic of a user is dropped with the user.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use tokio::sync::{Mutex, RwLock};

use crate::api::{
    ConvergeRequest, ConvergeResponse, HealthResponse, ListUsersResponse, PutUserResponse,
    RemoveUserResponse, UserEntry,
};
use crate::core::{AddOutcome, CoreError, CoreLink, RemoveOutcome};
use crate::store::{Batch, Store, StoreError, StoredUser};
use crate::validate::{Email, UserSpec, uuid_key};

const LOCK_STRIPES: usize = 64;

/// Why an agent operation failed; maps one-to-one onto HTTP statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// 400: the request is malformed.
    BadRequest(String),
    /// 409: one email ↔ one UUID would be broken.
    Conflict(String),
    /// 503: the core did not answer; retry.
    CoreUnavailable(String),
    /// 502: the core refused (configuration or value).
    CoreRejected(String),
    /// 500: the local state file failed.
    Internal(String),
}

impl From<StoreError> for AgentError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "state file failure");
        AgentError::Internal(format!("state file: {e}"))
    }
}

impl From<CoreError> for AgentError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Unavailable(m) => AgentError::CoreUnavailable(m),
            CoreError::Rejected(m) => AgentError::CoreRejected(m),
        }
    }
}

struct Locks {
    /// Shared by single-user changes, exclusive for converge and re-apply.
    set: RwLock<()>,
    users: Vec<Mutex<()>>,
}

impl Locks {
    fn new() -> Self {
        Locks {
            set: RwLock::new(()),
            users: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn user(&self, email: &Email) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        email.hash(&mut hasher);
        let index = usize::try_from(hasher.finish() % LOCK_STRIPES as u64).unwrap_or(0);
        &self.users[index]
    }
}

#[derive(Default)]
struct Traffic {
    /// Deltas read from the core but not yet committed.
    pending: HashMap<String, (u64, u64)>,
}

/// The agent: stored set + core link.
pub struct Agent {
    store: Store,
    core: CoreLink,
    locks: Locks,
    traffic: Mutex<Traffic>,
}

impl Agent {
    pub fn new(store: Store, core: CoreLink) -> Agent {
        Agent {
            store,
            core,
            locks: Locks::new(),
            traffic: Mutex::new(Traffic::default()),
        }
    }

    pub fn core(&self) -> &CoreLink {
        &self.core
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// `PUT /v1/users/{email}`.
    pub async fn put_user(&self, spec: UserSpec) -> Result<PutUserResponse, AgentError> {
        let _set = self.locks.set.read().await;
        let _user = self.locks.user(&spec.email).lock().await;
        if let Some(holder) = self.store.holder_of(&spec.uuid).await?
            && holder.spec.email != spec.email
        {
            return Err(uuid_conflict(&spec, &holder.spec.email));
        }
        let (created, updated) = match self.store.get(&spec.email).await? {
            Some(current) if current.spec.uuid != spec.uuid => {
                return Err(AgentError::Conflict(format!(
                    "email {} is bound to uuid {} on this node (one email, one uuid): DELETE /v1/users/{} first to give it another uuid",
                    spec.email, current.spec.uuid, spec.email
                )));
            }
            Some(current) if current.spec.same_entry(&spec) => {
                self.add_on_core(&spec).await?;
                (false, false)
            }
            Some(_) => {
                // Same uuid, other flow or level: the core can only replace the entry.
                self.remove_on_core(&spec.email).await?;
                self.add_on_core(&spec).await?;
                self.store.update(&spec).await?;
                (false, true)
            }
            None => {
                if let Err(e) = self.store.insert(&spec).await {
                    if e.is_unique_violation()
                        && let Some(holder) = self.store.holder_of(&spec.uuid).await?
                    {
                        return Err(uuid_conflict(&spec, &holder.spec.email));
                    }
                    return Err(e.into());
                }
                match self.add_new_on_core(&spec).await {
                    Ok(()) => {}
                    Err(CoreError::Rejected(message)) => {
                        self.store.delete(&spec.email).await?;
                        return Err(AgentError::CoreRejected(message));
                    }
                    Err(CoreError::Unavailable(message)) => {
                        return Err(AgentError::CoreUnavailable(format!(
                            "{message}; the user is stored and will be added when the core is back — retry to confirm"
                        )));
                    }
                }
                (true, false)
            }
        };
        Ok(PutUserResponse {
            email: spec.email.to_string(),
            uuid: spec.uuid.to_string(),
            flow: spec.flow.as_str().to_owned(),
            level: spec.level,
            created,
            updated,
        })
    }

    /// Adds a user the agent just stored. If the core already has that email, the entry is
    /// not ours (its uuid is unknown), so it is replaced to make the core hold our uuid.
    async fn add_new_on_core(&self, spec: &UserSpec) -> Result<(), CoreError> {
        match self.core.add(spec).await {
            Ok(AddOutcome::Added) => Ok(()),
            Ok(AddOutcome::AlreadyPresent) => {
                tracing::warn!(email = %spec.email, "the core had an unknown entry for this email: replacing it");
                self.core.remove(&spec.email).await?;
                self.core.add(spec).await.map(drop)
            }
            // An unavailable core has already scheduled a re-apply (CoreLink::observe).
            Err(e) => Err(e),
        }
    }

    async fn add_on_core(&self, spec: &UserSpec) -> Result<(), AgentError> {
        match self.core.add(spec).await {
            Ok(AddOutcome::Added) => {
                tracing::info!(email = %spec.email, "the core was missing a stored user: added it back");
                Ok(())
            }
            Ok(AddOutcome::AlreadyPresent) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_on_core(&self, email: &Email) -> Result<RemoveOutcome, AgentError> {
        Ok(self.core.remove(email).await?)
    }

    /// `DELETE /v1/users/{email}`.
    pub async fn remove_user(&self, email: Email) -> Result<RemoveUserResponse, AgentError> {
        let _set = self.locks.set.read().await;
        let _user = self.locks.user(&email).lock().await;
        let stored = self.store.get(&email).await?;
        match self.core.remove(&email).await {
            Ok(outcome) => {
                let deleted = self.store.delete(&email).await?;
                Ok(RemoveUserResponse {
                    removed: deleted || outcome == RemoveOutcome::Removed,
                })
            }
            // Not stored means not on the core (stored ⊇ core): nothing to wait for.
            Err(_) if stored.is_none() => Ok(RemoveUserResponse { removed: false }),
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /v1/users`: collects traffic first (best effort), then lists.
    pub async fn list_users(&self) -> Result<ListUsersResponse, AgentError> {
        let traffic_fresh = match self.collect_traffic().await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = ?e, "listing with stored traffic totals");
                false
            }
        };
        let users = self.store.all().await?.into_iter().map(entry).collect();
        let status = self.core.status();
        Ok(ListUsersResponse {
            users,
            core_in_sync: status.reachable && status.inbound_verified && !status.resync_pending,
            traffic_fresh,
        })
    }

    /// `PUT /v1/users`: make the node hold exactly these users.
    pub async fn converge(
        &self,
        request: &ConvergeRequest,
    ) -> Result<ConvergeResponse, AgentError> {
        let desired = validate_converge(request).map_err(AgentError::BadRequest)?;
        let _set = self.locks.set.write().await;
        let current: HashMap<Email, StoredUser> = self
            .store
            .all()
            .await?
            .into_iter()
            .map(|u| (u.spec.email.clone(), u))
            .collect();

        let mut plan = Plan::default();
        let wanted: HashSet<&Email> = desired.iter().map(|s| &s.email).collect();
        for user in current.values() {
            if !wanted.contains(&user.spec.email) {
                plan.remove.push(user.spec.email.clone());
            }
        }
        for spec in &desired {
            match current.get(&spec.email) {
                None => plan.add.push(spec.clone()),
                Some(stored) if stored.spec.same_entry(spec) => plan.unchanged.push(spec.clone()),
                Some(stored) => plan.update.push((spec.clone(), stored.clone())),
            }
        }
        let mut report = Failures::default();
        let stop = AtomicBool::new(false);

        // 1. Off the core first: dropped users and the old entries of updated users.
        let leaving: Vec<Email> = plan
            .remove
            .iter()
            .cloned()
            .chain(plan.update.iter().map(|(spec, _)| spec.email.clone()))
            .collect();
        let removed_ok: HashSet<Email> = self
            .bounded(leaving, &stop, |email| async move {
                self.core.remove(&email).await.map(drop)
            })
            .await
            .into_iter()
            .filter_map(|(email, result)| match result {
                Ok(()) => Some(email),
                Err(e) => {
                    report.add(&email, e);
                    None
                }
            })
            .collect();

        // 2. The stored set, in one transaction: deletions, then the new and updated rows whose
        //    uuid is not still held by a user whose removal failed.
        let mut batch = Batch::default();
        batch.delete.extend(removed_ok.iter().cloned());
        let still_held: HashMap<String, &Email> = current
            .values()
            .filter(|u| !removed_ok.contains(&u.spec.email))
            .map(|u| (uuid_key(&u.spec.uuid), &u.spec.email))
            .collect();
        let mut arriving = Vec::new();
        let candidates = plan.add.iter().map(|spec| (spec, None)).chain(
            plan.update
                .iter()
                .filter(|(s, _)| removed_ok.contains(&s.email))
                .map(|(s, old)| (s, Some(old))),
        );
        for (spec, old) in candidates {
            if let Some(holder) = still_held.get(&uuid_key(&spec.uuid))
                && **holder != spec.email
            {
                report.add(
                    &spec.email,
                    CoreError::Unavailable(format!(
                        "uuid {} is still held by {holder}, whose removal failed",
                        spec.uuid
                    )),
                );
                continue;
            }
            batch.insert.push(StoredUser {
                spec: spec.clone(),
                uplink_bytes: old.map_or(0, |o| o.uplink_bytes),
                downlink_bytes: old.map_or(0, |o| o.downlink_bytes),
            });
            arriving.push(spec.clone());
        }
        self.store.apply_batch(&batch).await?;

        // 3. Onto the core: new and updated users. A refused add is rolled back.
        let mut rollback = Batch::default();
        let mut arrived = HashSet::new();
        for (spec, result) in self
            .bounded(arriving, &stop, |spec| async move {
                self.add_new_on_core(&spec).await
            })
            .await
        {
            match result {
                Ok(()) => {
                    arrived.insert(spec.email);
                }
                Err(e) => {
                    if matches!(e, CoreError::Rejected(_)) {
                        rollback.delete.push(spec.email.clone());
                    }
                    report.add(&spec.email, e);
                }
            }
        }
        self.store.apply_batch(&rollback).await?;

        // 4. Re-assert the unchanged users unless asked not to.
        let mut restored = 0;
        if !request.skip_unchanged {
            for (spec, result) in self
                .bounded(plan.unchanged.clone(), &stop, |spec| async move {
                    self.core.add(&spec).await
                })
                .await
            {
                match result {
                    Ok(AddOutcome::Added) => restored += 1,
                    Ok(AddOutcome::AlreadyPresent) => {}
                    Err(e) => report.add(&spec.email, e),
                }
            }
        }

        let response = ConvergeResponse {
            added: count(plan.add.iter().filter(|s| arrived.contains(&s.email))),
            removed: count(plan.remove.iter().filter(|e| removed_ok.contains(*e))),
            updated: count(
                plan.update
                    .iter()
                    .filter(|(s, _)| arrived.contains(&s.email)),
            ),
            unchanged: count(plan.unchanged.iter()),
            restored,
        };
        tracing::info!(?response, failures = report.count, "converge");
        report.into_result(response, desired.len())
    }

    /// Puts every stored user back on the core (idempotent adds). Runs after agent start and
    /// after a detected core restart; holds the set exclusively.
    pub async fn reapply(&self) -> Result<(), AgentError> {
        let _set = self.locks.set.write().await;
        let generation = self.core.begin_resync();
        let users = self.store.all().await?;
        let total = users.len();
        let stop = AtomicBool::new(false);
        let specs: Vec<UserSpec> = users.into_iter().map(|u| u.spec).collect();
        let mut restored = 0;
        let mut report = Failures::default();
        for (spec, result) in self
            .bounded(
                specs,
                &stop,
                |spec| async move { self.core.add(&spec).await },
            )
            .await
        {
            match result {
                Ok(AddOutcome::Added) => restored += 1,
                Ok(AddOutcome::AlreadyPresent) => {}
                Err(e) => report.add(&spec.email, e),
            }
        }
        if report.count == 0 {
            self.core.finish_resync(generation);
            tracing::info!(
                users = total,
                added_back = restored,
                "re-applied the stored users to the core"
            );
            Ok(())
        } else {
            tracing::warn!(users = total, failures = report.count, first = ?report.first, "re-apply incomplete; will retry");
            report.into_result((), total)
        }
    }

    /// One monitoring round: check the core, re-apply if it needs it.
    pub async fn check_and_heal(&self) {
        if self.core.check().await
            && let Err(e) = self.reapply().await
        {
            tracing::debug!(error = ?e, "re-apply failed");
        }
    }

    /// Reads the core's per-user counters (resetting them) and adds them to the stored totals.
    pub async fn collect_traffic(&self) -> Result<(), AgentError> {
        let mut traffic = self.traffic.lock().await;
        let read = self.core.take_user_traffic().await;
        if let Ok(taken) = &read {
            for t in taken {
                if t.uplink == 0 && t.downlink == 0 {
                    continue;
                }
                let slot = traffic
                    .pending
                    .entry(t.email.to_ascii_lowercase())
                    .or_default();
                slot.0 = slot.0.saturating_add(t.uplink);
                slot.1 = slot.1.saturating_add(t.downlink);
            }
        }
        if !traffic.pending.is_empty() {
            let deltas: Vec<(String, u64, u64)> = traffic
                .pending
                .iter()
                .map(|(email, (up, down))| (email.clone(), *up, *down))
                .collect();
            self.store.add_traffic(&deltas).await?;
            traffic.pending.clear();
        }
        read.map(drop).map_err(AgentError::from)
    }

    /// `GET /v1/health`.
    pub async fn health(&self, limit: Duration) -> Result<HealthResponse, AgentError> {
        let (core_reachable, core_uptime_s) = match self.core.live_uptime(limit).await {
            Ok(uptime) => (true, Some(uptime)),
            // The core answered, it just cannot give its uptime (e.g. no StatsService).
            Err(CoreError::Rejected(_)) => (true, None),
            Err(CoreError::Unavailable(_)) => (false, None),
        };
        let users = self.store.count().await?;
        let status = self.core.status();
        Ok(HealthResponse {
            core_reachable,
            core_uptime_s,
            users,
            dialect: status.dialect.map(str::to_owned),
            inbound_tag: self.core.inbound_tag().to_owned(),
            inbound_verified: status.inbound_verified,
            core_in_sync: status.reachable && status.inbound_verified && !status.resync_pending,
            core_restarts_detected: status.restarts_detected,
            last_resync_unix: status
                .last_resync
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            core_error: status.config_error,
            version: env!("CARGO_PKG_VERSION").to_owned(),
        })
    }

    /// Runs `op` over `items` with the core's concurrency; after the first "unavailable", the
    /// remaining items fail at once instead of each waiting for its own deadline.
    async fn bounded<T, R, F, Fut>(
        &self,
        items: Vec<T>,
        stop: &AtomicBool,
        op: F,
    ) -> Vec<(T, Result<R, CoreError>)>
    where
        T: Clone,
        F: Fn(T) -> Fut,
        Fut: Future<Output = Result<R, CoreError>>,
    {
        stream::iter(items)
            .map(|item| {
                let key = item.clone();
                let skip = stop.load(Ordering::Relaxed);
                let call = (!skip).then(|| op(item));
                async move {
                    let result = match call {
                        Some(call) if !stop.load(Ordering::Relaxed) => call.await,
                        _ => Err(CoreError::Unavailable(
                            "skipped: the core stopped answering".to_owned(),
                        )),
                    };
                    if matches!(result, Err(CoreError::Unavailable(_))) {
                        stop.store(true, Ordering::Relaxed);
                    }
                    (key, result)
                }
            })
            .buffer_unordered(self.core.concurrency())
            .collect()
            .await
    }
}

#[derive(Default)]
struct Plan {
    add: Vec<UserSpec>,
    remove: Vec<Email>,
    update: Vec<(UserSpec, StoredUser)>,
    unchanged: Vec<UserSpec>,
}

/// Failures of a bulk operation: counted, the first one kept for the message.
#[derive(Default)]
struct Failures {
    count: usize,
    unavailable: bool,
    first: Option<String>,
}

impl Failures {
    fn add(&mut self, email: &Email, error: CoreError) {
        self.count += 1;
        if matches!(error, CoreError::Unavailable(_)) {
            self.unavailable = true;
        }
        if self.first.is_none() {
            self.first = Some(format!("{email}: {}", error.message()));
        }
    }

    fn into_result<T>(self, ok: T, total: usize) -> Result<T, AgentError> {
        let Some(first) = self.first else {
            return Ok(ok);
        };
        let message = format!(
            "incomplete: {} of {total} users failed; first: {first}; state is consistent, retry the same request",
            self.count
        );
        Err(if self.unavailable {
            AgentError::CoreUnavailable(message)
        } else {
            AgentError::CoreRejected(message)
        })
    }
}

fn uuid_conflict(spec: &UserSpec, holder: &Email) -> AgentError {
    AgentError::Conflict(format!(
        "uuid {} is bound to {holder} on this node (one uuid, one email): DELETE /v1/users/{holder} first",
        spec.uuid
    ))
}

fn count<I: Iterator>(items: I) -> u64 {
    u64::try_from(items.count()).unwrap_or(u64::MAX)
}

fn entry(user: StoredUser) -> UserEntry {
    UserEntry {
        email: user.spec.email.to_string(),
        uuid: user.spec.uuid.to_string(),
        flow: user.spec.flow.as_str().to_owned(),
        level: user.spec.level,
        uplink_bytes: user.uplink_bytes,
        downlink_bytes: user.downlink_bytes,
    }
}

/// Parses every user of a converge request; duplicates of an email or a uuid are refused.
pub fn validate_converge(request: &ConvergeRequest) -> Result<Vec<UserSpec>, String> {
    let mut specs = Vec::with_capacity(request.users.len());
    let mut emails: HashMap<Email, usize> = HashMap::with_capacity(request.users.len());
    let mut uuids: HashMap<String, usize> = HashMap::with_capacity(request.users.len());
    for (i, user) in request.users.iter().enumerate() {
        let spec = UserSpec::parse(&user.email, &user.uuid, &user.flow, user.level)
            .map_err(|e| format!("users[{i}]: {e}"))?;
        if let Some(first) = emails.insert(spec.email.clone(), i) {
            return Err(format!(
                "users[{i}]: email {} already appears at users[{first}]",
                spec.email
            ));
        }
        if let Some(first) = uuids.insert(uuid_key(&spec.uuid), i) {
            return Err(format!(
                "users[{i}]: uuid {} is also used by users[{first}] (one uuid, one email)",
                spec.uuid
            ));
        }
        specs.push(spec);
    }
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ConvergeUser;

    fn user(email: &str, uuid: &str) -> ConvergeUser {
        ConvergeUser {
            email: email.into(),
            uuid: uuid.into(),
            flow: String::new(),
            level: 0,
        }
    }

    #[test]
    fn converge_requests_are_validated_with_positions() {
        let ok = ConvergeRequest {
            users: vec![
                user("A@x", "86dc2c8c-6d69-40ae-b0e4-8f4ce621feb9"),
                user("b@x", "11111111-2222-4333-8444-555555555555"),
            ],
            skip_unchanged: false,
        };
        assert_eq!(validate_converge(&ok).unwrap()[0].email.as_str(), "a@x");

        let mut dup_email = ok.clone();
        dup_email.users[1].email = "a@X".into();
        assert_eq!(
            validate_converge(&dup_email).unwrap_err(),
            "users[1]: email a@x already appears at users[0]"
        );

        let mut dup_uuid = ok.clone();
        dup_uuid.users[1].uuid = "86dc2c8c-6d69-ffff-b0e4-8f4ce621feb9".into();
        assert!(
            validate_converge(&dup_uuid)
                .unwrap_err()
                .contains("also used by users[0]")
        );

        let mut bad = ok;
        bad.users[1].uuid = "nope".into();
        assert!(
            validate_converge(&bad)
                .unwrap_err()
                .starts_with("users[1]: uuid \"nope\"")
        );
    }
}
