//! The journal: durable state that changes often (committed group offsets today;
//! transaction state and share-partition state next) as an append-only log of
//! checksummed rkyv records per shard, group-committed, compacted on roll (DESIGN.md,
//! "Storage").
//!
//! A user of the journal writes two types and nothing else: a record type
//! ([`JournalRecord`], one durable change, with its sequence number and the key that
//! decides its owner shard — a group id, a transactional id) and a state type
//! ([`JournalState`], what the records build, and the records that rebuild it). File
//! format, group commit, compaction, recovery and the move of keys to new owners when the
//! shard count changes are the journal's.
//!
//! ## Files
//!
//! `<dir>/shard-<N>.log`, one per shard: `magic (8) | frame*`, a frame being `u32 LE
//! payload length | u32 LE CRC-32C of the payload | payload (rkyv archive of one record)`.
//! The magic names what a journal holds (`SLGROFF1`: group offsets), so one kind is never
//! read as another. Every record is its own frame, so after a crash an append survives as
//! a prefix of its records: a torn or corrupt frame ends the file's log, and nothing
//! after it is read.
//!
//! ## Sequence numbers
//!
//! For one key, sequence order is write order: within a run only the key's owner shard
//! writes its records, a journal refuses records appended out of the order their numbers
//! were taken in, and every run starts above the highest number recovered. Different keys
//! may share a number (every shard starts from the same one). So recovery reads the files
//! of every shard (the key → shard mapping changes with the shard count), sorts all
//! records by sequence and replays them on the owner of each key.
//!
//! ## Why this cut
//!
//! - [`recover`] is apart from [`Journal::open`]: it reads every shard's file, so it runs
//!   once, blocking, before the shards start; each shard then opens its own file with what
//!   `recover` found for it.
//! - The journal owns the state and changes it only by `apply` of records already
//!   durable, so memory never runs ahead of the disk; callers get it read-only.
//! - A resharding rewrite first saves the whole history as a snapshot, not live records
//!   plus tombstones (as the offsets log did before the journal): replaying it with any
//!   subset of the old files gives the same state, and the journal need not know which
//!   records delete.
//! - Compaction compares the file with the size of the last compacted file, which the
//!   journal measures itself, so a state need not estimate its own encoded size (the
//!   offsets log did that over the whole map on every commit past the roll size).

use std::cell::{Cell, Ref, RefCell};
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use futures_channel::oneshot;
use glommio::io::BufferedFile;
use glommio::sync::Semaphore;
use rkyv::api::high::{HighDeserializer, HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use tracing::{info, warn};

use crate::crc::crc32c;

/// A record larger than this is refused on append and read as corruption on recovery.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
const MAGIC_LEN: usize = 8;
const FRAME_HEADER: usize = 8;
/// The file that holds the whole history while a rewrite for a new shard count runs.
pub const SNAPSHOT_FILE: &str = "snapshot.log";

/// One durable change. `seq` comes from [`Journal::next_seq`]; `key` decides the owner
/// shard (the same `owner` function for every record of one journal).
pub trait JournalRecord:
    Clone
    + rkyv::Archive<
        Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>
                      + rkyv::Deserialize<Self, HighDeserializer<rancor::Error>>,
    > + for<'a> rkyv::Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>
{
    fn seq(&self) -> u64;
    fn key(&self) -> &str;
}

/// What a journal's records build: on each shard, the part owned there.
///
/// Recovery relies on two properties of `apply`, which a map of keys to their newest
/// value (with removals) has: records of different keys commute, and applying one
/// record twice in a row changes nothing more than applying it once (during a crashed
/// rewrite the snapshot and the old files hold the same records).
pub trait JournalState: Default {
    type Record: JournalRecord;
    fn apply(&mut self, rec: &Self::Record);
    /// Records that rebuild this state from empty, each keeping its original `seq`
    /// (compaction, and the files rewritten when the shard count changes). Their order
    /// does not matter: the journal sorts them.
    fn live_records(&self) -> Vec<Self::Record>;
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: cannot {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    #[error("journal {}: magic \"{found}\", not \"{expected}\": not this kind of journal", path.display())]
    BadMagic {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("journal {}: cannot encode a record: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
    #[error(
        "journal {}: record sequence {seq} appended where {min} or above was due: records \
         must be appended in the order their sequence numbers were taken",
        path.display()
    )]
    OutOfOrder { path: PathBuf, seq: u64, min: u64 },
    #[error("journal {}: an earlier write failed and the file's tail is unknown; read-only until restart", path.display())]
    Failed { path: PathBuf },
}

fn io_err<E: Into<io::Error>>(path: &Path, op: &'static str) -> impl FnOnce(E) -> JournalError {
    let path = path.to_path_buf();
    move |e| JournalError::Io {
        path,
        op,
        source: e.into(),
    }
}

fn bad_magic(path: &Path, found: &[u8], expected: &[u8; 8]) -> JournalError {
    JournalError::BadMagic {
        path: path.to_path_buf(),
        found: found.escape_ascii().to_string(),
        expected: expected.escape_ascii().to_string(),
    }
}

// --- the file format -------------------------------------------------------------------

/// The file of shard `shard` under `dir`.
pub fn shard_path(dir: &Path, shard: usize) -> PathBuf {
    dir.join(format!("shard-{shard}.log"))
}

/// Append the frame of `rec` to `out` (nothing on error).
pub fn encode_frame<R: JournalRecord>(rec: &R, out: &mut Vec<u8>) -> Result<(), String> {
    let payload =
        rkyv::to_bytes::<rancor::Error>(rec).map_err(|e| format!("cannot serialize: {e}"))?;
    if payload.is_empty() || payload.len() > MAX_RECORD_BYTES {
        return Err(format!(
            "a record of {} bytes is outside 1..={MAX_RECORD_BYTES}",
            payload.len()
        ));
    }
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

fn encode_file<R: JournalRecord>(magic: &[u8; 8], records: &[R]) -> Result<Vec<u8>, String> {
    let mut bytes = magic.to_vec();
    for r in records {
        encode_frame(r, &mut bytes)?;
    }
    Ok(bytes)
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The records of a whole file and the length of its valid prefix: a torn or corrupt
/// frame ends the log there. `None` when the file starts with another magic.
fn decode_file<R: JournalRecord>(bytes: &[u8], magic: &[u8; 8]) -> Option<(Vec<R>, usize)> {
    if bytes.len() < MAGIC_LEN {
        // A file cut before its magic was fully written holds no record.
        return Some((Vec::new(), 0));
    }
    if &bytes[..MAGIC_LEN] != magic {
        return None;
    }
    let mut pos = MAGIC_LEN;
    let mut out = Vec::new();
    while pos + FRAME_HEADER <= bytes.len() {
        let len = le_u32(&bytes[pos..]) as usize;
        let crc = le_u32(&bytes[pos + 4..]);
        let start = pos + FRAME_HEADER;
        if len == 0 || len > MAX_RECORD_BYTES || start + len > bytes.len() {
            break;
        }
        let payload = &bytes[start..start + len];
        if crc32c(payload) != crc {
            break;
        }
        let mut aligned = AlignedVec::<16>::with_capacity(len);
        aligned.extend_from_slice(payload);
        match rkyv::from_bytes::<R, rancor::Error>(&aligned) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
        pos = start + len;
    }
    Some((out, pos))
}

/// `bytes` with the checksum of every frame that fits recomputed (the fuzz targets' way
/// past the CRCs to the record decoding and replay behind them).
#[cfg(any(test, fuzzing))]
pub fn refit_for_tests(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let mut pos = MAGIC_LEN;
    while pos + FRAME_HEADER <= out.len() {
        let len = le_u32(&out[pos..]) as usize;
        let start = pos + FRAME_HEADER;
        if len == 0 || len > MAX_RECORD_BYTES || start + len > out.len() {
            break;
        }
        let crc = crc32c(&out[start..start + len]);
        out[pos + 4..start].copy_from_slice(&crc.to_le_bytes());
        pos = start + len;
    }
    out
}

fn sorted<R: JournalRecord>(mut records: Vec<R>) -> Vec<R> {
    records.sort_by_key(|r| r.seq());
    records
}

// --- recovery (blocking, before the shards start) --------------------------------------

/// What one shard's journal starts from.
#[derive(Debug)]
pub struct Recovered<S> {
    /// The part of the state this shard owns.
    pub state: S,
    /// The first sequence number this run may use (the same on every shard).
    pub next_seq: u64,
    /// Size of a compacted file of `state` (the first roll compares with it).
    compacted_bytes: u64,
    /// Where the shard's file ends: its last valid frame. Only zeros follow (the tail
    /// `Journal::write` zeroes ahead of its appends).
    end: u64,
}

/// Read every `*.log` under `dir` (creating it if needed), replay all records in sequence
/// order on the shard `owner(key)` names, and leave one file per shard holding exactly
/// the keys that shard owns. Blocking; runs before the shards start.
///
/// A torn or corrupt tail ends that file's log and is cut (and said in the log). When the
/// files already match the layout (same shard count, no leftover snapshot) they are kept
/// as they are. Otherwise they are rewritten crash-safely: the whole history is saved as
/// a snapshot first, then the old files are removed, the new ones written, and the
/// snapshot removed; a crash anywhere in between leaves files whose replay gives the
/// same state.
pub fn recover<S: JournalState>(
    dir: &Path,
    magic: &[u8; 8],
    shards: usize,
    owner: impl Fn(&str) -> usize,
) -> Result<Vec<Recovered<S>>, JournalError> {
    assert!(shards > 0, "a journal needs at least one shard");
    let files = list_logs(dir)?;
    let mut history: Vec<S::Record> = Vec::new();
    let mut in_place = true;
    let mut ends = vec![MAGIC_LEN as u64; shards];
    for path in &files {
        let (records, end) = read_log::<S::Record>(path, magic)?;
        let shard = (0..shards).find(|&s| *path == shard_path(dir, s));
        in_place &= shard.is_some_and(|s| records.iter().all(|r| owner(r.key()) == s));
        if let Some(s) = shard {
            ends[s] = end.max(MAGIC_LEN) as u64;
        }
        history.extend(records);
    }
    let history = sorted(history);
    let next_seq = history.last().map_or(1, |r| r.seq() + 1);
    let mut states: Vec<S> = (0..shards).map(|_| S::default()).collect();
    for r in &history {
        let s = owner(r.key());
        assert!(
            s < shards,
            "owner of {:?} is {s} of {shards} shards",
            r.key()
        );
        states[s].apply(r);
    }
    let mut compacted = Vec::with_capacity(shards);
    for (s, state) in states.iter().enumerate() {
        let bytes = encode_file(magic, &sorted(state.live_records())).map_err(|reason| {
            JournalError::Encode {
                path: shard_path(dir, s),
                reason,
            }
        })?;
        compacted.push(bytes);
    }
    if !in_place {
        rewrite(dir, magic, &files, &history, &compacted)?;
        ends = compacted.iter().map(|b| b.len() as u64).collect();
    }
    for s in 0..shards {
        let path = shard_path(dir, s);
        if !path.exists() {
            write_file_atomically(&path, magic)?;
        }
    }
    fsync_dir(dir)?;
    info!(dir = %dir.display(), records = history.len(), next_seq, "journal recovered");
    Ok(states
        .into_iter()
        .zip(compacted)
        .zip(ends)
        .map(|((state, bytes), end)| Recovered {
            state,
            next_seq,
            compacted_bytes: bytes.len() as u64,
            end,
        })
        .collect())
}

/// The `*.log` files under `dir`, sorted; leftover `*.tmp` files (a write that never
/// reached its rename) are removed.
fn list_logs(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir, "create the directory"))?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir, "list the directory"))? {
        let path = entry.map_err(io_err(dir, "list the directory"))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("log") => files.push(path),
            Some("tmp") => std::fs::remove_file(&path).map_err(io_err(&path, "remove"))?,
            _ => {}
        }
    }
    files.sort();
    Ok(files)
}

