//! Committed offsets: an in-memory map per group, made durable by the journal
//! (`store::journal`) in `<data-dir>/groups/shard-<N>.log`, magic `SLGROFF1`. A commit is
//! answered only after its records are fdatasync'd; concurrent commits share one
//! fdatasync (group commit). A record's key is its group id, so the offsets of a group
//! live on the group's owner shard, and move with it when the shard count changes.

use std::cell::Ref;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

use crate::store::journal::{self, Journal, JournalError, JournalRecord, JournalState};

const MAGIC: &[u8; 8] = b"SLGROFF1";
/// The committed metadata string limit (Kafka's `offset.metadata.max.bytes`).
pub const MAX_METADATA_BYTES: usize = 4096;
/// Compact the log once it is over this size and over twice its last compacted size.
pub const DEFAULT_ROLL_BYTES: u64 = 8 << 20;

/// One durable change to the committed offsets.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum OffsetRecord {
    Commit {
        seq: u64,
        group: String,
        topic: String,
        partition: i32,
        offset: i64,
        leader_epoch: i32,
        metadata: String,
        commit_ms: i64,
    },
    /// OffsetDelete of one partition.
    Delete {
        seq: u64,
        group: String,
        topic: String,
        partition: i32,
    },
    /// DeleteGroups: every offset of the group.
    DeleteGroup { seq: u64, group: String },
}

impl JournalRecord for OffsetRecord {
    fn seq(&self) -> u64 {
        match self {
            OffsetRecord::Commit { seq, .. }
            | OffsetRecord::Delete { seq, .. }
            | OffsetRecord::DeleteGroup { seq, .. } => *seq,
        }
    }

    fn key(&self) -> &str {
        match self {
            OffsetRecord::Commit { group, .. }
            | OffsetRecord::Delete { group, .. }
            | OffsetRecord::DeleteGroup { group, .. } => group,
        }
    }
}

/// A committed offset as OffsetFetch returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub seq: u64,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_ms: i64,
}

/// Committed offsets of one group: (topic, partition) → offset.
pub type GroupOffsets = BTreeMap<(String, i32), Committed>;
/// Committed offsets of many groups: the state the journal keeps.
pub type AllOffsets = HashMap<String, GroupOffsets>;

impl JournalState for AllOffsets {
    type Record = OffsetRecord;

    fn apply(&mut self, rec: &OffsetRecord) {
        match rec {
            OffsetRecord::Commit {
                seq,
                group,
                topic,
                partition,
                offset,
                leader_epoch,
                metadata,
                commit_ms,
            } => {
                self.entry(group.clone()).or_default().insert(
                    (topic.clone(), *partition),
                    Committed {
                        seq: *seq,
                        offset: *offset,
                        leader_epoch: *leader_epoch,
                        metadata: metadata.clone(),
                        commit_ms: *commit_ms,
                    },
                );
            }
            OffsetRecord::Delete {
                group,
                topic,
                partition,
                ..
            } => {
                if let Some(g) = self.get_mut(group) {
                    g.remove(&(topic.clone(), *partition));
                    if g.is_empty() {
                        self.remove(group);
                    }
                }
            }
            OffsetRecord::DeleteGroup { group, .. } => {
                self.remove(group);
            }
        }
    }

    /// One Commit per committed offset, with the seq of the commit that set it.
    fn live_records(&self) -> Vec<OffsetRecord> {
        let mut out = Vec::new();
        for (group, offsets) in self {
            for ((topic, partition), c) in offsets {
                out.push(OffsetRecord::Commit {
                    seq: c.seq,
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone(),
                    commit_ms: c.commit_ms,
                });
            }
        }
        out
    }
}

/// What one coordinator shard starts from: its groups' offsets and the first seq.
pub type Recovered = journal::Recovered<AllOffsets>;

pub fn groups_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("groups")
}

/// Read the group logs of every shard under `<data-dir>/groups` and split the groups by
/// `owner` under the current shard count (`journal::recover`). Blocking; runs before
/// the shards start.
pub fn recover(
    data_dir: &Path,
    shards: usize,
    owner: impl Fn(&str) -> usize,
) -> Result<Vec<Recovered>, JournalError> {
    journal::recover(&groups_dir(data_dir), MAGIC, shards, owner)
}

/// Committed offsets of the groups one shard coordinates, with their durable log.
pub struct OffsetStore {
    journal: Journal<AllOffsets>,
}

impl OffsetStore {
    /// Open the shard's log (after `recover`).
    pub async fn open(
        data_dir: &Path,
        shard: usize,
        recovered: Recovered,
        roll_bytes: u64,
    ) -> Result<OffsetStore, JournalError> {
        let dir = groups_dir(data_dir);
        let journal = Journal::open(&dir, shard, MAGIC, recovered, roll_bytes).await?;
        Ok(OffsetStore { journal })
    }

    /// A fresh sequence number for a record about to be appended.
    pub fn next_seq(&self) -> u64 {
        self.journal.next_seq()
    }

