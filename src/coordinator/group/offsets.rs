//! Committed offsets: an in-memory map per group, made durable by an append-only log of
//! rkyv records per coordinator shard (`<data-dir>/groups/shard-<N>.log`).
//!
//! Frame layout after the 8-byte file magic: `u32 LE payload length | u32 LE CRC-32C of
//! the payload | payload (rkyv archive of one `OffsetRecord`)`. A commit is answered only
//! after the frame is fdatasync'd; concurrent commits share one fdatasync (group commit).
//!
//! Every record carries a sequence number. For one group, sequence order is write order:
//! within a run only the owner shard writes a group's records, and every run starts its
//! counters above the highest sequence found at startup. So recovery can read the log
//! files of every shard (the group → shard mapping changes with `--shards`), sort all
//! records by sequence and replay them.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rkyv::{Archive, Deserialize, Serialize};
use tracing::{info, warn};

const MAGIC: &[u8; 8] = b"SLGROFF1";
const FRAME_HEADER: usize = 8;
/// A record larger than this is corrupt (group ids, topic names and metadata are small).
const MAX_RECORD_BYTES: usize = 1 << 20;
/// The committed metadata string limit (Kafka's `offset.metadata.max.bytes`).
pub const MAX_METADATA_BYTES: usize = 4096;
/// Compact the log once it is over this size and over twice the live data.
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

impl OffsetRecord {
    pub fn seq(&self) -> u64 {
        match self {
            OffsetRecord::Commit { seq, .. }
            | OffsetRecord::Delete { seq, .. }
            | OffsetRecord::DeleteGroup { seq, .. } => *seq,
        }
    }

    pub fn group(&self) -> &str {
        match self {
            OffsetRecord::Commit { group, .. }
            | OffsetRecord::Delete { group, .. }
            | OffsetRecord::DeleteGroup { group, .. } => group,
        }
    }

    fn is_tombstone(&self) -> bool {
        !matches!(self, OffsetRecord::Commit { .. })
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
/// Committed offsets of many groups.
pub type AllOffsets = HashMap<String, GroupOffsets>;

/// Apply one record to the map (records must come in sequence order per group).
pub fn apply(map: &mut AllOffsets, rec: &OffsetRecord) {
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
            map.entry(group.clone()).or_default().insert(
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
            if let Some(g) = map.get_mut(group) {
                g.remove(&(topic.clone(), *partition));
                if g.is_empty() {
                    map.remove(group);
                }
            }
        }
        OffsetRecord::DeleteGroup { group, .. } => {
            map.remove(group);
        }
    }
}

/// The live records that rebuild `map` (for compaction and rewrites).
pub fn live_records<'a>(
    map: impl Iterator<Item = (&'a String, &'a GroupOffsets)>,
) -> Vec<OffsetRecord> {
    let mut out = Vec::new();
    for (group, offsets) in map {
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
    out.sort_by_key(|r| r.seq());
    out
}

/// Append the frame of `rec` to `out`.
pub fn encode_frame(rec: &OffsetRecord, out: &mut Vec<u8>) {
    // Serializing plain owned data into a growable buffer cannot fail.
    let payload = rkyv::to_bytes::<rkyv::rancor::Error>(rec)
        .expect("serializing an OffsetRecord into memory cannot fail");
    assert!(payload.len() <= MAX_RECORD_BYTES, "offset record too large");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crate::crc::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// Decode the records of a whole file. Returns the records and the length of the valid
/// prefix: a torn or corrupt frame ends the log there.
pub fn decode_file(bytes: &[u8]) -> Result<(Vec<OffsetRecord>, usize), String> {
    if bytes.len() < MAGIC.len() {
        // A file cut before its magic was fully written holds no record.
        return Ok((Vec::new(), 0));
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a Sluice group offsets log (bad magic)".into());
    }
    let mut pos = MAGIC.len();
    let mut out = Vec::new();
    while pos + FRAME_HEADER <= bytes.len() {
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let crc = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let start = pos + FRAME_HEADER;
        if len == 0 || len > MAX_RECORD_BYTES || start + len > bytes.len() {
            break;
        }
        let payload = &bytes[start..start + len];
        if crate::crc::crc32c(payload) != crc {
            break;
        }
        let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(len);
        aligned.extend_from_slice(payload);
        match rkyv::from_bytes::<OffsetRecord, rkyv::rancor::Error>(&aligned) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        pos = start + len;
    }
    Ok((out, pos))
}

// --- startup recovery (blocking, before the shards start) -----------------------------

pub fn groups_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("groups")
}

fn shard_log_path(dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("shard-{shard}.log"))
}

