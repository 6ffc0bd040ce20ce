//! The share-state journal: the durable form of every share partition a shard owns, in
//! `<data-dir>/share/shard-<N>.log` (`store::journal`, magic `SLSHARE1`). Each record is
//! the whole window of one share partition (its start offset and runs of states and
//! delivery counts), so replay keeps the newest per key and compaction keeps one record
//! per share partition. A record's key is `topic NUL partition NUL group`; its owner is
//! the partition's owner shard under the registry being loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};

use crate::store::journal::{self, Journal, JournalError, JournalRecord, JournalState};

const MAGIC: &[u8; 8] = b"SLSHARE1";
/// Compact once the file is over this size and over twice its last compacted size.
pub const ROLL_BYTES: u64 = 16 << 20;

/// A run of records with one state and delivery count.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Run {
    pub first: i64,
    pub last: i64,
    pub state: u8,
    pub delivery_count: i16,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum ShareRecord {
    /// The share partition as of this change.
    Window {
        seq: u64,
        key: String,
        start: i64,
        runs: Vec<Run>,
    },
    /// The share partition is gone (its group's state deleted, or its topic).
    Delete { seq: u64, key: String },
}

impl JournalRecord for ShareRecord {
    fn seq(&self) -> u64 {
        match self {
            ShareRecord::Window { seq, .. } | ShareRecord::Delete { seq, .. } => *seq,
        }
    }

    fn key(&self) -> &str {
        match self {
            ShareRecord::Window { key, .. } | ShareRecord::Delete { key, .. } => key,
        }
    }
}

/// The newest window per key, with the seq that wrote it.
#[derive(Debug, Default)]
pub struct Windows(pub HashMap<String, (u64, i64, Vec<Run>)>);

impl JournalState for Windows {
    type Record = ShareRecord;

    fn apply(&mut self, rec: &ShareRecord) {
        match rec {
            ShareRecord::Window {
                seq,
                key,
                start,
                runs,
            } => {
                self.0.insert(key.clone(), (*seq, *start, runs.clone()));
            }
            ShareRecord::Delete { key, .. } => {
                self.0.remove(key);
            }
        }
    }

    fn live_records(&self) -> Vec<ShareRecord> {
        self.0
            .iter()
            .map(|(key, (seq, start, runs))| ShareRecord::Window {
                seq: *seq,
                key: key.clone(),
                start: *start,
                runs: runs.clone(),
            })
            .collect()
    }
}

pub type Recovered = journal::Recovered<Windows>;
pub type ShareJournal = Journal<Windows>;

pub fn key(topic: &str, partition: i32, group: &str) -> String {
    format!("{topic}\0{partition}\0{group}")
}

/// (topic, partition, group) of a key.
pub fn parse_key(key: &str) -> Option<(&str, i32, &str)> {
    let mut it = key.splitn(3, '\0');
    let topic = it.next()?;
    let partition = it.next()?.parse().ok()?;
    let group = it.next()?;
    Some((topic, partition, group))
}

fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("share")
}

/// Read the share journals of every shard and split the share partitions by the owner
/// `owner(topic, partition)` names (the registry being loaded). Blocking; before the
/// shards start.
pub fn recover(
    data_dir: &Path,
    shards: usize,
    owner: impl Fn(&str, i32) -> usize,
) -> Result<Vec<Recovered>, String> {
    journal::recover(&dir(data_dir), MAGIC, shards, |k| match parse_key(k) {
        Some((t, p, _)) => owner(t, p).min(shards - 1),
        None => 0,
    })
    .map_err(|e| e.to_string())
}

pub async fn open(
    data_dir: &Path,
    shard: usize,
    recovered: Recovered,
) -> Result<ShareJournal, JournalError> {
    Journal::open(&dir(data_dir), shard, MAGIC, recovered, ROLL_BYTES).await
}