/// The valid records of one file and where they end, after cutting a torn or corrupt
/// tail off it. A tail of zeros alone is kept: it is the room zeroed ahead of the appends.
fn read_log<R: JournalRecord>(
    path: &Path,
    magic: &[u8; 8],
) -> Result<(Vec<R>, usize), JournalError> {
    let bytes = std::fs::read(path).map_err(io_err(path, "read"))?;
    let (records, valid) =
        decode_file(&bytes, magic).ok_or_else(|| bad_magic(path, &bytes[..MAGIC_LEN], magic))?;
    let zeroed = valid >= MAGIC_LEN && bytes[valid..].iter().all(|&b| b == 0);
    if valid < bytes.len() && !zeroed {
        warn!(
            file = %path.display(),
            cut_bytes = bytes.len() - valid,
            kept_records = records.len(),
            "journal: cutting a torn or corrupt tail"
        );
        cut(path, magic, valid)?;
    }
    Ok((records, valid))
}

fn cut(path: &Path, magic: &[u8; 8], valid: usize) -> Result<(), JournalError> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path, "open"))?;
    if valid < MAGIC_LEN {
        f.write_all_at(magic, 0)
            .map_err(io_err(path, "repair the magic"))?;
    }
    f.set_len(valid.max(MAGIC_LEN) as u64)
        .and_then(|_| f.sync_data())
        .map_err(io_err(path, "cut the tail"))
}

fn fsync_dir(dir: &Path) -> Result<(), JournalError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "sync the directory"))
}

/// Temp file, fdatasync, rename. The caller syncs the directory.
fn write_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp, "create"))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_data())
        .map_err(io_err(&tmp, "write"))?;
    std::fs::rename(&tmp, path).map_err(io_err(path, "rename a temp file onto"))
}

/// Rewrite the files of `dir` as `new` (one compacted file per shard), crash-safely.
fn rewrite<R: JournalRecord>(
    dir: &Path,
    magic: &[u8; 8],
    old: &[PathBuf],
    history: &[R],
    new: &[Vec<u8>],
) -> Result<(), JournalError> {
    info!(
        dir = %dir.display(),
        files = old.len(),
        shards = new.len(),
        "journal: rewriting the files for a new shard layout"
    );
    let snapshot = dir.join(SNAPSHOT_FILE);
    let bytes = encode_file(magic, history).map_err(|reason| JournalError::Encode {
        path: snapshot.clone(),
        reason,
    })?;
    write_file_atomically(&snapshot, &bytes)?;
    fsync_dir(dir)?;
    for path in old.iter().filter(|p| **p != snapshot) {
        std::fs::remove_file(path).map_err(io_err(path, "remove"))?;
    }
    fsync_dir(dir)?;
    for (s, bytes) in new.iter().enumerate() {
        write_file_atomically(&shard_path(dir, s), bytes)?;
    }
    fsync_dir(dir)?;
    std::fs::remove_file(&snapshot).map_err(io_err(&snapshot, "remove"))?;
    fsync_dir(dir)
}