const SNAPSHOT: &str = "snapshot.log";

/// What one coordinator shard starts from.
#[derive(Debug, Default)]
pub struct Recovered {
    pub offsets: AllOffsets,
    /// The first sequence number this run may use.
    pub next_seq: u64,
}

fn fsync_dir(dir: &Path) -> Result<(), String> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("cannot sync directory {}: {e}", dir.display()))
}

fn write_file_atomically(path: &Path, records: &[OffsetRecord]) -> Result<(), String> {
    let mut bytes = MAGIC.to_vec();
    for r in records {
        encode_frame(r, &mut bytes);
    }
    let tmp = path.with_extension("tmp");
    let err = |e: std::io::Error| format!("cannot write {}: {e}", tmp.display());
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_data().map_err(err)?;
    }
    std::fs::rename(&tmp, path)
        .map_err(|e| format!("cannot rename {} into place: {e}", tmp.display()))
}

/// Read every group log under `<data-dir>/groups`, replay them in sequence order, and
/// leave one log per shard holding exactly the groups that shard owns under `owner`.
///
/// When the layout already matches (same shard count, no leftover snapshot) the files
/// are kept as they are (a torn tail is cut). Otherwise they are rewritten crash-safely:
/// a snapshot of the merged state with its tombstones is written first, then the old logs
/// are removed, the new ones written, and the snapshot removed. Any crash in between
/// leaves files whose replay gives the same state.
pub fn recover(
    data_dir: &Path,
    shards: usize,
    owner: impl Fn(&str) -> usize,
) -> Result<Vec<Recovered>, String> {
    let dir = groups_dir(data_dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut files = Vec::new();
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("log") => files.push(path),
            Some("tmp") => {
                let _ = std::fs::remove_file(&path);
            }
            _ => {}
        }
    }
    files.sort();
    let mut all: Vec<OffsetRecord> = Vec::new();
    let mut clean = true;
    for path in &files {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (records, valid) =
            decode_file(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        if valid < bytes.len() {
            warn!(
                file = %path.display(),
                cut_bytes = bytes.len() - valid,
                "group offsets log: cutting a torn or corrupt tail"
            );
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            let keep = valid.max(MAGIC.len()) as u64;
            if valid < MAGIC.len() {
                use std::io::Write;
                let mut f2 = &f;
                f2.write_all(MAGIC)
                    .map_err(|e| format!("cannot repair {}: {e}", path.display()))?;
            }
            f.set_len(keep)
                .and_then(|_| f.sync_data())
                .map_err(|e| format!("cannot cut {}: {e}", path.display()))?;
        }
        let shard = (0..shards).find(|&s| *path == shard_log_path(&dir, s));
        match shard {
            Some(s) => {
                if records.iter().any(|r| owner(r.group()) != s) {
                    clean = false;
                }
            }
            None => clean = false,
        }
        all.extend(records);
    }
    all.sort_by_key(|r| r.seq());
    let next_seq = all.last().map(|r| r.seq() + 1).unwrap_or(1);
    let mut merged = AllOffsets::new();
    for r in &all {
        apply(&mut merged, r);
    }
    if !clean {
        rewrite(&dir, shards, &files, &merged, &all, &owner)?;
    }
    for s in 0..shards {
        let path = shard_log_path(&dir, s);
        if !path.exists() {
            write_file_atomically(&path, &[])?;
        }
    }
    fsync_dir(&dir)?;
    let mut out: Vec<Recovered> = (0..shards)
        .map(|_| Recovered {
            offsets: AllOffsets::new(),
            next_seq,
        })
        .collect();
    let groups = merged.len();
    for (group, offsets) in merged {
        let s = owner(&group);
        out[s].offsets.insert(group, offsets);
    }
    info!(groups, next_seq, "group offsets recovered");
    Ok(out)
}

