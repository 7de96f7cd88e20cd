//! A joiner's first self-update: after we join a group from a Welcome, our leaf is the one our
//! KeyPackage brought and no parent node above it is ours. Members an admin added in one commit
//! leave the parent nodes off the admin's path blank, and every later commit with a path (a
//! remove, a rekey) encrypts its path secret to each leaf below a blank node: 1.1 MiB for a
//! remove at 1,000 members (BENCHMARKS.md, B9). So each joiner makes one self-update commit (a
//! commit with an update path and no proposals, which the role rule allows any member) a
//! random while after joining; it fills the joiner's direct path, and once every member made
//! one the tree has no blank paths.
//!
//! ```text
//!  run_self_updates (driver timer, see next_self_update_at):
//!    every SCAN_INTERVAL_MS: active groups we joined, not tracked yet ─▶ our leaf never
//!       committed? ─▶ due at now + MIN_DELAY + random(0 ..= window(devices))   else done
//!    due ─▶ still never committed? ─▶ self-update (applied at once) ─▶ ONE commit envelope to
//!       every other member device; due again after another random delay, to check
//!    due again ─▶ our commit lost the epoch (a rollback put our KeyPackage leaf back)? ─▶
//!       commit again, at most MAX_ATTEMPTS commits; otherwise done
//! ```
//!
//! The window grows with the group (`WINDOW_PER_DEVICE_MS` per member device, at most
//! `MAX_WINDOW_MS`), so 1,000 joiners of one Welcome spread their commits over hours rather
//! than all committing in the same epoch. Two that still collide are ordered by the commit
//! ordering rule (the smaller commit id wins the epoch); the loser is rolled back, finds its
//! leaf from its KeyPackage again at its next check and commits again later. The schedule lives
//! in memory: the truth is the MLS state (our leaf's source), so after a restart the scan finds
//! the groups still waiting and draws new times. Times come from the engine's generator, so a
//! seeded simulation replays them.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use rhizo_store::{
    Tx,
    groups::{GroupRow, GroupStatus},
};
use tracing::debug;

use super::{GroupEnvelope, other_devices, queue_group_envelope, roster};
use crate::{Engine, EngineError, secs};

/// Shortest wait after joining (ms): the other joiners of the same Welcome join meanwhile.
pub const MIN_DELAY_MS: i64 = 10_000;
/// The random part of the wait grows by this much per member device (ms): with N devices
/// joining together, about N × 1 s / this many of them commit in any second.
pub const WINDOW_PER_DEVICE_MS: i64 = 6_000;
/// The random part of the wait is at most this long (ms): a 1,000-device group fills within
/// about two hours.
pub const MAX_WINDOW_MS: i64 = 2 * 60 * 60 * 1000;
/// How often the driver looks for groups joined since (ms); a new group waits at most this
/// much longer than its drawn time.
pub const SCAN_INTERVAL_MS: i64 = 60_000;
/// Self-update commits made per joined group before giving up (each loses only to a
/// concurrent commit of the same epoch); the 24-h rekey takes over after that.
pub const MAX_ATTEMPTS: u32 = 5;
/// Groups tracked: the active groups a node may have.
const MAX_TRACKED: usize = rhizo_store::groups::MAX_GROUPS;

/// One tracked group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Look at it at `at`; `attempts` self-updates made so far.
    Due { at: i64, attempts: u32 },
    /// Nothing more to do: our leaf has committed, or we gave up.
    Done,
}

/// The schedule: per group session, what is next (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct SelfUpdates {
    inner: Mutex<Schedule>,
}

#[derive(Debug, Default)]
struct Schedule {
    groups: BTreeMap<[u8; 16], Entry>,
    /// When the next scan for new groups is due (None: at once).
    next_scan: Option<i64>,
}