    pub fn offsets(&self) -> Ref<'_, AllOffsets> {
        self.journal.state()
    }

    pub fn group(&self, group: &str) -> Option<GroupOffsets> {
        self.journal.state().get(group).cloned()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.journal.state().contains_key(group)
    }

    pub fn size_bytes(&self) -> u64 {
        self.journal.size_bytes()
    }

    /// Make `records` durable, then apply them to the map (group-committed).
    pub async fn append(&self, records: Vec<OffsetRecord>) -> Result<(), JournalError> {
        self.journal.append(records).await
    }

    /// Compact now (tests, and shutdown if wanted).
    pub async fn compact(&self) -> Result<(), JournalError> {
        self.journal.compact().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::test_run as run;
    use crate::store::journal::{encode_frame, shard_path, SNAPSHOT_FILE};

    fn commit(seq: u64, group: &str, topic: &str, partition: i32, offset: i64) -> OffsetRecord {
        OffsetRecord::Commit {
            seq,
            group: group.into(),
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: 0,
        }
    }

    fn owner2(g: &str) -> usize {
        crate::coordinator::group::owner_shard(g, 2).0
    }

    #[test]
    fn offsets_are_written_restored_and_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let rec = recover(&data, 1, |_| 0).unwrap().pop().unwrap();
        assert!(rec.state.is_empty());
        let d2 = data.clone();
        run(move || async move {
            let store = OffsetStore::open(&d2, 0, rec, 2000).await.unwrap();
            for i in 0..100 {
                let s = store.next_seq();
                store.append(vec![commit(s, "g", "t", 0, i)]).await.unwrap();
            }
            let s = store.next_seq();
            store.append(vec![commit(s, "g", "t", 1, 7)]).await.unwrap();
            // Rolled past 2000 bytes: compacted down to the two live records.
            assert!(store.size_bytes() < 2000, "size {}", store.size_bytes());
            assert_eq!(store.group("g").unwrap()[&("t".to_string(), 0)].offset, 99);
        });
        let rec = recover(&data, 1, |_| 0).unwrap().pop().unwrap();
        let g = &rec.state["g"];
        assert_eq!(g[&("t".to_string(), 0)].offset, 99);
        assert_eq!(g[&("t".to_string(), 1)].offset, 7);
        assert_eq!(rec.next_seq, 102);
    }

    #[test]
    fn concurrent_commits_share_a_sync_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let rec = recover(&data, 1, |_| 0).unwrap().pop().unwrap();
        let d2 = data.clone();
        run(move || async move {
            let store = std::rc::Rc::new(OffsetStore::open(&d2, 0, rec, 1 << 30).await.unwrap());
            let tasks: Vec<_> = (0..20)
                .map(|p| {
                    let store = store.clone();
                    glommio::spawn_local(async move {
                        let s = store.next_seq();
                        store
                            .append(vec![commit(s, "g", "t", p, 10 + p as i64)])
                            .await
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(store.group("g").unwrap().len(), 20);
        });
        let rec = recover(&data, 1, |_| 0).unwrap().pop().unwrap();
        assert_eq!(rec.state["g"].len(), 20);
        assert_eq!(rec.state["g"][&("t".to_string(), 19)].offset, 29);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let gdir = groups_dir(dir.path());
        std::fs::create_dir_all(&gdir).unwrap();
        let mut bytes = MAGIC.to_vec();
        encode_frame(&commit(1, "g", "t", 0, 5), &mut bytes).unwrap();
        encode_frame(&commit(2, "g", "t", 0, 6), &mut bytes).unwrap();
        let good = bytes.len();
        encode_frame(&commit(3, "g", "t", 0, 7), &mut bytes).unwrap();
        bytes.truncate(bytes.len() - 3); // torn write
        std::fs::write(shard_path(&gdir, 0), &bytes).unwrap();
        let rec = recover(dir.path(), 1, |_| 0).unwrap().pop().unwrap();
        assert_eq!(rec.state["g"][&("t".to_string(), 0)].offset, 6);
        assert_eq!(
            std::fs::metadata(shard_path(&gdir, 0)).unwrap().len(),
            good as u64
        );
        // A flipped bit in the last frame: its CRC fails, it is cut as well.
        let mut bytes = std::fs::read(shard_path(&gdir, 0)).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(shard_path(&gdir, 0), &bytes).unwrap();
        let rec = recover(dir.path(), 1, |_| 0).unwrap().pop().unwrap();
        assert_eq!(rec.state["g"][&("t".to_string(), 0)].offset, 5);
    }

    #[test]
    fn a_new_shard_count_moves_groups_to_their_new_owner() {
        let dir = tempfile::tempdir().unwrap();
        let gdir = groups_dir(dir.path());
        std::fs::create_dir_all(&gdir).unwrap();
        // Written by a 1-shard run: every group in shard-0.log, with a deleted group.
        let mut bytes = MAGIC.to_vec();
        let groups: Vec<String> = (0..8).map(|i| format!("group-{i}")).collect();
        for (i, g) in groups.iter().enumerate() {
            encode_frame(&commit(i as u64 + 1, g, "t", 0, 100 + i as i64), &mut bytes).unwrap();
        }
        encode_frame(
            &OffsetRecord::DeleteGroup {
                seq: 20,
                group: "group-0".into(),
            },
            &mut bytes,
        )
        .unwrap();
        std::fs::write(shard_path(&gdir, 0), &bytes).unwrap();
        let rec = recover(dir.path(), 2, owner2).unwrap();
        for (i, g) in groups.iter().enumerate().skip(1) {
            let s = owner2(g);
            assert_eq!(
                rec[s].state[g][&("t".to_string(), 0)].offset,
                100 + i as i64
            );
            assert!(!rec[1 - s].state.contains_key(g));
        }
        assert!(!rec.iter().any(|r| r.state.contains_key("group-0")));
        assert_eq!(rec[0].next_seq, 21);
        // Each file now holds only its own groups; back to one shard works too.
        assert!(!gdir.join(SNAPSHOT_FILE).exists());
        let rec = recover(dir.path(), 1, |_| 0).unwrap();
        assert_eq!(rec[0].state.len(), 7);
        assert!(!shard_path(&gdir, 1).exists());
    }

    #[test]
    fn a_crash_during_a_rewrite_loses_nothing() {
        // State after a crash between "snapshot written" and "old logs removed", where
        // the old logs hold a commit whose tombstone is only in a log already removed.
        let dir = tempfile::tempdir().unwrap();
        let gdir = groups_dir(dir.path());
        std::fs::create_dir_all(&gdir).unwrap();
        let mut snap = MAGIC.to_vec();
        encode_frame(&commit(3, "a", "t", 0, 30), &mut snap).unwrap();
        encode_frame(
            &OffsetRecord::Delete {
                seq: 4,
                group: "b".into(),
                topic: "t".into(),
                partition: 0,
            },
            &mut snap,
        )
        .unwrap();
        std::fs::write(gdir.join(SNAPSHOT_FILE), &snap).unwrap();
        let mut old = MAGIC.to_vec();
        encode_frame(&commit(1, "a", "t", 0, 10), &mut old).unwrap();
        encode_frame(&commit(2, "b", "t", 0, 20), &mut old).unwrap();
        std::fs::write(shard_path(&gdir, 0), &old).unwrap();
        let rec = recover(dir.path(), 1, |_| 0).unwrap();
        assert_eq!(rec[0].state["a"][&("t".to_string(), 0)].offset, 30);
        assert!(!rec[0].state.contains_key("b"));
        assert!(!gdir.join(SNAPSHOT_FILE).exists());
    }

    #[test]
    fn a_log_written_before_the_journal_loads_unchanged() {
        // shard-0.log as the offsets log wrote it before the journal took over: commits
        // of two groups, an OffsetDelete, and a group deleted by DeleteGroups.
        let before: &[u8] = include_bytes!("testdata/shard-0-before-journal.log");
        let dir = tempfile::tempdir().unwrap();
        let gdir = groups_dir(dir.path());
        std::fs::create_dir_all(&gdir).unwrap();
        std::fs::write(shard_path(&gdir, 0), before).unwrap();
        let rec = recover(dir.path(), 1, |_| 0).unwrap().pop().unwrap();
        let orders = &rec.state["orders-app"];
        assert_eq!(orders.len(), 1);
        assert_eq!(
            orders[&("orders".to_string(), 0)],
            Committed {
                seq: 1,
                offset: 42,
                leader_epoch: 3,
                metadata: "m".into(),
                commit_ms: 1_700_000_000_000,
            }
        );
        assert_eq!(
            rec.state["billing"][&("invoices".to_string(), 2)].offset,
            100
        );
        assert!(!rec.state.contains_key("gone"));
        assert_eq!(rec.next_seq, 7);
        // Kept as it was, and the journal writes those records as the same bytes.
        assert_eq!(std::fs::read(shard_path(&gdir, 0)).unwrap(), before);
        let records = [
            OffsetRecord::Commit {
                seq: 1,
                group: "orders-app".into(),
                topic: "orders".into(),
                partition: 0,
                offset: 42,
                leader_epoch: 3,
                metadata: "m".into(),
                commit_ms: 1_700_000_000_000,
            },
            OffsetRecord::Commit {
                seq: 2,
                group: "orders-app".into(),
                topic: "orders".into(),
                partition: 1,
                offset: 7,
                leader_epoch: -1,
                metadata: String::new(),
                commit_ms: 1_700_000_000_001,
            },
            OffsetRecord::Commit {
                seq: 3,
                group: "billing".into(),
                topic: "invoices".into(),
                partition: 2,
                offset: 100,
                leader_epoch: 0,
                metadata: String::new(),
                commit_ms: 1_700_000_000_002,
            },
            OffsetRecord::Delete {
                seq: 4,
                group: "orders-app".into(),
                topic: "orders".into(),
                partition: 1,
            },
            commit(5, "gone", "t", 0, 1),
            OffsetRecord::DeleteGroup {
                seq: 6,
                group: "gone".into(),
            },
        ];
        let mut bytes = MAGIC.to_vec();
        for r in &records {
            encode_frame(r, &mut bytes).unwrap();
        }
        assert_eq!(bytes, before);
    }
}