fn rewrite(
    dir: &Path,
    shards: usize,
    old: &[PathBuf],
    merged: &AllOffsets,
    history: &[OffsetRecord],
    owner: &impl Fn(&str) -> usize,
) -> Result<(), String> {
    info!(
        files = old.len(),
        shards, "group offsets: rewriting the logs for a new shard layout"
    );
    let snapshot = dir.join(SNAPSHOT);
    let mut snap = live_records(merged.iter());
    snap.extend(history.iter().filter(|r| r.is_tombstone()).cloned());
    snap.sort_by_key(|r| r.seq());
    write_file_atomically(&snapshot, &snap)?;
    fsync_dir(dir)?;
    for path in old.iter().filter(|p| **p != snapshot) {
        std::fs::remove_file(path).map_err(|e| format!("cannot remove {}: {e}", path.display()))?;
    }
    fsync_dir(dir)?;
    for s in 0..shards {
        let owned = merged.iter().filter(|(g, _)| owner(g) == s);
        write_file_atomically(&shard_log_path(dir, s), &live_records(owned))?;
    }
    fsync_dir(dir)?;
    std::fs::remove_file(&snapshot)
        .map_err(|e| format!("cannot remove {}: {e}", snapshot.display()))?;
    fsync_dir(dir)
}

// --- the running store (on the owner shard) --------------------------------------------

#[derive(Debug, thiserror::Error)]
#[error("group offsets log {path}: {reason}")]
pub struct StoreError {
    pub path: String,
    pub reason: String,
}

struct Pending {
    bytes: Vec<u8>,
    records: Vec<OffsetRecord>,
    /// Tickets handed out so far (one per `append`).
    appended: u64,
}

/// Committed offsets of the groups one shard coordinates, with their durable log.
pub struct OffsetStore {
    path: PathBuf,
    file: RefCell<Option<glommio::io::BufferedFile>>,
    map: RefCell<AllOffsets>,
    next_seq: Cell<u64>,
    pending: RefCell<Pending>,
    durable: Cell<u64>,
    write_pos: Cell<u64>,
    /// Set after an I/O error: the tail of the file is unknown, so nothing more is written.
    failed: Cell<bool>,
    lock: glommio::sync::Semaphore,
    roll_bytes: u64,
}

impl OffsetStore {
    /// Open the shard's log (after `recover`).
    pub async fn open(
        data_dir: &Path,
        shard: usize,
        recovered: Recovered,
        roll_bytes: u64,
    ) -> Result<OffsetStore, StoreError> {
        let path = shard_log_path(&groups_dir(data_dir), shard);
        let store = OffsetStore {
            path: path.clone(),
            file: RefCell::new(None),
            map: RefCell::new(recovered.offsets),
            next_seq: Cell::new(recovered.next_seq),
            pending: RefCell::new(Pending {
                bytes: Vec::new(),
                records: Vec::new(),
                appended: 0,
            }),
            durable: Cell::new(0),
            write_pos: Cell::new(0),
            failed: Cell::new(false),
            lock: glommio::sync::Semaphore::new(1),
            roll_bytes,
        };
        let file = glommio::io::OpenOptions::new()
            .write(true)
            .create(true)
            .buffered_open(&path)
            .await
            .map_err(|e| store.err(e))?;
        let size = file.file_size().await.map_err(|e| store.err(e))?;
        if size < MAGIC.len() as u64 {
            file.write_at(MAGIC.to_vec(), 0)
                .await
                .map_err(|e| store.err(e))?;
            file.fdatasync().await.map_err(|e| store.err(e))?;
            store.write_pos.set(MAGIC.len() as u64);
        } else {
            store.write_pos.set(size);
        }
        *store.file.borrow_mut() = Some(file);
        Ok(store)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError {
            path: self.path.display().to_string(),
            reason: e.to_string(),
        }
    }

    /// A fresh sequence number for a record about to be appended.
    pub fn next_seq(&self) -> u64 {
        let s = self.next_seq.get();
        self.next_seq.set(s + 1);
        s
    }