// --- the running journal (on its shard) ------------------------------------------------

/// fdatasyncs of one journal that may run at once, each on its own descriptor. A sync
/// reports a write-back error once per open file description (the kernel's errseq), so
/// one descriptor per sync in flight means no sync can take another's error and pass.
const SYNC_SLOTS: usize = 2;

/// Appends queued for the next write, with whoever waits for them.
struct Pending<R> {
    bytes: Vec<u8>,
    records: Vec<R>,
    waiters: Vec<oneshot::Sender<bool>>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Pending {
            bytes: Vec::new(),
            records: Vec::new(),
            waiters: Vec::new(),
        }
    }
}

/// A written batch whose fdatasync has not been answered yet.
struct InFlight<R> {
    n: u64,
    records: Vec<R>,
    waiters: Vec<oneshot::Sender<bool>>,
    /// Its own sync came back (either way).
    done: bool,
}

/// Batches up to this size are written with a plain `pwrite` on the shard's thread
/// (`Journal::write`).
const DIRECT_WRITE_MAX: usize = 256 << 10;

/// How far past its last frame the file is zeroed each time the appends reach the zeroed
/// end (`Journal::write`). An fdatasync after an append into zeroed room changes no
/// metadata (no block allocated, no new size), so ext4 flushes the data without
/// committing its journal: a share acknowledgement's sync then no longer waits for the
/// commit another shard's journal, or a segment, started (perf/RESULTS.md). One sync in
/// 64 KiB of appends commits the new room and writes it back: small, so that sync is
/// not much slower than any other (with 1 MiB, the first acknowledgement of a run took
/// the p99 of four share consumers on one partition up by ~0.3 ms).
const ZERO_AHEAD: u64 = 64 << 10;

/// The open descriptors of the journal's file: one that writes through io_uring, one for
/// plain `pwrite`s, and one per sync slot.
struct Files {
    writer: Rc<BufferedFile>,
    direct: std::fs::File,
    syncers: Vec<Rc<BufferedFile>>,
}

/// One shard's journal: its state and its file. Lives on the shard (not `Send`); never
/// hold the `state()` borrow across an await.
///
/// Group commit, pipelined: whoever takes the write lock writes everything queued so far
/// as one batch, takes a sync slot, lets the next batch be written and runs its
/// fdatasync. Batches are answered and applied in write order, each once a sync that
/// started after it was written has come back (its own or a later one: a later sync
/// covers every earlier write). So an append waits for one fdatasync, not for the one
/// running when it arrived and then its own.
pub struct Journal<S: JournalState> {
    path: PathBuf,
    magic: [u8; 8],
    files: RefCell<Files>,
    state: RefCell<S>,
    next_seq: Cell<u64>,
    /// The lowest sequence number the next appended record may carry.
    min_seq: Cell<u64>,
    pending: RefCell<Pending<S::Record>>,
    in_flight: RefCell<VecDeque<InFlight<S::Record>>>,
    /// Number of the next batch written, and of the last one known durable.
    next_batch: Cell<u64>,
    durable_batch: Cell<u64>,
    write_pos: Cell<u64>,
    /// The file's size: from `write_pos` to here it holds zeros.
    zeroed_end: Cell<u64>,
    /// Size of the file when last compacted (or as compacted at recovery).
    compacted_bytes: Cell<u64>,
    syncs: Cell<u64>,
    /// Set after an I/O error: the tail of the file is unknown, so nothing more is written.
    failed: Cell<bool>,
    /// Held while a batch is written (and while compaction runs): one write at a time.
    write_lock: Semaphore,
    /// One permit per sync descriptor; compaction takes them all.
    sync_slots: Semaphore,
    roll_bytes: u64,
}

async fn open_rw(path: &Path) -> Result<BufferedFile, JournalError> {
    glommio::io::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .buffered_open(path)
        .await
        .map_err(io_err(path, "open"))
}

fn open_direct(path: &Path) -> Result<std::fs::File, JournalError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_err(path, "open"))
}

/// The descriptors that sync `path`, opened after its writer.
async fn open_syncers(path: &Path) -> Result<Vec<Rc<BufferedFile>>, JournalError> {
    let mut syncers = Vec::with_capacity(SYNC_SLOTS);
    for _ in 0..SYNC_SLOTS {
        syncers.push(Rc::new(open_rw(path).await?));
    }
    Ok(syncers)
}

async fn close_all(files: Files) {
    for f in std::iter::once(files.writer).chain(files.syncers) {
        // Nothing is in flight on them (the caller holds every slot); closing an
        // unlinked or fully synced file can lose nothing.
        if let Ok(f) = Rc::try_unwrap(f) {
            let _ = f.close().await;
        }
    }
}

/// Answers a batch's waiters with a failure if its writer is dropped before it could.
struct Unanswered<'a, S: JournalState> {
    journal: &'a Journal<S>,
    n: u64,
    armed: bool,
}

impl<S: JournalState> Unanswered<'_, S> {
    fn answer(mut self, ok: bool) {
        self.armed = false;
        self.journal.finish(self.n, ok);
    }
}

impl<S: JournalState> Drop for Unanswered<'_, S> {
    fn drop(&mut self) {
        if self.armed {
            self.journal.finish(self.n, false);
        }
    }
}

impl<S: JournalState> Journal<S> {
    /// Open shard `shard`'s file under `dir` (after `recover` with the same `dir` and
    /// `magic`). Compaction runs once the file is over `roll_bytes` and over twice its
    /// last compacted size.
    pub async fn open(
        dir: &Path,
        shard: usize,
        magic: &[u8; 8],
        recovered: Recovered<S>,
        roll_bytes: u64,
    ) -> Result<Journal<S>, JournalError> {
        let path = shard_path(dir, shard);
        let file = open_rw(&path).await?;
        let size = file.file_size().await.map_err(io_err(&path, "stat"))?;
        let (end, size) = if size < MAGIC_LEN as u64 {
            file.write_at(magic.to_vec(), 0)
                .await
                .map_err(io_err(&path, "write the magic"))?;
            file.fdatasync().await.map_err(io_err(&path, "sync"))?;
            (MAGIC_LEN as u64, MAGIC_LEN as u64)
        } else {
            let head = file
                .read_at(0, MAGIC_LEN)
                .await
                .map_err(io_err(&path, "read the magic"))?;
            if &head[..] != magic {
                return Err(bad_magic(&path, &head, magic));
            }
            (recovered.end.clamp(MAGIC_LEN as u64, size), size)
        };
        let files = Files {
            writer: Rc::new(file),
            direct: open_direct(&path)?,
            syncers: open_syncers(&path).await?,
        };
        Ok(Journal {
            magic: *magic,
            files: RefCell::new(files),
            state: RefCell::new(recovered.state),
            next_seq: Cell::new(recovered.next_seq),
            min_seq: Cell::new(recovered.next_seq),
            pending: RefCell::new(Pending::default()),
            in_flight: RefCell::new(VecDeque::new()),
            next_batch: Cell::new(1),
            durable_batch: Cell::new(0),
            write_pos: Cell::new(end),
            zeroed_end: Cell::new(size),
            compacted_bytes: Cell::new(recovered.compacted_bytes.max(MAGIC_LEN as u64)),
            syncs: Cell::new(0),
            failed: Cell::new(false),
            write_lock: Semaphore::new(1),
            sync_slots: Semaphore::new(SYNC_SLOTS as u64),
            roll_bytes,
            path,
        })
    }

