//! Where a shard's transaction state is made durable: one rkyv file per shard,
//! `txn/shard-N.state`, rewritten atomically on every change (`store::atomic`). That
//! costs two fsyncs per change; a transaction makes three or four changes.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};
use tracing::info;

use super::owner_shard;
use super::state::TxnEntry;
use crate::kafka::ShardId;
use crate::store::atomic as store;

/// What one shard saves.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct TxnFile {
    pub entries: Vec<TxnEntry>,
}

pub(super) fn state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("txn")
}

/// A shard's state file, and the entries in it that another shard owns now.
pub struct TxnStore {
    path: PathBuf,
    /// Entries of this shard's own file that another shard owns now (the shard count
    /// changed): written back unchanged, so no id is ever in no file; the owner's copy
    /// has the higher version once it changes.
    foreign: RefCell<Vec<TxnEntry>>,
}

impl TxnStore {
    /// Read every shard's state file and keep the entries `shard` owns under the
    /// current shard count (the newest copy of an id wins if the count changed).
    /// Blocking; runs while the shard starts.
    pub fn load(
        data_dir: &Path,
        shard: ShardId,
        shards: usize,
    ) -> Result<(TxnStore, HashMap<String, TxnEntry>), String> {
        let dir = state_dir(data_dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut found: HashMap<String, TxnEntry> = HashMap::new();
        let own_file = format!("shard-{}.state", shard.0);
        let mut foreign = Vec::new();
        let listing =
            std::fs::read_dir(&dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
        for f in listing {
            let f = f.map_err(|e| format!("listing {}: {e}", dir.display()))?;
            let path = f.path();
            if path.extension().and_then(|e| e.to_str()) != Some("state") {
                continue;
            }
            let file: TxnFile = store::load(&path)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let own = path.file_name().and_then(|n| n.to_str()) == Some(own_file.as_str());
            for e in file.entries {
                if owner_shard(&e.transactional_id, shards) != shard {
                    if own {
                        foreign.push(e);
                    }
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
        if !found.is_empty() {
            info!(
                shard = shard.0,
                transactional_ids = found.len(),
                "transactions loaded"
            );
        }
        let store = TxnStore {
            path: dir.join(own_file),
            foreign: RefCell::new(foreign),
        };
        Ok((store, found))
    }

    /// Make `entries` (every id this shard owns) durable.
    pub async fn save(&self, entries: &HashMap<String, TxnEntry>) -> Result<(), String> {
        let mut all: Vec<TxnEntry> = entries.values().cloned().collect();
        all.extend(self.foreign.borrow().iter().cloned());
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        store::save(&self.path, &TxnFile { entries: all })
            .await
            .map_err(|e| e.to_string())
    }
}