impl SelfUpdates {
    fn lock(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What [`Engine::run_self_updates`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SelfUpdateRun {
    /// Groups newly scheduled.
    pub scheduled: usize,
    /// Self-update commits queued.
    pub committed: usize,
}

/// The random part of the wait for a group of `devices` member devices.
pub fn window_ms(devices: usize) -> i64 {
    i64::try_from(devices)
        .unwrap_or(i64::MAX)
        .saturating_mul(WINDOW_PER_DEVICE_MS)
        .min(MAX_WINDOW_MS)
}

impl Engine {
    /// When [`run_self_updates`](Self::run_self_updates) next has work: a scheduled group's
    /// time, or the next scan for groups joined since. The driver sleeps until then at most.
    pub fn next_self_update_at(&self) -> i64 {
        let schedule = self.self_updates.lock();
        let due = schedule.groups.values().filter_map(|entry| match entry {
            Entry::Due { at, .. } => Some(*at),
            Entry::Done => None,
        });
        due.chain([schedule.next_scan.unwrap_or(i64::MIN)])
            .min()
            .unwrap_or(i64::MIN)
    }

    /// Finds the groups joined since the last scan (every [`SCAN_INTERVAL_MS`]) and schedules
    /// their first self-update; makes the self-updates that are due (module docs). Each commit
    /// goes to the group's outbox like any of ours.
    ///
    /// # Errors
    ///
    /// MLS or the database (the schedule then stays as it was).
    pub fn run_self_updates(
        &self,
        tx: &mut Tx<'_>,
        now: i64,
    ) -> Result<SelfUpdateRun, EngineError> {
        let mut run = SelfUpdateRun::default();
        let scan_due = {
            let mut schedule = self.self_updates.lock();
            let due = schedule.next_scan.is_none_or(|at| at <= now);
            if due {
                // Set first: a scan that fails waits for the next interval, not a busy retry.
                schedule.next_scan = Some(now.saturating_add(SCAN_INTERVAL_MS));
            }
            due
        };
        if scan_due {
            run.scheduled = self.scan_joined_groups(tx, now)?;
        }
        let due: Vec<([u8; 16], u32)> = {
            let mut schedule = self.self_updates.lock();
            let due: Vec<([u8; 16], u32)> = schedule
                .groups
                .iter()
                .filter_map(|(session, entry)| match *entry {
                    Entry::Due { at, attempts } if at <= now => Some((*session, attempts)),
                    _ => None,
                })
                .collect();
            // Until a look succeeds the next one is a while away: an error is not retried at
            // once, and counts as an attempt.
            for (session, attempts) in &due {
                let later = Entry::Due {
                    at: now.saturating_add(MIN_DELAY_MS),
                    attempts: attempts.saturating_add(1),
                };
                schedule.groups.insert(*session, later);
            }
            due
        };
        for (session, attempts) in due {
            let outcome = self.group_job(tx, |tx| {
                self.self_update_if_needed(tx, &session, attempts, now)
            });
            let next = match outcome {
                Ok((next, committed)) => {
                    run.committed += usize::from(committed);
                    next
                }
                // MLS refused it (its savepoint is rolled back): try again later, bounded.
                Err(EngineError::Mls(e)) => {
                    debug!(error = %e, "a joiner's self-update failed");
                    Entry::Due {
                        at: now.saturating_add(MIN_DELAY_MS),
                        attempts: attempts.saturating_add(1),
                    }
                }
                Err(e) => return Err(e),
            };
            self.self_updates.lock().groups.insert(session, next);
        }
        Ok(run)
    }

    /// Tracks the active groups we joined that are not tracked yet; drops groups no longer
    /// active. How many were scheduled.
    fn scan_joined_groups(&self, tx: &mut Tx<'_>, now: i64) -> Result<usize, EngineError> {
        let active: Vec<GroupRow> = tx
            .groups()?
            .into_iter()
            .filter(|g| g.status == GroupStatus::Active && g.invited_by.is_some())
            .take(MAX_TRACKED)
            .collect();
        let mut schedule = self.self_updates.lock();
        schedule
            .groups
            .retain(|session, _| active.iter().any(|g| g.session_id == *session));
        let new: Vec<GroupRow> = active
            .into_iter()
            .filter(|g| !schedule.groups.contains_key(&g.session_id))
            .collect();
        drop(schedule);
        let mut scheduled = 0;
        for group in new {
            let entry = self.group_job(tx, |tx| {
                // Waiting to be re-added: looked at again by a later scan.
                let Some(conversation) = self.try_load_group(tx, &group)? else {
                    return Ok(None);
                };
                let waiting = conversation.is_active() && conversation.never_committed();
                let devices = conversation.members().len();
                self.conversations.stage(conversation);
                Ok::<_, EngineError>(Some(if waiting {
                    Entry::Due {
                        at: self.self_update_time(devices, now),
                        attempts: 0,
                    }
                } else {
                    Entry::Done
                }))
            })?;
            let Some(entry) = entry else {
                continue;
            };
            scheduled += usize::from(entry != Entry::Done);
            self.self_updates
                .lock()
                .groups
                .insert(group.session_id, entry);
        }
        Ok(scheduled)
    }

    /// A random time for the next look at a group of `devices` member devices.
    fn self_update_time(&self, devices: usize, now: i64) -> i64 {
        let window = u64::try_from(window_ms(devices)).unwrap_or(0);
        let jitter = self.rng.next_u64() % window.saturating_add(1);
        now.saturating_add(MIN_DELAY_MS)
            .saturating_add(i64::try_from(jitter).unwrap_or(0))
    }

    /// At a group's time: commits a self-update if our leaf still never committed (and we
    /// have attempts left); the group's next entry and whether a commit was queued.
    fn self_update_if_needed(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        attempts: u32,
        now: i64,
    ) -> Result<(Entry, bool), EngineError> {
        let Some(group) = tx.group_by_session(session_id)? else {
            return Ok((Entry::Done, false));
        };
        if group.status != GroupStatus::Active {
            return Ok((Entry::Done, false));
        }
        let Some(mut conversation) = self.try_load_group(tx, &group)? else {
            // Waiting to be re-added: looked at again later.
            let at = self.self_update_time(1, now);
            return Ok((Entry::Due { at, attempts }, false));
        };
        if !conversation.is_active() || !conversation.never_committed() || attempts >= MAX_ATTEMPTS
        {
            self.conversations.stage(conversation);
            return Ok((Entry::Done, false));
        }
        let members = roster(&conversation)?;
        let devices = other_devices(&members, &self.me);
        let epoch = conversation.epoch();
        let mls = tx.mls()?;
        let commit = conversation.self_update(&mls, &self.mls_device, secs(now))?;
        let out = GroupEnvelope::commit(commit, epoch);
        queue_group_envelope(tx, self.signer(), &group, out, &devices, now)?;
        debug!(
            epoch,
            attempt = attempts + 1,
            "a joiner's self-update queued"
        );
        let next = self.self_update_time(devices.len().saturating_add(1), now);
        self.conversations.stage(conversation);
        let next = Entry::Due {
            at: next,
            attempts: attempts.saturating_add(1),
        };
        Ok((next, true))
    }
}

#[cfg(test)]
mod tests;