    /// The state, as of the last durable append.
    pub fn state(&self) -> Ref<'_, S> {
        self.state.borrow()
    }

    /// A fresh sequence number for a record about to be appended: above everything
    /// recovered and every number handed out before.
    pub fn next_seq(&self) -> u64 {
        let s = self.next_seq.get();
        self.next_seq.set(s + 1);
        s
    }

    /// The file's size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.write_pos.get()
    }

    /// fdatasync calls made for appends since open: one per group commit.
    pub fn syncs(&self) -> u64 {
        self.syncs.get()
    }

    fn usable(&self) -> Result<(), JournalError> {
        if self.failed.get() {
            return Err(self.failed_error());
        }
        Ok(())
    }

    fn failed_error(&self) -> JournalError {
        JournalError::Failed {
            path: self.path.clone(),
        }
    }

    /// Make `records` durable, then apply them to the state; answered once they are
    /// fdatasync'd. Appends that arrive while a write runs share the next batch (group
    /// commit). Records must carry sequence numbers from `next_seq`, in the order they
    /// were taken. On an error the state is as it was, and after an I/O error every later
    /// append fails too.
    pub async fn append(&self, records: Vec<S::Record>) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        self.usable()?;
        let answer = self.enqueue(records)?;
        let committed = self.commit_pending().await;
        if answer.await != Ok(true) {
            return Err(committed.err().unwrap_or_else(|| self.failed_error()));
        }
        // The records are durable: a compaction that fails now is logged, and it fails
        // the appends after this one, not this one.
        if self.should_roll() {
            let _ = self.compact_when(Self::should_roll).await;
        }
        Ok(())
    }

    /// Check and encode `records`, then queue them; returns where their answer comes.
    /// Nothing is queued on error.
    fn enqueue(&self, records: Vec<S::Record>) -> Result<oneshot::Receiver<bool>, JournalError> {
        let mut bytes = Vec::new();
        let mut min = self.min_seq.get();
        for r in &records {
            if r.seq() < min || r.seq() >= self.next_seq.get() {
                return Err(JournalError::OutOfOrder {
                    path: self.path.clone(),
                    seq: r.seq(),
                    min,
                });
            }
            min = r.seq() + 1;
            encode_frame(r, &mut bytes).map_err(|reason| JournalError::Encode {
                path: self.path.clone(),
                reason,
            })?;
        }
        self.min_seq.set(min);
        let (tx, rx) = oneshot::channel();
        let mut p = self.pending.borrow_mut();
        p.bytes.extend_from_slice(&bytes);
        p.records.extend(records);
        p.waiters.push(tx);
        Ok(rx)
    }

    /// Write whatever is queued as one batch and sync it (nothing, if another task took
    /// the queue first). Returns this write's or sync's own error; the batch's waiters
    /// learn the outcome through `finish`.
    async fn commit_pending(&self) -> Result<(), JournalError> {
        let write = self
            .write_lock
            .acquire_permit(1)
            .await
            .map_err(io_err(&self.path, "wait for the write lock"))?;
        let p = std::mem::take(&mut *self.pending.borrow_mut());
        if p.waiters.is_empty() {
            return Ok(());
        }
        let n = self.next_batch.get();
        self.next_batch.set(n + 1);
        self.in_flight.borrow_mut().push_back(InFlight {
            n,
            records: p.records,
            waiters: p.waiters,
            done: false,
        });
        let unanswered = Unanswered {
            journal: self,
            n,
            armed: true,
        };
        if self.failed.get() {
            unanswered.answer(false);
            return Ok(());
        }
        if let Err(e) = self.write(p.bytes).await {
            unanswered.answer(false);
            return Err(e);
        }
        let slot = self
            .sync_slots
            .acquire_permit(1)
            .await
            .map_err(io_err(&self.path, "wait for a sync slot"))?;
        drop(write);
        let synced = self.sync().await;
        unanswered.answer(synced.is_ok());
        drop(slot);
        synced
    }

    /// Write `bytes` at the end of the file. Under the write lock.
    ///
    /// A batch up to `DIRECT_WRITE_MAX` is one `pwrite` on the shard's thread: a copy into
    /// the page cache of a few hundred bytes, some microseconds. Through io_uring it went
    /// to the worker thread (ext4 refuses non-blocking buffered writes), which must wait
    /// for the shard's own core: p50 59 us, p99 2.1 ms of an acknowledgement's time with
    /// four share consumers (perf/RESULTS.md). Such a small write can block only where
    /// the whole machine is over its dirty-page limit, where the worker's would too.
    ///
    /// A batch that reaches past the zeroed end carries `ZERO_AHEAD` zeros behind it, in
    /// the same write.
    async fn write(&self, mut bytes: Vec<u8>) -> Result<(), JournalError> {
        let len = bytes.len() as u64;
        let pos = self.write_pos.get();
        if pos + len > self.zeroed_end.get() {
            bytes.resize((len + ZERO_AHEAD) as usize, 0);
        }
        let written = bytes.len() as u64;
        if bytes.len() <= DIRECT_WRITE_MAX {
            use std::os::unix::fs::FileExt;
            self.files
                .borrow()
                .direct
                .write_all_at(&bytes, pos)
                .map_err(io_err(&self.path, "write"))?;
            self.wrote(pos, len, written);
            return Ok(());
        }
        let writer = self.files.borrow().writer.clone();
        let n = writer
            .write_at(bytes, pos)
            .await
            .map_err(io_err(&self.path, "write"))?;
        if n as u64 != written {
            let short = io::Error::other(format!("short write: {n} of {written} bytes"));
            return Err(io_err(&self.path, "write")(short));
        }
        self.wrote(pos, len, written);
        Ok(())
    }

    /// `len` bytes of frames, then zeros up to `written`, were written at `pos`.
    fn wrote(&self, pos: u64, len: u64, written: u64) {
        self.write_pos.set(pos + len);
        let zeroed = self.zeroed_end.get().max(pos + written);
        self.zeroed_end.set(zeroed);
    }

    /// One fdatasync, on a descriptor of its own. Under a sync slot.
    async fn sync(&self) -> Result<(), JournalError> {
        let Some(fd) = self.files.borrow_mut().syncers.pop() else {
            return Err(self.failed_error()); // more slots than descriptors: cannot be
        };
        self.syncs.set(self.syncs.get() + 1);
        let started = std::time::Instant::now();
        let synced = fd.fdatasync().await.map_err(io_err(&self.path, "sync"));
        crate::runtime::sync_latency::record(
            crate::runtime::sync_latency::Synced::Journal,
            started.elapsed(),
        );
        self.files.borrow_mut().syncers.push(fd);
        synced
    }

    /// Batch `n`'s sync came back, `ok` or not. Answers, in write order, every batch now
    /// known durable (applying its records) or known lost (after any failure, every batch
    /// not yet answered fails).
    fn finish(&self, n: u64, ok: bool) {
        if !ok {
            self.failed.set(true);
        } else if !self.failed.get() {
            self.durable_batch.set(self.durable_batch.get().max(n));
        }
        let mut in_flight = self.in_flight.borrow_mut();
        if let Some(b) = in_flight.iter_mut().find(|b| b.n == n) {
            b.done = true;
        }
        while let Some(front) = in_flight.front() {
            let durable = front.n <= self.durable_batch.get();
            let lost = self.failed.get() && front.done;
            if !durable && !lost {
                break;
            }
            let b = in_flight.pop_front().expect("front exists");
            if durable {
                let mut state = self.state.borrow_mut();
                for r in &b.records {
                    state.apply(r);
                }
            }
            for w in b.waiters {
                let _ = w.send(durable);
            }
        }
    }

    fn should_roll(&self) -> bool {
        let size = self.write_pos.get();
        size > self.roll_bytes && size > 2 * self.compacted_bytes.get()
    }

    /// Replace the file with the live records, atomically (temp file, fdatasync, rename,
    /// directory fsync). Runs holding the write lock and every sync slot, so the state
    /// holds everything durable.
    async fn compact_locked(&self) -> Result<(), JournalError> {
        let records = sorted(self.state.borrow().live_records());
        let bytes = encode_file(&self.magic, &records).map_err(|reason| JournalError::Encode {
            path: self.path.clone(),
            reason,
        })?;
        let len = bytes.len() as u64;
        let tmp = self.path.with_extension("tmp");
        let f = BufferedFile::create(&tmp)
            .await
            .map_err(io_err(&tmp, "create"))?;
        let n = f.write_at(bytes, 0).await.map_err(io_err(&tmp, "write"))?;
        if n as u64 != len {
            let short = io::Error::other(format!("short write: {n} of {len} bytes"));
            return Err(io_err(&tmp, "write")(short));
        }
        f.fdatasync().await.map_err(io_err(&tmp, "sync"))?;
        glommio::io::rename(&tmp, &self.path)
            .await
            .map_err(io_err(&self.path, "rename a temp file onto"))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let d = glommio::io::Directory::open(dir)
            .await
            .map_err(io_err(dir, "open the directory"))?;
        d.sync().await.map_err(io_err(dir, "sync the directory"))?;
        let _ = d.close().await;
        let new = Files {
            writer: Rc::new(f),
            direct: open_direct(&self.path)?,
            syncers: open_syncers(&self.path).await?,
        };
        let old = std::mem::replace(&mut *self.files.borrow_mut(), new);
        close_all(old).await;
        info!(
            file = %self.path.display(),
            from_bytes = self.write_pos.get(),
            to_bytes = len,
            records = records.len(),
            "journal compacted"
        );
        self.write_pos.set(len);
        self.zeroed_end.set(len);
        self.compacted_bytes.set(len);
        Ok(())
    }

    /// Compact now, in order with the appends: once the batches in flight are answered.
    pub async fn compact(&self) -> Result<(), JournalError> {
        self.compact_when(|_| true).await
    }

    /// Compact if `due` still says so once every batch in flight is answered (an append
    /// that raced this one may have just compacted).
    async fn compact_when(&self, due: fn(&Self) -> bool) -> Result<(), JournalError> {
        let _write = self
            .write_lock
            .acquire_permit(1)
            .await
            .map_err(io_err(&self.path, "wait for the write lock"))?;
        let _slots = self
            .sync_slots
            .acquire_permit(SYNC_SLOTS as u64)
            .await
            .map_err(io_err(&self.path, "wait for the syncs in flight"))?;
        self.usable()?;
        if !due(self) {
            return Ok(());
        }
        if let Err(e) = self.compact_locked().await {
            warn!("journal compaction failed: {e}");
            self.failed.set(true);
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use rkyv::{Archive, Deserialize, Serialize};

    use super::*;

    const MAGIC: &[u8; 8] = b"SLTEST01";

    use crate::runtime::test_run as run;

    /// A key's newest value, or its removal: the shape of most journaled state (an
    /// `Upsert(entry) | Remove(id)` of transaction state is the same).
    #[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
    enum Change {
        Put { seq: u64, key: String, value: u64 },
        Remove { seq: u64, key: String },
    }

    impl JournalRecord for Change {
        fn seq(&self) -> u64 {
            match self {
                Change::Put { seq, .. } | Change::Remove { seq, .. } => *seq,
            }
        }
        fn key(&self) -> &str {
            match self {
                Change::Put { key, .. } | Change::Remove { key, .. } => key,
            }
        }
    }

    /// key → (seq of its newest Put, value).
    #[derive(Default, Debug, Clone, PartialEq)]
    struct Kv(BTreeMap<String, (u64, u64)>);

    impl JournalState for Kv {
        type Record = Change;
        fn apply(&mut self, rec: &Change) {
            match rec {
                Change::Put { seq, key, value } => {
                    self.0.insert(key.clone(), (*seq, *value));
                }
                Change::Remove { key, .. } => {
                    self.0.remove(key);
                }
            }
        }
        fn live_records(&self) -> Vec<Change> {
            let put = |(k, (seq, value)): (&String, &(u64, u64))| put(*seq, k, *value);
            self.0.iter().map(put).collect()
        }
    }

    fn put(seq: u64, key: &str, value: u64) -> Change {
        Change::Put {
            seq,
            key: key.into(),
            value,
        }
    }

    fn remove(seq: u64, key: &str) -> Change {
        Change::Remove {
            seq,
            key: key.into(),
        }
    }

    fn owner(shards: usize) -> impl Fn(&str) -> usize {
        move |k| crc32c(k.as_bytes()) as usize % shards
    }

    fn recover_kv(dir: &Path, shards: usize) -> Vec<Recovered<Kv>> {
        recover(dir, MAGIC, shards, owner(shards)).unwrap()
    }

    /// The journal of shard 0 of 1 in `dir`, as recovery finds it, rolling at 1 GiB.
    async fn open_one(dir: &Path) -> Journal<Kv> {
        let rec = recover_kv(dir, 1).pop().unwrap();
        Journal::open(dir, 0, MAGIC, rec, 1 << 30).await.unwrap()
    }

    /// Runs `body` with a fresh one-shard journal in a new directory, returned for the
    /// recovery that follows.
    fn with_journal<F, Fut>(body: F) -> tempfile::TempDir
    where
        F: FnOnce(Journal<Kv>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        run(move || async move { body(open_one(&d).await).await });
        dir
    }

    /// Opens shard 0's journal in `dir` from `rec`, checks that it goes on at `end`, and
    /// appends one record `key` = `value` there.
    fn reopen_and_put(dir: &Path, rec: Recovered<Kv>, end: u64, key: &'static str, value: u64) {
        let d = dir.to_path_buf();
        run(move || async move {
            let j = Journal::open(&d, 0, MAGIC, rec, 1 << 30).await.unwrap();
            assert_eq!(j.size_bytes(), end);
            let s = j.next_seq();
            j.append(vec![put(s, key, value)]).await.unwrap();
        });
    }

    fn value(state: &Kv, key: &str) -> Option<u64> {
        state.0.get(key).map(|(_, v)| *v)
    }

    /// The state `records` build on shard `shard` of `shards` (all of it for one shard).
    fn model(records: &[Change], shards: usize, shard: usize) -> Kv {
        let mut kv = Kv::default();
        for r in records.iter().filter(|r| owner(shards)(r.key()) == shard) {
            kv.apply(r);
        }
        kv
    }

    fn write_log(path: &Path, records: &[Change]) {
        std::fs::write(path, encode_file(MAGIC, records).unwrap()).unwrap();
    }

    fn file_records(path: &Path) -> Vec<Change> {
        decode_file(&std::fs::read(path).unwrap(), MAGIC).unwrap().0
    }

    fn frame_len(r: &Change) -> usize {
        let mut f = Vec::new();
        encode_frame(r, &mut f).unwrap();
        f.len()
    }

    #[test]
    fn records_are_written_restored_and_compacted() {
        // One key overwritten a hundred times rolls the file past 2000 bytes: compaction
        // keeps its newest value, and a restart reads back everything acknowledged.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let rec = recover_kv(&data, 1).pop().unwrap();
        assert!(rec.state.0.is_empty());
        assert_eq!(rec.next_seq, 1);
        let d = data.clone();
        run(move || async move {
            let j = Journal::open(&d, 0, MAGIC, rec, 2000).await.unwrap();
            for i in 0..100 {
                let s = j.next_seq();
                j.append(vec![put(s, "a", i)]).await.unwrap();
            }
            let s = j.next_seq();
            j.append(vec![put(s, "b", 7)]).await.unwrap();
            assert!(j.size_bytes() < 2000, "size {}", j.size_bytes());
            assert_eq!(value(&j.state(), "a"), Some(99));
            // Compaction on demand leaves exactly the live records.
            j.compact().await.unwrap();
            let live = encode_file(MAGIC, &j.state().live_records()).unwrap();
            assert_eq!(j.size_bytes(), live.len() as u64);
        });
        let rec = recover_kv(&data, 1).pop().unwrap();
        assert_eq!(value(&rec.state, "a"), Some(99));
        assert_eq!(value(&rec.state, "b"), Some(7));
        assert_eq!(rec.next_seq, 102);
        assert_eq!(
            file_records(&shard_path(&data, 0)),
            vec![put(100, "a", 99), put(101, "b", 7)]
        );
    }

    #[test]
    fn batches_over_the_plain_write_size_and_under_it_land_in_order() {
        // The first batch is over DIRECT_WRITE_MAX (io_uring's write), the second and
        // third under it (a plain pwrite at the position the first left).
        let dir = with_journal(|j| async move {
            let big: Vec<Change> = (0..20_000)
                .map(|i| put(j.next_seq(), &format!("key-{i:08}"), i))
                .collect();
            let bytes: usize = big.iter().map(frame_len).sum();
            assert!(bytes > DIRECT_WRITE_MAX, "{bytes} bytes");
            j.append(big).await.unwrap();
            let s = j.next_seq();
            j.append(vec![put(s, "key-00000007", 70)]).await.unwrap();
            let s = j.next_seq();
            j.append(vec![put(s, "small", 1)]).await.unwrap();
        });
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(rec.state.0.len(), 20_001);
        assert_eq!(value(&rec.state, "key-00000007"), Some(70));
        assert_eq!(value(&rec.state, "key-00019999"), Some(19_999));
        assert_eq!(value(&rec.state, "small"), Some(1));
        assert_eq!(rec.next_seq, 20_003);
    }

    #[test]
    fn concurrent_appends_share_one_fdatasync_and_all_land() {
        // Twenty tasks append at once. A small batch's write does not wait, so the first
        // ones go alone until every sync slot is busy, one more is written and waits for
        // a slot, and the rest, queued behind it, share the next fdatasync.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let d = data.clone();
        run(move || async move {
            let j = Rc::new(open_one(&d).await);
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let j = j.clone();
                    glommio::spawn_local(async move {
                        let s = j.next_seq();
                        j.append(vec![put(s, &format!("k{i}"), i)]).await
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(j.state().0.len(), 20);
            let most = SYNC_SLOTS as u64 + 2;
            assert!(j.syncs() <= most, "{} fdatasyncs for 20 appends", j.syncs());
        });
        let rec = recover_kv(&data, 1).pop().unwrap();
        assert_eq!(rec.state.0.len(), 20);
        assert_eq!(value(&rec.state, "k19"), Some(19));
    }

    /// Queue `records` as batch `n`, as `commit_pending` does once they are written.
    fn written(j: &Journal<Kv>, n: u64, records: Vec<Change>) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        j.in_flight.borrow_mut().push_back(InFlight {
            n,
            records,
            waiters: vec![tx],
            done: false,
        });
        rx
    }

    #[test]
    fn a_later_sync_answers_the_batches_before_it_in_write_order() {
        // Two batches in flight; the second's sync comes back first. It covers the first
        // batch's write too, so both are answered, applied first to second; the first's
        // own sync coming back later changes nothing.
        with_journal(|j| async move {
            let mut first = written(&j, 1, vec![put(1, "a", 1)]);
            let mut second = written(&j, 2, vec![put(2, "a", 2)]);
            assert_eq!(first.try_recv(), Ok(None));
            j.finish(2, true);
            assert_eq!(first.try_recv(), Ok(Some(true)));
            assert_eq!(second.try_recv(), Ok(Some(true)));
            assert_eq!(value(&j.state(), "a"), Some(2));
            j.finish(1, true);
            assert_eq!(value(&j.state(), "a"), Some(2));
            assert!(j.in_flight.borrow().is_empty());
        });
    }

    #[test]
    fn after_a_failed_sync_no_batch_still_unanswered_succeeds() {
        // The first batch's sync fails while the second's runs: the first fails at once;
        // the second fails too when its sync comes back, even if that sync succeeded (its
        // records come after a write whose fate is unknown); the state shows neither.
        with_journal(|j| async move {
            let mut first = written(&j, 1, vec![put(1, "a", 1)]);
            let mut second = written(&j, 2, vec![put(2, "b", 2)]);
            j.finish(1, false);
            assert_eq!(first.try_recv(), Ok(Some(false)));
            assert_eq!(second.try_recv(), Ok(None));
            j.finish(2, true);
            assert_eq!(second.try_recv(), Ok(Some(false)));
            assert!(j.state().0.is_empty());
            let s = j.next_seq();
            let e = j.append(vec![put(s, "c", 3)]).await.unwrap_err();
            assert!(matches!(e, JournalError::Failed { .. }), "{e}");
        });
    }

    #[test]
    fn an_append_while_a_sync_runs_is_written_before_that_sync_returns() {
        // The pipeline itself: the first append's fdatasync is held in flight (its task
        // is not polled further); a second append still writes its batch and starts its
        // own sync, and answers on its own; the first then answers too.
        let dir = with_journal(|j| async move {
            let s1 = j.next_seq();
            let mut first = std::pin::pin!(j.append(vec![put(s1, "a", 1)]));
            // Poll the first append until its write is done and its sync has begun.
            for _ in 0..10_000 {
                if j.syncs() > 0 {
                    break;
                }
                assert!(futures_lite::future::poll_once(&mut first).await.is_none());
                glommio::timer::sleep(std::time::Duration::from_micros(100)).await;
            }
            assert_eq!(j.syncs(), 1, "the first append never reached its sync");
            let s2 = j.next_seq();
            let second = async { Ok(j.append(vec![put(s2, "b", 2)]).await) };
            glommio::timer::timeout(std::time::Duration::from_secs(10), second)
                .await
                .expect("the second append waited for the first one's sync")
                .unwrap();
            assert_eq!(j.syncs(), 2);
            assert_eq!(value(&j.state(), "b"), Some(2));
            first.await.unwrap();
            assert_eq!(value(&j.state(), "a"), Some(1));
        });
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(rec.state.0.len(), 2);
    }

    #[test]
    fn the_state_changes_only_once_the_records_are_durable() {
        with_journal(|j| async move {
            let s = j.next_seq();
            let mut append = std::pin::pin!(j.append(vec![put(s, "a", 1)]));
            // First poll: the write is in flight, the state does not show it yet.
            assert!(futures_lite::future::poll_once(&mut append).await.is_none());
            assert!(j.state().0.is_empty());
            append.await.unwrap();
            assert_eq!(value(&j.state(), "a"), Some(1));
        });
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = shard_path(dir.path(), 0);
        let mut bytes = MAGIC.to_vec();
        encode_frame(&put(1, "a", 5), &mut bytes).unwrap();
        encode_frame(&put(2, "a", 6), &mut bytes).unwrap();
        let good = bytes.len();
        encode_frame(&put(3, "a", 7), &mut bytes).unwrap();
        bytes.truncate(bytes.len() - 3); // torn write
        std::fs::write(&path, &bytes).unwrap();
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(value(&rec.state, "a"), Some(6));
        assert_eq!(rec.next_seq, 3);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good as u64);
        // A flipped bit in the last frame: its CRC fails, it is cut as well.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n - 2] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(value(&rec.state, "a"), Some(5));
        // A file cut inside its magic holds nothing and gets its magic back.
        std::fs::write(&path, &MAGIC[..3]).unwrap();
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert!(rec.state.0.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), MAGIC);
    }

    #[test]
    fn appends_go_into_zeroed_room_and_a_restart_goes_on_from_the_last_frame() {
        let dir = with_journal(|j| async move {
            for i in 0..3 {
                let s = j.next_seq();
                j.append(vec![put(s, "a", i)]).await.unwrap();
            }
        });
        let path = shard_path(dir.path(), 0);
        let frame = frame_len(&put(1, "a", 0));
        let frames = MAGIC_LEN + 3 * frame;
        let bytes = std::fs::read(&path).unwrap();
        // The first append zeroed the room behind it; the next two went into it.
        assert_eq!(bytes.len() as u64, (MAGIC_LEN + frame) as u64 + ZERO_AHEAD);
        assert!(bytes[frames..].iter().all(|&b| b == 0));
        // Recovery keeps the zeroed room (it is not a torn tail) and the next run writes
        // right after the last frame, where the next recovery finds it.
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
        reopen_and_put(dir.path(), rec, frames as u64, "b", 9);
        assert_eq!(
            file_records(&path),
            vec![
                put(1, "a", 0),
                put(2, "a", 1),
                put(3, "a", 2),
                put(4, "b", 9)
            ]
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes.len() as u64);
    }

    #[test]
    fn a_frame_beyond_a_torn_one_is_cut_so_later_appends_cannot_bring_it_back() {
        // A crash wrote a batch's later sector but not an earlier one: zeros, then a
        // whole frame that was never acknowledged.
        let dir = tempfile::tempdir().unwrap();
        let path = shard_path(dir.path(), 0);
        let mut bytes = MAGIC.to_vec();
        encode_frame(&put(1, "a", 5), &mut bytes).unwrap();
        let good = bytes.len();
        bytes.resize(good + frame_len(&put(2, "a", 6)), 0);
        encode_frame(&put(3, "c", 7), &mut bytes).unwrap();
        bytes.resize(bytes.len() + 64, 0);
        std::fs::write(&path, &bytes).unwrap();
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(rec.next_seq, 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good as u64);
        reopen_and_put(dir.path(), rec, good as u64, "b", 8);
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(value(&rec.state, "c"), None);
        assert_eq!(file_records(&path), vec![put(1, "a", 5), put(2, "b", 8)]);
    }

    #[test]
    fn a_file_of_another_kind_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = shard_path(dir.path(), 0);
        let mut bytes = b"SLGROFF1".to_vec();
        encode_frame(&put(1, "a", 5), &mut bytes).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let e = recover::<Kv>(dir.path(), MAGIC, 1, owner(1)).unwrap_err();
        assert!(matches!(e, JournalError::BadMagic { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("shard-0.log") && msg.contains("SLGROFF1"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "left as it was");
    }

    #[test]
    fn a_new_shard_count_moves_keys_to_their_new_owner() {
        // Written by a one-shard run: every key in shard-0.log, one of them removed.
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<String> = (0..12).map(|i| format!("key-{i}")).collect();
        let mut history: Vec<Change> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| put(i as u64 + 1, k, 100 + i as u64))
            .collect();
        history.push(remove(20, "key-0"));
        write_log(&shard_path(dir.path(), 0), &history);
        let rec = recover_kv(dir.path(), 3);
        for (s, r) in rec.iter().enumerate() {
            assert_eq!(r.state, model(&history, 3, s), "shard {s}");
            assert_eq!(r.next_seq, 21);
            // Each file holds only its own keys, and no snapshot is left.
            let path = shard_path(dir.path(), s);
            assert!(file_records(&path).iter().all(|r| owner(3)(r.key()) == s));
        }
        assert!(rec.iter().all(|r| !r.state.0.contains_key("key-0")));
        assert!(!dir.path().join(SNAPSHOT_FILE).exists());
        // Recovered again under the same count, the files are kept as they are.
        let before: Vec<_> = (0..3)
            .map(|s| std::fs::read(shard_path(dir.path(), s)).unwrap())
            .collect();
        recover_kv(dir.path(), 3);
        for (s, bytes) in before.iter().enumerate() {
            assert_eq!(&std::fs::read(shard_path(dir.path(), s)).unwrap(), bytes);
        }
        // Back to one shard: everything is in shard-0.log again.
        let rec = recover_kv(dir.path(), 1);
        assert_eq!(rec[0].state, model(&history, 1, 0));
        assert!(!shard_path(dir.path(), 1).exists());
        assert!(!shard_path(dir.path(), 2).exists());
    }

    #[test]
    fn a_crash_at_any_step_of_a_rewrite_loses_nothing() {
        // Two shards' files (a key's records all in its owner's file) are rewritten for
        // one shard. Each case is the directory a crash leaves after one more step.
        let history = vec![
            put(1, "a", 10),
            put(1, "b", 20),
            put(2, "c", 30),
            put(3, "a", 11),
            remove(4, "b"),
            put(5, "d", 40),
            remove(6, "c"),
            put(7, "c", 31),
        ];
        let old = |s: usize| -> Vec<Change> {
            let mine = |r: &&Change| owner(2)(r.key()) == s;
            history.iter().filter(mine).cloned().collect()
        };
        let live = model(&history, 1, 0).live_records();
        // (snapshot, old shard-0, old shard-1, new shard-0, a torn temp file)
        type Step<'a> = (bool, bool, bool, Option<&'a [Change]>, bool);
        let steps: [Step; 6] = [
            (false, true, true, None, true),           // writing the snapshot
            (true, true, true, None, false),           // snapshot written
            (true, false, true, None, false),          // first old file removed
            (true, false, false, None, true),          // old files removed, writing the new
            (true, false, false, Some(&live), false),  // new file written
            (false, false, false, Some(&live), false), // done
        ];
        for (i, (snap, old0, old1, new0, tmp)) in steps.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            if snap {
                write_log(&dir.path().join(SNAPSHOT_FILE), &history);
            }
            if old0 {
                write_log(&shard_path(dir.path(), 0), &old(0));
            }
            if old1 {
                write_log(&shard_path(dir.path(), 1), &old(1));
            }
            if let Some(new0) = new0 {
                write_log(&shard_path(dir.path(), 0), new0);
            }
            if tmp {
                std::fs::write(dir.path().join("shard-0.tmp"), &MAGIC[..5]).unwrap();
            }
            let rec = recover_kv(dir.path(), 1);
            assert_eq!(rec[0].state, model(&history, 1, 0), "crash after step {i}");
            assert_eq!(rec[0].next_seq, 8, "crash after step {i}");
            let left: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(left, vec!["shard-0.log".to_string()], "after step {i}");
        }
    }

    #[test]
    fn a_failed_write_leaves_the_state_as_it_was() {
        // The disk fills up under an append: it fails naming the file, the state keeps
        // only what was durable before, later appends are refused, and a restart
        // recovers the durable records.
        let dir = with_journal(|j| async move {
            let s = j.next_seq();
            j.append(vec![put(s, "a", 1)]).await.unwrap();
            fill_the_disk(&j);
            let (s1, s2) = (j.next_seq(), j.next_seq());
            let e = j
                .append(vec![put(s1, "a", 2), put(s2, "b", 2)])
                .await
                .unwrap_err();
            assert!(matches!(e, JournalError::Io { .. }), "{e}");
            assert!(e.to_string().contains("shard-0.log"), "{e}");
            assert_eq!(*j.state(), model(&[put(1, "a", 1)], 1, 0));
            let s = j.next_seq();
            let e = j.append(vec![put(s, "c", 3)]).await.unwrap_err();
            assert!(matches!(e, JournalError::Failed { .. }), "{e}");
            assert!(!j.state().0.contains_key("c"));
        });
        let rec = recover_kv(dir.path(), 1).pop().unwrap();
        assert_eq!(rec.state, model(&[put(1, "a", 1)], 1, 0));
    }

    /// From now on every write to the journal's file gets ENOSPC from the kernel:
    /// `/dev/full` takes the place of the file under the same descriptor.
    fn fill_the_disk(j: &Journal<Kv>) {
        use std::os::fd::AsRawFd;
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let files = j.files.borrow();
        for fd in [files.writer.as_raw_fd(), files.direct.as_raw_fd()] {
            // SAFETY: both descriptors are open; `fd` stays open (now naming /dev/full)
            // and is closed once, when the journal drops its file.
            assert!(unsafe { libc::dup2(full.as_raw_fd(), fd) } >= 0);
        }
    }

    #[test]
    fn records_out_of_the_order_of_their_seqs_are_refused() {
        with_journal(|j| async move {
            let (s1, s2) = (j.next_seq(), j.next_seq());
            j.append(vec![put(s2, "a", 2)]).await.unwrap();
            let e = j.append(vec![put(s1, "a", 1)]).await.unwrap_err();
            assert!(matches!(e, JournalError::OutOfOrder { .. }), "{e}");
            // A number never handed out is refused too.
            let e = j.append(vec![put(1000, "a", 3)]).await.unwrap_err();
            assert!(matches!(e, JournalError::OutOfOrder { .. }), "{e}");
            assert_eq!(value(&j.state(), "a"), Some(2));
            let s = j.next_seq();
            j.append(vec![put(s, "a", 4)]).await.unwrap();
            assert_eq!(value(&j.state(), "a"), Some(4));
        });
    }

    // --- properties ----------------------------------------------------------------

    /// Batches of (put or remove, key, value), numbered 1, 2, ... in order.
    fn batches() -> impl Strategy<Value = Vec<Vec<Change>>> {
        let change = (prop::bool::weighted(0.75), 0usize..6, any::<u64>());
        prop::collection::vec(prop::collection::vec(change, 1..5), 1..25).prop_map(|bs| {
            let mut seq = 0;
            bs.into_iter()
                .map(|b| {
                    b.into_iter()
                        .map(|(is_put, k, v)| {
                            seq += 1;
                            let key = format!("{}{k}", "k".repeat(1 + 3 * k));
                            if is_put {
                                put(seq, &key, v)
                            } else {
                                remove(seq, &key)
                            }
                        })
                        .collect()
                })
                .collect()
        })
    }

    /// Append `batches` one after another to a fresh one-shard journal under `dir`.
    fn append_all(dir: &Path, batches: Vec<Vec<Change>>, roll_bytes: u64) {
        let rec = recover_kv(dir, 1).pop().unwrap();
        let d = dir.to_path_buf();
        run(move || async move {
            let j = Journal::open(&d, 0, MAGIC, rec, roll_bytes).await.unwrap();
            let all: Vec<Change> = batches.iter().flatten().cloned().collect();
            for b in batches {
                for r in &b {
                    assert_eq!(j.next_seq(), r.seq());
                }
                j.append(b).await.unwrap();
            }
            assert_eq!(*j.state(), model(&all, 1, 0));
        });
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A crash cuts the file at any byte: recovery keeps every record whose frame
        /// ends before the cut, in order, and nothing after it, whatever the shard count
        /// of the next run.
        #[test]
        fn a_crash_keeps_exactly_the_records_before_the_torn_frame(
            batches in batches(),
            cut in any::<prop::sample::Index>(),
            shards in 1usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let all: Vec<Change> = batches.iter().flatten().cloned().collect();
            append_all(dir.path(), batches, u64::MAX);
            let path = shard_path(dir.path(), 0);
            let len = std::fs::metadata(&path).unwrap().len() as usize;
            let cut = cut.index(len + 1);
            std::fs::OpenOptions::new().write(true).open(&path).unwrap()
                .set_len(cut as u64).unwrap();
            let mut end = MAGIC_LEN;
            let mut kept = Vec::new();
            for r in &all {
                end += frame_len(r);
                if end > cut {
                    break;
                }
                kept.push(r.clone());
            }
            let rec = recover_kv(dir.path(), shards);
            for (s, r) in rec.iter().enumerate() {
                prop_assert_eq!(&r.state, &model(&kept, shards, s));
                prop_assert_eq!(r.next_seq, kept.last().map_or(1, |r| r.seq() + 1));
            }
            if shards == 1 {
                // The kept frames, then nothing or zeros alone (the room zeroed ahead).
                let frames: usize = kept.iter().map(frame_len).sum();
                let bytes = std::fs::read(&path).unwrap();
                prop_assert!(bytes.len() >= MAGIC_LEN + frames);
                prop_assert!(bytes[MAGIC_LEN + frames..].iter().all(|&b| b == 0));
            }
        }

        /// With compaction on every few appends, the state after a restart (under any
        /// shard count, and back to one) is the one the appends built.
        #[test]
        fn compaction_and_a_new_shard_count_keep_the_state(
            batches in batches(),
            roll_bytes in 100u64..1500,
            shards in 1usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let all: Vec<Change> = batches.iter().flatten().cloned().collect();
            append_all(dir.path(), batches, roll_bytes);
            let rec = recover_kv(dir.path(), shards);
            for (s, r) in rec.iter().enumerate() {
                prop_assert_eq!(&r.state, &model(&all, shards, s));
                // Compaction drops removals, maybe the newest numbers with them: the next
                // run starts above every record that is left.
                prop_assert!(r.state.0.values().all(|(seq, _)| *seq < r.next_seq));
                prop_assert!(r.next_seq <= all.len() as u64 + 1);
            }
            let rec = recover_kv(dir.path(), 1);
            prop_assert_eq!(&rec[0].state, &model(&all, 1, 0));
        }
    }
}
