//! The cleaner's checkpoint (Kafka's `cleaner-offset-checkpoint`): where the last
//! complete pass left a partition, kept in `<partition dir>/cleaner-checkpoint.state`
//! (`store::atomic`), so a restart does not find every compacted partition wholly dirty
//! and clean it again from its log start.
//!
//! A pass saves it only after every segment it swapped in is synced (the swap syncs
//! each one before it returns), so the offsets below `first_dirty` are in cleaned
//! segments that survive a crash. A checkpoint that does not fit the log it is opened
//! with is dropped and the log is dirty from its start, as without one.

use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};
use tracing::{info, warn};

use super::CleanerState;
use crate::log::PartitionLog;
use crate::store::atomic as store;

const FILE: &str = "cleaner-checkpoint.state";

/// What a complete pass leaves for the next one (`CleanerState` without its retry time).
/// The file's header carries the format version (`store::atomic`); a change of these
/// fields takes a new file name, as `producer-state-v2` did.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanerCheckpoint {
    /// Offsets below this were in the map of a finished pass.
    pub first_dirty: i64,
    /// The earliest delete horizon that pass left in the log.
    pub next_horizon: Option<i64>,
}

pub fn path(partition_dir: &Path) -> PathBuf {
    partition_dir.join(FILE)
}

/// The cleaning state `log` was left in (the default when there is no usable
/// checkpoint). A `first_dirty` below the log start (DeleteRecords or retention moved
/// it since) is kept: `cleanable` starts at the first segment left, as it does when
/// that happens while the broker runs.
pub fn load(log: &PartitionLog) -> CleanerState {
    let path = path(log.dir());
    let cp = match store::load::<CleanerCheckpoint>(&path) {
        Ok(Some(cp)) => cp,
        Ok(None) => return CleanerState::default(),
        Err(e) => {
            warn!("{e}; the log is cleaned from its start");
            return CleanerState::default();
        }
    };
    if cp.first_dirty > log.high_watermark() {
        info!(
            path = %path.display(),
            first_dirty = cp.first_dirty,
            high_watermark = log.high_watermark(),
            "cleaner checkpoint is past the log end; the log is cleaned from its start"
        );
        return CleanerState::default();
    }
    tracing::debug!(path = %path.display(), first_dirty = cp.first_dirty, "cleaner checkpoint loaded");
    let state = CleanerState::default();
    state.first_dirty.set(cp.first_dirty);
    state.next_horizon.set(cp.next_horizon);
    state
}

/// Saves `state` for the next start. A failure is logged and costs only a pass that
/// cleans again after a restart, so the pass that called this does not fail.
pub async fn save(log: &PartitionLog, state: &CleanerState) {
    let cp = CleanerCheckpoint {
        first_dirty: state.first_dirty.get(),
        next_horizon: state.next_horizon.get(),
    };
    let path = path(log.dir());
    let res = match log.hold_for_state_file().await {
        Ok(Some(_gate)) => store::save(&path, &cp).await.map_err(|e| e.to_string()),
        Ok(None) => Ok(()), // the log was removed or closed: nothing to keep
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = res {
        warn!(path = %path.display(), "saving the cleaner checkpoint failed: {e}");
    }
}
