//! Where a shard's transaction state is made durable: the broker's one journal
//! (`store::journal`) in `<data-dir>/txn/shard-<N>.log`, magic `SLTXNJ01`. A change is one
//! `Upsert` (or `Remove`) record, answered once it is fdatasync'd; changes made while a
//! sync runs share the next one (group commit). A record's key is its transactional id,
//! so an id's state lives on its owner shard and moves with it when the shard count
//! changes.
//!
//! Before the journal, each shard rewrote a whole rkyv file (`txn/shard-N.state`) with
//! two fsyncs per change. Such files are imported once: each shard appends the entries it
//! owns that its journal does not hold yet (or holds an older version of), and once every
//! shard has (the start-up barrier) the old files are removed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};
use tracing::info;

use super::owner_shard;
use super::state::TxnEntry;
use crate::kafka::ShardId;
use crate::store::atomic;
use crate::store::journal::{self, Journal, JournalRecord, JournalState};

const MAGIC: &[u8; 8] = b"SLTXNJ01";
/// Compact the journal once it is over this size and over twice its last compacted size.
const ROLL_BYTES: u64 = 8 << 20;

/// One durable change to the transactional ids of a shard.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum TxnRecord {
    /// The id's entry as it is now.
    Upsert { seq: u64, entry: TxnEntry },
    /// The id expired (`transactional.id.expiration.ms`).
    Remove { seq: u64, transactional_id: String },
}

impl JournalRecord for TxnRecord {
    fn seq(&self) -> u64 {
        match self {
            TxnRecord::Upsert { seq, .. } | TxnRecord::Remove { seq, .. } => *seq,
        }
    }

    fn key(&self) -> &str {
        match self {
            TxnRecord::Upsert { entry, .. } => &entry.transactional_id,
            TxnRecord::Remove {
                transactional_id, ..
            } => transactional_id,
        }
    }
}

/// The entries of the ids a shard owns, each with the sequence of the record that set it.
#[derive(Debug, Default)]
pub struct TxnState {
    pub entries: HashMap<String, (u64, TxnEntry)>,
}

impl JournalState for TxnState {
    type Record = TxnRecord;

    fn apply(&mut self, rec: &TxnRecord) {
        match rec {
            TxnRecord::Upsert { seq, entry } => {
                self.entries
                    .insert(entry.transactional_id.clone(), (*seq, entry.clone()));
            }
            TxnRecord::Remove {
                transactional_id, ..
            } => {
                self.entries.remove(transactional_id);
            }
        }
    }

    fn live_records(&self) -> Vec<TxnRecord> {
        self.entries
            .values()
            .map(|(seq, entry)| TxnRecord::Upsert {
                seq: *seq,
                entry: entry.clone(),
            })
            .collect()
    }
}

/// What one shard's transaction state starts from (read before the shards start).
pub type Recovered = journal::Recovered<TxnState>;

pub(super) fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("txn")
}

/// Read every shard's journal and split the ids by their owner under the current shard
/// count. Blocking; runs before the shards start.
pub fn recover(data_dir: &Path, shards: usize) -> Result<Vec<Recovered>, String> {
    journal::recover(&state_dir(data_dir), MAGIC, shards, |id| {
        owner_shard(id, shards).0
    })
    .map_err(|e| e.to_string())
}

/// A shard's journal of transaction state.
pub struct TxnStore {
    journal: Journal<TxnState>,
}

impl TxnStore {
    pub async fn open(
        data_dir: &Path,
        shard: ShardId,
        recovered: Recovered,
    ) -> Result<TxnStore, String> {
        let dir = state_dir(data_dir);
        let journal = Journal::open(&dir, shard.0, MAGIC, recovered, ROLL_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        Ok(TxnStore { journal })
    }

    /// Every entry, as durable now.
    pub fn entries(&self) -> HashMap<String, TxnEntry> {
        let state = self.journal.state();
        state
            .entries
            .iter()
            .map(|(id, (_, e))| (id.clone(), e.clone()))
            .collect()
    }

    /// Make `entries` durable (one group-committed fdatasync for all of them).
    pub async fn put(&self, entries: Vec<TxnEntry>) -> Result<(), String> {
        let records = entries
            .into_iter()
            .map(|entry| TxnRecord::Upsert {
                seq: self.journal.next_seq(),
                entry,
            })
            .collect();
        self.journal
            .append(records)
            .await
            .map_err(|e| e.to_string())
    }

    /// Forget `ids`, durably.
    pub async fn remove(&self, ids: &[String]) -> Result<(), String> {
        let records = ids
            .iter()
            .map(|id| TxnRecord::Remove {
                seq: self.journal.next_seq(),
                transactional_id: id.clone(),
            })
            .collect();
        self.journal
            .append(records)
            .await
            .map_err(|e| e.to_string())
    }
}

/// What one shard saved before the journal (`txn/shard-N.state`).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TxnFile {
    pub entries: Vec<TxnEntry>,
}

/// The entries of the old state files that `shard` owns under the current shard count,
/// the newest copy of each id (by version). Blocking; runs while the shard starts.
pub fn legacy_entries(
    data_dir: &Path,
    shard: ShardId,
    shards: usize,
) -> Result<Vec<TxnEntry>, String> {
    let mut found: HashMap<String, TxnEntry> = HashMap::new();
    for path in legacy_files(data_dir)? {
        let file: TxnFile = atomic::load(&path)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        for e in file.entries {
            if owner_shard(&e.transactional_id, shards) != shard {
                continue;
            }
            let newer = found
                .get(&e.transactional_id)
                .is_none_or(|old| e.version > old.version);
            if newer {
                found.insert(e.transactional_id.clone(), e);
            }
        }
    }
    Ok(found.into_values().collect())
}

/// The old state files, once every shard has imported what it owns of them.
pub fn remove_legacy(data_dir: &Path) -> Result<(), String> {
    let files = legacy_files(data_dir)?;
    for path in &files {
        std::fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))?;
    }
    if !files.is_empty() {
        info!(
            files = files.len(),
            "transaction state moved to the journal; old state files removed"
        );
    }
    Ok(())
}

fn legacy_files(data_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let dir = state_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let listing = std::fs::read_dir(&dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for f in listing {
        let path = f
            .map_err(|e| format!("listing {}: {e}", dir.display()))?
            .path();
        if path.extension().and_then(|e| e.to_str()) == Some("state") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