    pub fn offsets(&self) -> std::cell::Ref<'_, AllOffsets> {
        self.map.borrow()
    }

    pub fn group(&self, group: &str) -> Option<GroupOffsets> {
        self.map.borrow().get(group).cloned()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.map.borrow().contains_key(group)
    }

    pub fn size_bytes(&self) -> u64 {
        self.write_pos.get()
    }

    /// Make `records` durable, then apply them to the map. Concurrent calls share one
    /// write and one fdatasync: whoever holds the lock writes everything queued so far.
    pub async fn append(&self, records: Vec<OffsetRecord>) -> Result<(), StoreError> {
        if self.failed.get() {
            return Err(self.err("an earlier write failed; the log is read-only"));
        }
        let ticket = {
            let mut p = self.pending.borrow_mut();
            for r in &records {
                encode_frame(r, &mut p.bytes);
            }
            p.records.extend(records);
            p.appended += 1;
            p.appended
        };
        let _permit = self.lock.acquire_permit(1).await.map_err(|e| self.err(e))?;
        if self.durable.get() >= ticket {
            return Ok(());
        }
        if self.failed.get() {
            return Err(self.err("an earlier write failed; the log is read-only"));
        }
        let (bytes, recs, upto) = {
            let mut p = self.pending.borrow_mut();
            (
                std::mem::take(&mut p.bytes),
                std::mem::take(&mut p.records),
                p.appended,
            )
        };
        if let Err(e) = self.write_and_sync(bytes).await {
            self.failed.set(true);
            return Err(e);
        }
        self.durable.set(upto);
        {
            let mut map = self.map.borrow_mut();
            for r in &recs {
                apply(&mut map, r);
            }
        }
        if self.should_roll() {
            if let Err(e) = self.compact_locked().await {
                warn!("group offsets log compaction failed: {e}");
                self.failed.set(true);
            }
        }
        Ok(())
    }

    async fn write_and_sync(&self, bytes: Vec<u8>) -> Result<(), StoreError> {
        let len = bytes.len() as u64;
        let pos = self.write_pos.get();
        let file = self.file.borrow_mut().take();
        let Some(file) = file else {
            return Err(self.err("the log is closed"));
        };
        let r = async {
            let n = file.write_at(bytes, pos).await.map_err(|e| self.err(e))?;
            if n as u64 != len {
                return Err(self.err(format!("short write: {n} of {len} bytes")));
            }
            file.fdatasync().await.map_err(|e| self.err(e))
        }
        .await;
        *self.file.borrow_mut() = Some(file);
        r?;
        self.write_pos.set(pos + len);
        Ok(())
    }

    fn live_bytes_estimate(&self) -> u64 {
        let map = self.map.borrow();
        map.iter()
            .map(|(g, o)| {
                o.iter()
                    .map(|((t, _), c)| 64 + g.len() + t.len() + c.metadata.len())
                    .sum::<usize>()
            })
            .sum::<usize>() as u64
    }

    fn should_roll(&self) -> bool {
        let size = self.write_pos.get();
        size > self.roll_bytes && size > 2 * self.live_bytes_estimate()
    }

    /// Replace the log with the live records (compaction on roll). Runs under the lock,
    /// after the map holds everything that is durable.
    async fn compact_locked(&self) -> Result<(), StoreError> {
        let records = live_records(self.map.borrow().iter());
        let mut bytes = MAGIC.to_vec();
        for r in &records {
            encode_frame(r, &mut bytes);
        }
        let tmp = self.path.with_extension("tmp");
        let len = bytes.len() as u64;
        let f = glommio::io::BufferedFile::create(&tmp)
            .await
            .map_err(|e| self.err(e))?;
        f.write_at(bytes, 0).await.map_err(|e| self.err(e))?;
        f.fdatasync().await.map_err(|e| self.err(e))?;
        glommio::io::rename(&tmp, &self.path)
            .await
            .map_err(|e| self.err(e))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let d = glommio::io::Directory::open(dir)
            .await
            .map_err(|e| self.err(e))?;
        d.sync().await.map_err(|e| self.err(e))?;
        let _ = d.close().await;
        let old = self.file.borrow_mut().replace(f);
        if let Some(old) = old {
            let _ = old.close().await;
        }
        info!(
            file = %self.path.display(),
            from_bytes = self.write_pos.get(),
            to_bytes = len,
            "group offsets log compacted"
        );
        self.write_pos.set(len);
        Ok(())
    }

    /// Compact now (tests, and shutdown if wanted).
    pub async fn compact(&self) -> Result<(), StoreError> {
        let _permit = self.lock.acquire_permit(1).await.map_err(|e| self.err(e))?;
        self.compact_locked().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn run<G, F>(g: G)
    where
        G: FnOnce() -> F + Send + 'static,
        F: std::future::Future<Output = ()> + 'static,
    {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(1 << 20)
            .spawn(g)
            .expect("executor starts")
            .join()
            .expect("executor runs");
    }

    fn owner2(g: &str) -> usize {
        crate::coordinator::group::owner_shard(g, 2).0
    }

    #[test]
    fn offsets_are_written_restored_and_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let rec = recover(&data, 1, |_| 0).unwrap().pop().unwrap();
        assert!(rec.offsets.is_empty());
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
        let g = &rec.offsets["g"];
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
        assert_eq!(rec.offsets["g"].len(), 20);
        assert_eq!(rec.offsets["g"][&("t".to_string(), 19)].offset, 29);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let gdir = groups_dir(dir.path());
        std::fs::create_dir_all(&gdir).unwrap();
        let mut bytes = MAGIC.to_vec();
        encode_frame(&commit(1, "g", "t", 0, 5), &mut bytes);
        encode_frame(&commit(2, "g", "t", 0, 6), &mut bytes);
        let good = bytes.len();
        encode_frame(&commit(3, "g", "t", 0, 7), &mut bytes);
        bytes.truncate(bytes.len() - 3); // torn write
        std::fs::write(shard_log_path(&gdir, 0), &bytes).unwrap();
        let rec = recover(dir.path(), 1, |_| 0).unwrap().pop().unwrap();
        assert_eq!(rec.offsets["g"][&("t".to_string(), 0)].offset, 6);
        assert_eq!(
            std::fs::metadata(shard_log_path(&gdir, 0)).unwrap().len(),
            good as u64
        );
        // A flipped bit in the last frame: its CRC fails, it is cut as well.
        let mut bytes = std::fs::read(shard_log_path(&gdir, 0)).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(shard_log_path(&gdir, 0), &bytes).unwrap();
        let rec = recover(dir.path(), 1, |_| 0).unwrap().pop().unwrap();
        assert_eq!(rec.offsets["g"][&("t".to_string(), 0)].offset, 5);
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
            encode_frame(&commit(i as u64 + 1, g, "t", 0, 100 + i as i64), &mut bytes);
        }
        encode_frame(
            &OffsetRecord::DeleteGroup {
                seq: 20,
                group: "group-0".into(),
            },
            &mut bytes,
        );
        std::fs::write(shard_log_path(&gdir, 0), &bytes).unwrap();
        let rec = recover(dir.path(), 2, owner2).unwrap();
        for (i, g) in groups.iter().enumerate().skip(1) {
            let s = owner2(g);
            assert_eq!(
                rec[s].offsets[g][&("t".to_string(), 0)].offset,
                100 + i as i64
            );
            assert!(!rec[1 - s].offsets.contains_key(g));
        }
        assert!(!rec.iter().any(|r| r.offsets.contains_key("group-0")));
        assert_eq!(rec[0].next_seq, 21);
        // Each file now holds only its own groups; back to one shard works too.
        assert!(!gdir.join(SNAPSHOT).exists());
        let rec = recover(dir.path(), 1, |_| 0).unwrap();
        assert_eq!(rec[0].offsets.len(), 7);
        assert!(!shard_log_path(&gdir, 1).exists());
    }

    #[test]
    fn a_crash_during_a_rewrite_loses_nothing() {
        // State after a crash between "snapshot written" and "old logs removed", where
        // the old logs hold a commit whose tombstone is only in a log already removed.
        let dir = tempfile::tempdir().unwrap();
        let gdir = groups_dir(dir.path());
        std::fs::create_dir_all(&gdir).unwrap();
        let mut snap = MAGIC.to_vec();
        encode_frame(&commit(3, "a", "t", 0, 30), &mut snap);
        encode_frame(
            &OffsetRecord::Delete {
                seq: 4,
                group: "b".into(),
                topic: "t".into(),
                partition: 0,
            },
            &mut snap,
        );
        std::fs::write(gdir.join(SNAPSHOT), &snap).unwrap();
        let mut old = MAGIC.to_vec();
        encode_frame(&commit(1, "a", "t", 0, 10), &mut old);
        encode_frame(&commit(2, "b", "t", 0, 20), &mut old);
        std::fs::write(shard_log_path(&gdir, 0), &old).unwrap();
        let rec = recover(dir.path(), 1, |_| 0).unwrap();
        assert_eq!(rec[0].offsets["a"][&("t".to_string(), 0)].offset, 30);
        assert!(!rec[0].offsets.contains_key("b"));
        assert!(!gdir.join(SNAPSHOT).exists());
    }
}
