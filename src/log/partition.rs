//! One partition's log: append with ordered offsets, reads as file ranges, group commit,
//! recovery, retention. Single-threaded: it lives on its owner shard's executor.
//!
//! Resources per append: one copy of the produce blob into an owned buffer (headers patched
//! in it), one `write` through io_uring, one task spawn (so a cancelled request cannot leave
//! a hole below the high watermark), no syscall for the index (kept in memory, written at
//! flush/roll/close). Under `flush=always` one `fdatasync` serves every append that completed
//! while the previous sync ran.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use glommio::io::{BufferedFile, OpenOptions};
use glommio::sync::Semaphore;

use crate::runtime::{now_ms, FifoGate};

use super::batch::{self, BatchInfo};
use super::checkpoint::{self, Checkpoint};
use super::config::{FlushPolicy, LogConfig, TimestampType};
use super::error::LogError;
use super::segment::{self, Segment};
use crate::runtime::wait::{OffsetWait, Waiters};

/// Preallocation grows a segment file by at most this much at a time (or segment_bytes if
/// smaller); see `segment::preallocation_chunk` for how it gets there.
const PREALLOCATE_CHUNK_BYTES: u64 = 64 << 20;
/// How often a log out of space tries again to preallocate, and how much.
const SPACE_PROBE_MS: u64 = 500;
const SPACE_PROBE_BYTES: u64 = 1 << 20;
/// The checkpoint is rewritten after a sync at most this often.
const CHECKPOINT_INTERVAL_MS: i64 = 1000;

/// The result of a successful append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The time stamped into the batches under LogAppendTime, -1 under CreateTime.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
}

/// Resolves when the high watermark passes an offset, or the log goes offline
/// (`PartitionLog::wait_for_append`). Dropping it unregisters it.
pub struct AppendWait<'a>(OffsetWait<'a>);

impl std::future::Future for AppendWait<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

/// A byte range of a segment file. The `Rc` keeps the file open (and its bytes readable) even
/// if retention unlinks the segment while a fetch still uses the range.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Rc<BufferedFile>,
    /// The same file as a descriptor any shard may hold (see `SendRange`).
    pub fd: Arc<OwnedFd>,
    pub position: u64,
    pub len: usize,
}

/// A file range that can cross shards: the connection's shard sends it to the socket
/// with `sendfile`, straight from the page cache. Holding it keeps the file readable.
#[derive(Clone, Debug)]
pub struct SendRange {
    pub fd: Arc<OwnedFd>,
    pub position: u64,
    pub len: usize,
}

/// Whole record batches for a fetch, as file ranges (for sendfile/splice, or `read_to_vec`).
#[derive(Clone, Debug, Default)]
pub struct FetchSlice {
    pub ranges: Vec<FileRange>,
}

impl FetchSlice {
    pub fn len(&self) -> usize {
        self.ranges.iter().map(|r| r.len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ranges as `SendRange`s, for a zero-copy send on any shard (the shared
    /// descriptors move over; nothing is cloned).
    pub fn into_send_ranges(self) -> Vec<SendRange> {
        self.ranges
            .into_iter()
            .map(|r| SendRange {
                fd: r.fd,
                position: r.position,
                len: r.len,
            })
            .collect()
    }

    /// Whether every page of every range is in the page cache, by `cachestat(2)` (one
    /// syscall per range, Linux 6.5+), or where the kernel lacks it by probing the
    /// first and last byte with `preadv2(RWF_NOWAIT)`; neither waits for the disk. A
    /// `sendfile` of cached bytes does not block the shard's thread; an uncached slice
    /// is read with `read_to_vec` (io_uring) instead.
    pub fn is_cached(&self) -> bool {
        self.ranges.iter().all(|r| {
            let fd = r.fd.as_raw_fd();
            r.len == 0
                || match uncached_pages(fd, r.position, r.len as u64) {
                    Some(missing) => missing == 0,
                    None => {
                        page_cached(fd, r.position)
                            && page_cached(fd, r.position + r.len as u64 - 1)
                    }
                }
        })
    }

    /// Copies the bytes into `out` (appending).
    pub async fn read_to_vec(&self, out: &mut Vec<u8>) -> Result<(), LogError> {
        out.reserve(self.len());
        for r in &self.ranges {
            let mut done = 0;
            while done < r.len {
                let pos = r.position + done as u64;
                let got = r.file.read_at(pos, r.len - done).await.map_err(|e| {
                    LogError::io(
                        "reading fetch range",
                        Path::new(&format!("fd {}", fd_of(&r.file))),
                        e,
                    )
                })?;
                if got.is_empty() {
                    return Err(LogError::Offline(format!(
                        "fetch range ended early at {pos}"
                    )));
                }
                out.extend_from_slice(&got);
                done += got.len();
            }
        }
        Ok(())
    }
}

/// `cachestat(2)`: the same number on every architecture.
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Pages of `fd` in `[position, position + len)` that are not in the page cache, or
/// `None` where the kernel has no `cachestat`.
fn uncached_pages(fd: i32, position: u64, len: u64) -> Option<u64> {
    let range = CachestatRange { off: position, len };
    let mut stat = Cachestat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live locals of the
    // layout the kernel expects (two and five u64s); `fd` is open.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            fd,
            &range as *const CachestatRange,
            &mut stat as *mut Cachestat,
            0,
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let pages = (position + len).div_ceil(page) - position / page;
    Some(pages.saturating_sub(stat.nr_cache))
}

/// Whether the byte at `position` of `fd` is in the page cache. A file system without
/// RWF_NOWAIT support answers "no", so the caller takes the path that cannot block.
fn page_cached(fd: i32, position: u64) -> bool {
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: `iov` points at one writable byte that outlives the call; `fd` is an
    // open descriptor held by the caller's `Arc<OwnedFd>`.
    let n = unsafe { libc::preadv2(fd, &iov, 1, position as i64, libc::RWF_NOWAIT) };
    n == 1
}

fn fd_of(f: &BufferedFile) -> i32 {
    f.as_raw_fd()
}

/// What a log can do now (`PartitionLog::availability`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    Online,
    /// Out of space: appends refused until a probe finds room again; reads served.
    NoSpace(String),
    /// An I/O error took the log offline until a restart (recovery then checks the files).
    Offline(String),
}

/// Whether an error is the disk (or a quota) being full.
pub(crate) fn is_no_space(e: &LogError) -> bool {
    match e {
        LogError::Io { source, .. } => {
            matches!(
                source.raw_os_error(),
                Some(libc::ENOSPC) | Some(libc::EDQUOT)
            ) || source.kind() == std::io::ErrorKind::StorageFull
        }
        _ => false,
    }
}

/// What `enforce_retention` removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: i64,
}

/// An append reserved in the log whose write may still be in flight.
struct InFlight {
    end_offset: i64,
    end_position: u64,
    segment: Rc<Segment>,
    done: bool,
}

pub struct PartitionLog {
    pub(super) dir: PathBuf,
    pub(super) me: Weak<PartitionLog>,
    pub(super) config: RefCell<LogConfig>,
    /// Sorted by base offset; the last one is the active segment, all others are sealed.
    pub(super) segments: RefCell<Vec<Rc<Segment>>>,
    /// Held while sealed segments are removed (retention, DeleteRecords, removal) or
    /// replaced by a cleaned one (`cleaner`), so the two never interleave.
    pub(super) layout_gate: Semaphore,
    /// Serializes reservations strictly in call order (`FifoGate`: glommio's Semaphore
    /// lets a newcomer overtake a woken waiter); uncontended except during a roll or a
    /// preallocation.
    reserve_gate: FifoGate,
    /// Log end offset: the offset the next appended batch gets.
    next_offset: Cell<i64>,
    high_watermark: Cell<i64>,
    log_start_offset: Cell<i64>,
    /// Every offset below this is synced.
    durable_offset: Cell<i64>,
    in_flight: RefCell<VecDeque<InFlight>>,
    /// Sequence number of `in_flight`'s front.
    in_flight_front: Cell<u64>,
    pub(super) size_bytes: Cell<u64>,
    /// Bytes of the first segment before the log start offset's batch (for max_queue_bytes).
    bytes_before_start: Cell<u64>,
    hwm_waiters: RefCell<Waiters>,
    durable_waiters: RefCell<Waiters>,
    sync_running: Cell<bool>,
    /// Set when the log cannot be used any more (write failed, removed): every wait returns.
    offline: Cell<bool>,
    offline_reason: RefCell<Option<String>>,
    /// Set while the disk has no room for the next append (ENOSPC or EDQUOT while
    /// preallocating, before any offset was reserved): appends are refused, reads go on,
    /// and a probe retries the preallocation until space returns (`watch_for_space`).
    no_space: RefCell<Option<String>>,
    pub(super) closed: Cell<bool>,
    /// Set by `remove` (DeleteTopics): no file of this log is written again, since its
    /// directory may already belong to a re-created topic of the same name.
    pub(super) removed: Cell<bool>,
    checkpoint_gate: Semaphore,
    last_checkpoint_ms: Cell<i64>,
    /// The checkpoint last written here, and whether it was synced: the same one is not
    /// written again (a stop of thousands of idle partitions).
    written_checkpoint: Cell<Option<(Checkpoint, bool)>>,
    flush_timer_generation: Cell<u64>,
    sync_count: Cell<u64>,
    /// Segments that left the log, still to be freed (`retired`).
    pub(super) retired: RefCell<Vec<Rc<Segment>>>,
    /// Whether the task freeing `retired` runs.
    pub(super) freeing: Cell<bool>,
}

impl PartitionLog {
    /// Opens the log in `dir`, creating it, or recovering it after a crash (see `recover`).
    pub async fn open(dir: &Path, config: LogConfig) -> Result<Rc<PartitionLog>, LogError> {
        // Directory create/list are rare metadata calls glommio does not offer (it has no
        // recursive create nor a listing that is not std's); they run once per open.
        std::fs::create_dir_all(dir)
            .map_err(|e| LogError::io("creating partition directory", dir, e))?;
        let recovered = super::recovery::recover(dir, &config).await?;
        let log = Rc::new_cyclic(|me| PartitionLog {
            dir: dir.to_path_buf(),
            me: me.clone(),
            config: RefCell::new(config),
            segments: RefCell::new(recovered.segments),
            layout_gate: Semaphore::new(1),
            reserve_gate: FifoGate::default(),
            next_offset: Cell::new(recovered.next_offset),
            high_watermark: Cell::new(recovered.next_offset),
            log_start_offset: Cell::new(recovered.log_start_offset),
            durable_offset: Cell::new(recovered.next_offset),
            in_flight: RefCell::new(VecDeque::new()),
            in_flight_front: Cell::new(0),
            size_bytes: Cell::new(0),
            bytes_before_start: Cell::new(0),
            hwm_waiters: RefCell::new(Waiters::default()),
            durable_waiters: RefCell::new(Waiters::default()),
            sync_running: Cell::new(false),
            offline: Cell::new(false),
            offline_reason: RefCell::new(None),
            no_space: RefCell::new(None),
            closed: Cell::new(false),
            removed: Cell::new(false),
            checkpoint_gate: Semaphore::new(1),
            last_checkpoint_ms: Cell::new(0),
            written_checkpoint: Cell::new(None),
            flush_timer_generation: Cell::new(0),
            sync_count: Cell::new(0),
            retired: RefCell::new(Vec::new()),
            freeing: Cell::new(false),
        });
        log.size_bytes.set(
            log.segments
                .borrow()
                .iter()
                .map(|s| s.reserved_end.get())
                .sum(),
        );
        // DeleteRecords to the high watermark keeps the active segment; a later roll seals
        // it wholly below the log start. Such segments hold nothing readable: gone here.
        log.delete_segments_below_start().await?;
        log.update_bytes_before_start().await?;
        log.write_checkpoint(true).await?;
        log.start_flush_timer();
        Ok(log)
    }

    fn check_online(&self) -> Result<(), LogError> {
        if self.offline.get() {
            let why = self.offline_reason.borrow().clone().unwrap_or_default();
            return Err(LogError::Offline(format!("{}: {why}", self.dir.display())));
        }
        if self.closed.get() {
            return Err(LogError::Offline(format!(
                "{} is closed",
                self.dir.display()
            )));
        }
        if let Some(why) = self.no_space.borrow().as_ref() {
            return Err(LogError::Offline(format!(
                "{}: out of space, appends refused until space returns: {why}",
                self.dir.display()
            )));
        }
        Ok(())
    }

    /// Whether the log takes no appends, and why: `Offline` after an I/O error (until a
    /// restart; reads are refused too), `NoSpace` while the disk is full (reads go on).
    pub fn availability(&self) -> Availability {
        if self.offline.get() && !self.closed.get() {
            return Availability::Offline(self.offline_reason.borrow().clone().unwrap_or_default());
        }
        match self.no_space.borrow().as_ref() {
            Some(why) => Availability::NoSpace(why.clone()),
            None => Availability::Online,
        }
    }

    /// The preallocation for an append failed with ENOSPC/EDQUOT, before anything was
    /// reserved: nothing is lost or half-written, so instead of going offline for good the
    /// log refuses appends and probes for space every `SPACE_PROBE_MS`.
    fn out_of_space(&self, e: &LogError) {
        if self.no_space.borrow().is_some() {
            return;
        }
        tracing::error!(dir = %self.dir.display(), error = %e,
            "partition log out of space: appends refused (KAFKA_STORAGE_ERROR) until space returns");
        *self.no_space.borrow_mut() = Some(e.to_string());
        let me = self.me.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(std::time::Duration::from_millis(SPACE_PROBE_MS)).await;
                let Some(log) = me.upgrade() else { return };
                if log.closed.get() || log.offline.get() || log.probe_space().await {
                    return;
                }
            }
        })
        .detach();
    }

    /// Tries to preallocate room for one more small append; true (and online again) on
    /// success.
    async fn probe_space(&self) -> bool {
        let config = self.config.borrow().clone();
        let active = self.active();
        let need = active.reserved_end.get() + SPACE_PROBE_BYTES;
        let limit = config.effective_segment_bytes().max(need);
        match active.preallocate(need, SPACE_PROBE_BYTES, limit).await {
            Ok(()) => {
                *self.no_space.borrow_mut() = None;
                tracing::warn!(dir = %self.dir.display(), "space returned: partition log takes appends again");
                true
            }
            Err(e) if is_no_space(&e) => false,
            Err(e) => {
                self.fail(&e);
                true
            }
        }
    }

    /// Takes the log offline after an I/O error: nothing more is written or served from memory
    /// state that may not match the files; every waiter is released.
    fn fail(&self, e: &LogError) {
        if self.removed.get() {
            // Deleted: a write that raced the removal has nothing left to protect.
            tracing::debug!(dir = %self.dir.display(), error = %e, "write to a removed log failed");
            return;
        }
        tracing::error!(dir = %self.dir.display(), error = %e, "partition log going offline");
        self.offline_reason
            .borrow_mut()
            .get_or_insert_with(|| e.to_string());
        self.offline.set(true);
        self.hwm_waiters.borrow_mut().wake_all();
        self.durable_waiters.borrow_mut().wake_all();
    }

    pub(super) fn active(&self) -> Rc<Segment> {
        // `segments` is never empty: recovery always yields an active segment and only
        // sealed segments are ever removed.
        let segs = self.segments.borrow();
        segs[segs.len() - 1].clone()
    }

    pub async fn append(&self, records: &[u8]) -> Result<AppendInfo, LogError> {
        self.append_with(records, |_, _| {}).await
    }

    /// `append`, calling `on_offsets(base_offset, last_offset)` the moment the offsets are
    /// reserved: synchronously, in offset order, before the write starts and so before
    /// the high watermark can pass them. State that must be in place before a reader can
    /// see the batch (a transaction's first offset, KIP-98) is updated there. Not called
    /// when the append fails before it reserves offsets.
    pub async fn append_with(
        &self,
        records: &[u8],
        on_offsets: impl FnOnce(i64, i64),
    ) -> Result<AppendInfo, LogError> {
        self.check_online()?;
        let config = self.config.borrow().clone();
        let infos = batch::validate_batches(records, config.max_message_bytes)?;
        let mut buf = records.to_vec();
        let now = now_ms();
        let append_time = match config.timestamp_type {
            TimestampType::LogAppendTime => now,
            TimestampType::CreateTime => -1,
        };
        let permit = self.reserve_gate.lock().await;
        self.check_online()?;
        // A transaction marker ends a transaction the queue already holds: refusing it
        // would leave the transaction open (and read_committed consumers stuck) for good.
        if !infos.iter().all(BatchInfo::is_control) {
            self.check_queue_limit(&config, buf.len())?;
        }
        let count: i64 = infos.iter().map(BatchInfo::offset_count).sum();
        let seg = self
            .segment_for_append(&config, buf.len() as u64, count, now)
            .await?;
        let base_offset = self.next_offset.get();
        let position = seg.reserved_end.get();
        let mut offset = base_offset;
        for info in &infos {
            let b = &mut buf[info.offset_in_blob..info.offset_in_blob + info.len];
            batch::set_base_offset(b, offset);
            batch::set_partition_leader_epoch(b, 0);
            let mut info = info.clone();
            if append_time >= 0 {
                batch::set_log_append_time(b, append_time);
                info.max_timestamp = append_time;
            }
            seg.on_batch(
                &info,
                offset,
                position + info.offset_in_blob as u64,
                config.effective_index_interval(),
            );
            offset += info.offset_count();
        }
        let len = buf.len() as u64;
        seg.reserved_end.set(position + len);
        self.next_offset.set(offset);
        on_offsets(base_offset, offset - 1);
        self.size_bytes.set(self.size_bytes.get() + len);
        let seq = self.in_flight_front.get() + self.in_flight.borrow().len() as u64;
        self.in_flight.borrow_mut().push_back(InFlight {
            end_offset: offset,
            end_position: position + len,
            segment: seg.clone(),
            done: false,
        });
        drop(permit);
        self.spawn_write(seg, buf, position, seq);
        let last_offset = offset - 1;
        OffsetWait::new(
            &self.hwm_waiters,
            &self.high_watermark,
            &self.offline,
            last_offset,
        )
        .await;
        if self.high_watermark.get() <= last_offset {
            self.check_online()?;
        }
        if config.flush == FlushPolicy::Always {
            self.request_sync();
        }
        Ok(AppendInfo {
            base_offset,
            last_offset,
            log_append_time_ms: append_time,
            log_start_offset: self.log_start_offset.get(),
        })
    }

    /// The write runs in its own task: once offsets are reserved the bytes must land (or the
    /// log go offline) even if the request that asked for them is dropped.
    fn spawn_write(&self, seg: Rc<Segment>, buf: Vec<u8>, position: u64, seq: u64) {
        let Some(me) = self.me.upgrade() else { return };
        glommio::spawn_local(async move {
            match seg.write_all(buf, position).await {
                Ok(()) => me.complete(seq),
                Err(e) => me.fail(&e),
            }
        })
        .detach();
    }

    /// Marks write `seq` done and advances the high watermark over the done prefix.
    fn complete(&self, seq: u64) {
        let mut q = self.in_flight.borrow_mut();
        let i = (seq - self.in_flight_front.get()) as usize;
        q[i].done = true;
        let mut advanced = false;
        while q.front().is_some_and(|f| f.done) {
            if let Some(f) = q.pop_front() {
                f.segment.readable_end.set(f.end_position);
                self.high_watermark.set(f.end_offset);
                self.in_flight_front.set(self.in_flight_front.get() + 1);
                advanced = true;
            }
        }
        drop(q);
        if advanced {
            self.hwm_waiters
                .borrow_mut()
                .wake_below(self.high_watermark.get());
        }
    }

    fn check_queue_limit(&self, config: &LogConfig, len: usize) -> Result<(), LogError> {
        let Some(max) = config.max_queue_bytes else {
            return Ok(());
        };
        let used = self
            .size_bytes
            .get()
            .saturating_sub(self.bytes_before_start.get());
        if used + len as u64 > max {
            return Err(LogError::PolicyViolation(format!(
                "bounded queue full: {used} bytes retained after the log start offset + {len} new bytes would exceed max_queue_bytes {max}; consume and delete records (or raise the limit) first"
            )));
        }
        Ok(())
    }

    /// The active segment, rolled if this append does not fit or it is too old, with
    /// preallocated room for `len` more bytes.
    async fn segment_for_append(
        &self,
        config: &LogConfig,
        len: u64,
        count: i64,
        now: i64,
    ) -> Result<Rc<Segment>, LogError> {
        let segment_bytes = config.effective_segment_bytes();
        let active = self.active();
        let used = active.reserved_end.get();
        let too_big = used + len > segment_bytes;
        let too_old = config
            .segment_ms
            .is_some_and(|ms| now - active.created_ms.get() >= ms as i64);
        let too_many = self.next_offset.get() + count - active.base_offset > u32::MAX as i64;
        let active = if used > 0 && (too_big || too_old || too_many) {
            self.roll(now).await?
        } else {
            active
        };
        let max_chunk = PREALLOCATE_CHUNK_BYTES.min(segment_bytes);
        let need = active.reserved_end.get() + len;
        let limit = segment_bytes.max(need);
        let mut res = active.preallocate(need, max_chunk, limit).await;
        if res.as_ref().is_err_and(is_no_space) {
            // A whole chunk does not fit: this append alone may.
            res = active.preallocate(need, 0, need).await;
        }
        match res {
            Ok(()) => Ok(active),
            Err(e) if is_no_space(&e) => {
                self.out_of_space(&e);
                Err(e)
            }
            Err(e) => {
                self.fail(&e);
                Err(e)
            }
        }
    }

    /// Seals the active segment (after its in-flight writes land) and starts a new one.
    async fn roll(&self, now: i64) -> Result<Rc<Segment>, LogError> {
        let old = self.active();
        let next = self.next_offset.get();
        OffsetWait::new(
            &self.hwm_waiters,
            &self.high_watermark,
            &self.offline,
            next - 1,
        )
        .await;
        self.check_online()?;
        let res = async {
            old.seal().await?;
            Segment::create(&self.dir, next, now).await
        }
        .await;
        let seg = match res {
            Ok(s) => Rc::new(s),
            Err(e) => {
                self.fail(&e);
                return Err(e);
            }
        };
        self.segments.borrow_mut().push(seg.clone());
        tracing::debug!(dir = %self.dir.display(), base_offset = next, "rolled segment");
        // The sealed segment is synced: everything below `next` is durable.
        self.mark_durable(next);
        self.write_checkpoint(false).await?;
        Ok(seg)
    }

    fn mark_durable(&self, offset: i64) {
        if offset > self.durable_offset.get() {
            self.durable_offset.set(offset);
            self.durable_waiters.borrow_mut().wake_below(offset);
        }
    }

    pub async fn wait_durable(&self, last_offset: i64) -> Result<(), LogError> {
        if self.config.borrow().flush != FlushPolicy::Always {
            return Ok(());
        }
        self.sync_through(last_offset).await
    }

    /// Waits until everything through `last_offset` is fdatasync'd, whatever the flush
    /// policy (group commit with other waiters): for records that must be on disk before
    /// something else is, like a transaction marker before the coordinator records the
    /// transaction's end.
    pub async fn sync_through(&self, last_offset: i64) -> Result<(), LogError> {
        if self.durable_offset.get() > last_offset {
            return Ok(());
        }
        self.request_sync();
        OffsetWait::new(
            &self.durable_waiters,
            &self.durable_offset,
            &self.offline,
            last_offset,
        )
        .await;
        if self.durable_offset.get() > last_offset {
            return Ok(());
        }
        self.check_online()
    }

    /// Starts the group-commit loop unless it runs already (it then picks this append up in
    /// its next round).
    fn request_sync(&self) {
        if self.sync_running.get() || self.offline.get() {
            return;
        }
        let Some(me) = self.me.upgrade() else { return };
        self.sync_running.set(true);
        glommio::spawn_local(async move {
            while me.durable_offset.get() < me.high_watermark.get() && !me.offline.get() {
                if let Err(e) = me.sync_once().await {
                    me.fail(&e);
                }
            }
            me.sync_running.set(false);
        })
        .detach();
    }

    /// One fdatasync of the active segment covering everything below the current hwm.
    async fn sync_once(&self) -> Result<(), LogError> {
        let target = self.high_watermark.get();
        let active = self.active();
        let at = Checkpoint {
            segment_base: active.base_offset,
            position: active.readable_end.get(),
            next_offset: target,
            log_start_offset: self.log_start_offset.get(),
        };
        // Sealed segments were synced by `seal`; the hwm is always inside the active one.
        active.sync().await?;
        self.sync_count.set(self.sync_count.get() + 1);
        self.mark_durable(target);
        if self.removed.get() {
            return Ok(());
        }
        if now_ms() - self.last_checkpoint_ms.get() >= CHECKPOINT_INTERVAL_MS {
            // The data is synced; the index only speeds up reads and is checked and
            // rebuilt by recovery, so a full disk here is no reason to go offline.
            match active.persist_index(false).await {
                Err(e) if is_no_space(&e) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "index not persisted (no space)");
                    self.last_checkpoint_ms.set(now_ms());
                    return Ok(());
                }
                r => r?,
            }
            self.store_checkpoint(at, false).await?;
        }
        Ok(())
    }

    /// Number of fdatasyncs of segment data issued by flushes and group commits (for tests
    /// and metrics).
    pub fn sync_count(&self) -> u64 {
        self.sync_count.get()
    }

    /// Syncs now and writes the index files and the checkpoint.
    pub async fn flush(&self) -> Result<(), LogError> {
        if self.offline.get() {
            return self.check_online();
        }
        let target = self.high_watermark.get();
        let active = self.active();
        let at = Checkpoint {
            segment_base: active.base_offset,
            position: active.readable_end.get(),
            next_offset: target,
            log_start_offset: self.log_start_offset.get(),
        };
        active.persist_index(false).await?;
        active.sync().await?;
        self.sync_count.set(self.sync_count.get() + 1);
        self.mark_durable(target);
        self.store_checkpoint(at, false).await
    }

    /// Writes the checkpoint at the high watermark. With `sync`, the data is synced first and
    /// the checkpoint too (log start moves, clean close); without, it is written only if
    /// everything below the hwm is durable already (recovery trusts what it covers).
    async fn write_checkpoint(&self, sync: bool) -> Result<(), LogError> {
        let active = self.active();
        let at = Checkpoint {
            segment_base: active.base_offset,
            position: active.readable_end.get(),
            next_offset: self.high_watermark.get(),
            log_start_offset: self.log_start_offset.get(),
        };
        if self.durable_offset.get() < at.next_offset {
            if !sync {
                return Ok(());
            }
            active.sync().await?;
            self.sync_count.set(self.sync_count.get() + 1);
            self.mark_durable(at.next_offset);
        }
        self.store_checkpoint(at, sync).await
    }

    async fn store_checkpoint(&self, mut at: Checkpoint, sync: bool) -> Result<(), LogError> {
        let _g = self
            .checkpoint_gate
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Offline("checkpoint gate".into()))?;
        if self.removed.get() {
            return Ok(());
        }
        at.log_start_offset = self.log_start_offset.get();
        if let Some((written, synced)) = self.written_checkpoint.get() {
            if written == at && (synced || !sync) {
                self.last_checkpoint_ms.set(now_ms());
                return Ok(());
            }
        }
        let path = checkpoint::path(&self.dir);
        let res = async {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .buffered_open(&path)
                .await?;
            f.write_at(at.encode(), 0).await?;
            if sync {
                f.fdatasync().await?;
            }
            f.close().await
        }
        .await;
        res.map_err(|e| LogError::io("writing checkpoint", &path, e))?;
        self.written_checkpoint.set(Some((at, sync)));
        self.last_checkpoint_ms.set(now_ms());
        Ok(())
    }

    fn start_flush_timer(&self) {
        let FlushPolicy::Interval(every) = self.config.borrow().flush else {
            return;
        };
        let generation = self.flush_timer_generation.get() + 1;
        self.flush_timer_generation.set(generation);
        let me = self.me.clone();
        let (lanes, lane) = super::flush_lanes::assign();
        glommio::spawn_local(async move {
            let stopped = |log: &PartitionLog| {
                log.flush_timer_generation.get() != generation
                    || log.closed.get()
                    || log.offline.get()
            };
            loop {
                glommio::timer::sleep(every).await;
                let Some(log) = me.upgrade() else { return };
                if stopped(&log) {
                    return;
                }
                if log.durable_offset.get() < log.high_watermark.get() {
                    let _turn = lanes[lane].lock().await;
                    if stopped(&log) {
                        return;
                    }
                    // An acks=all append may have synced it while it waited.
                    if log.durable_offset.get() >= log.high_watermark.get() {
                        continue;
                    }
                    if let Err(e) = log.flush().await {
                        log.fail(&e);
                    }
                }
            }
        })
        .detach();
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.get()
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.get()
    }

    /// The log end offset (offset of the next append, including appends still in flight).
    pub fn log_end_offset(&self) -> i64 {
        self.next_offset.get()
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.get()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Number of segments (active included).
    pub fn segment_count(&self) -> usize {
        self.segments.borrow().len()
    }

    /// Resolves when high_watermark() > offset (or the log goes offline). Cancel-safe; a
    /// named future (`Unpin`), so one task can wait on many logs at once.
    pub fn wait_for_append(&self, offset: i64) -> AppendWait<'_> {
        AppendWait(OffsetWait::new(
            &self.hwm_waiters,
            &self.high_watermark,
            &self.offline,
            offset,
        ))
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            log_start_offset: self.log_start_offset.get(),
            high_watermark: self.high_watermark.get(),
        }
    }

    /// Segments from the one containing `offset` on.
    fn segments_from(&self, offset: i64) -> Vec<Rc<Segment>> {
        let segs = self.segments.borrow();
        let i = segs
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        segs[i..].to_vec()
    }

    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchSlice, LogError> {
        self.read_below(offset, max_bytes, i64::MAX).await
    }

    /// `read`, leaving out every batch at or beyond `end_offset` (a read_committed fetch
    /// stops at the last stable offset, KIP-98). `end_offset` is meant to be a batch's base
    /// offset; a batch that contains it is left out whole. Offsets between `end_offset`
    /// and the high watermark are in range and read as empty.
    pub async fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        end_offset: i64,
    ) -> Result<FetchSlice, LogError> {
        if self.offline.get() {
            self.check_online()?;
        }
        let hwm = self.high_watermark.get();
        if offset < self.log_start_offset.get() || offset > hwm {
            return Err(self.out_of_range(offset));
        }
        let mut slice = FetchSlice::default();
        let stop_offset = end_offset.min(hwm);
        if offset >= stop_offset {
            return Ok(slice);
        }
        let mut budget = max_bytes as u64;
        for seg in self.segments_from(offset) {
            if seg.base_offset >= stop_offset {
                break;
            }
            // The segment holding `stop_offset` is the last one read, up to its batch.
            let cut = stop_offset < hwm && stop_offset < seg.next_offset.get();
            let end = match cut {
                true => seg.find_batch_from(stop_offset).await?.map(|b| b.0),
                false => None,
            };
            let end = end.unwrap_or(seg.readable_end.get());
            let first = slice.ranges.is_empty();
            // A compacted segment may hold no batch at or after `offset`: the next one may.
            let start = if first {
                match seg.find_batch_from(offset).await? {
                    Some((pos, _)) => pos,
                    None if cut => break,
                    None => continue,
                }
            } else {
                0
            };
            if start >= end {
                if first && !cut {
                    continue;
                }
                break;
            }
            let limit = start + budget;
            let mut stop = if limit >= end {
                end
            } else {
                seg.last_boundary(start, limit).await?
            };
            if stop == start {
                if !first {
                    break;
                }
                // KIP-74: the first batch is returned whole even when bigger than max_bytes.
                stop = start + seg.find_batch(offset).await?.1 as u64;
            }
            slice.ranges.push(FileRange {
                file: seg.file.clone(),
                fd: seg.shared_fd()?,
                position: start,
                len: (stop - start) as usize,
            });
            budget = budget.saturating_sub(stop - start);
            if stop < end || budget == 0 {
                break;
            }
        }
        Ok(slice)
    }

    /// The largest batch max timestamp of the segments from the log start offset on
    /// (ListOffsets MAX_TIMESTAMP, KIP-734), None when they hold no batch.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.segments_from(self.log_start_offset.get())
            .iter()
            .filter(|s| s.readable_end.get() > 0)
            .map(|s| s.max_timestamp.get())
            .max()
            .filter(|&ts| ts >= 0)
    }

    pub async fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        let start = self.log_start_offset.get();
        for seg in self.segments_from(start) {
            if seg.max_timestamp.get() < ts || seg.readable_end.get() == 0 {
                continue;
            }
            let from = seg
                .index
                .borrow()
                .lookup_time(ts)
                .map(|r| seg.base_offset + r as i64);
            let from = from
                .unwrap_or(seg.base_offset)
                .max(start)
                .min(seg.next_offset.get() - 1);
            if from >= self.high_watermark.get() {
                return Ok(None);
            }
            let Some((pos, _)) = seg.find_batch_from(from).await? else {
                continue;
            };
            if let Some(found) = seg.scan_for_timestamp(pos, ts, start).await? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    pub async fn delete_records(&self, before_offset: i64) -> Result<i64, LogError> {
        self.check_online()?;
        let hwm = self.high_watermark.get();
        let before = if before_offset == -1 {
            hwm
        } else {
            before_offset
        };
        if before < 0 || before > hwm {
            return Err(self.out_of_range(before_offset));
        }
        if before > self.log_start_offset.get() {
            let _gate = self.layout().await?;
            self.log_start_offset.set(before);
            self.delete_segments_below_start().await?;
            self.update_bytes_before_start().await?;
            self.write_checkpoint(true).await?;
        }
        Ok(self.log_start_offset.get())
    }

    /// Deletes sealed segments entirely below the log start offset.
    async fn delete_segments_below_start(&self) -> Result<(usize, u64), LogError> {
        let start = self.log_start_offset.get();
        let doomed: Vec<Rc<Segment>> = {
            let mut segs = self.segments.borrow_mut();
            let keep_from = segs
                .iter()
                .take(segs.len() - 1)
                .position(|s| s.next_offset.get() > start)
                .unwrap_or(segs.len() - 1);
            segs.drain(..keep_from).collect()
        };
        self.delete_segment_files(&doomed).await
    }

    async fn delete_segment_files(&self, doomed: &[Rc<Segment>]) -> Result<(usize, u64), LogError> {
        let mut bytes = 0;
        for s in doomed {
            bytes += s.reserved_end.get();
            self.size_bytes
                .set(self.size_bytes.get() - s.reserved_end.get());
            for p in [
                s.path(),
                segment::index_path(&self.dir, s.base_offset),
                segment::time_index_path(&self.dir, s.base_offset),
            ] {
                if let Err(e) = glommio::io::remove(&p).await {
                    let e: std::io::Error = e.into();
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(LogError::io("deleting segment", &p, e));
                    }
                }
            }
            tracing::info!(dir = %self.dir.display(), base_offset = s.base_offset, bytes = s.reserved_end.get(), "deleted segment");
        }
        self.retire(doomed.iter().cloned());
        Ok((doomed.len(), bytes))
    }

    pub(super) async fn update_bytes_before_start(&self) -> Result<(), LogError> {
        let start = self.log_start_offset.get();
        let first = self.segments.borrow()[0].clone();
        let pos = if start >= first.next_offset.get() {
            first.readable_end.get()
        } else if start > first.base_offset {
            let found = first.find_batch_from(start).await?;
            found.map_or(first.readable_end.get(), |b| b.0)
        } else {
            0
        };
        self.bytes_before_start.set(pos);
        Ok(())
    }

    /// The layout gate (see `layout_gate`).
    pub(super) async fn layout(&self) -> Result<glommio::sync::Permit<'_>, LogError> {
        self.layout_gate
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Offline("layout gate".into()))
    }

    /// Deletes old sealed segments: by `retention.ms` and `retention.bytes` when the
    /// cleanup policy has `delete` (Kafka: a `compact`-only topic keeps every key's last
    /// record for ever), and those wholly below the log start offset whatever the policy.
    pub async fn enforce_retention(&self, now_ms: i64) -> Result<RetentionReport, LogError> {
        self.check_online()?;
        let _gate = self.layout().await?;
        let mut config = self.config.borrow().clone();
        if !config.cleanup.delete {
            config.retention_ms = None;
            config.retention_bytes = None;
        }
        let doomed: Vec<Rc<Segment>> = {
            let mut segs = self.segments.borrow_mut();
            let sealed = segs.len() - 1;
            let mut size = self.size_bytes.get();
            let mut n = 0;
            while n < sealed {
                let s = &segs[n];
                let expired = config
                    .retention_ms
                    .is_some_and(|ms| s.max_timestamp.get() < now_ms - ms as i64);
                let oversize = config
                    .retention_bytes
                    .is_some_and(|max| size - s.reserved_end.get() >= max);
                // Kafka's log-start breach: sealed wholly below the log start (DeleteRecords).
                let below_start = s.next_offset.get() <= self.log_start_offset.get();
                if !(expired || oversize || below_start) {
                    break;
                }
                size -= s.reserved_end.get();
                n += 1;
            }
            segs.drain(..n).collect()
        };
        let mut report = RetentionReport {
            log_start_offset: self.log_start_offset.get(),
            ..Default::default()
        };
        if doomed.is_empty() {
            return Ok(report);
        }
        let new_start = self.segments.borrow()[0].base_offset;
        if new_start > self.log_start_offset.get() {
            self.log_start_offset.set(new_start);
        }
        let (n, bytes) = self.delete_segment_files(&doomed).await?;
        self.update_bytes_before_start().await?;
        self.write_checkpoint(false).await?;
        report.segments_deleted = n;
        report.bytes_deleted = bytes;
        report.log_start_offset = self.log_start_offset.get();
        Ok(report)
    }

    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        let old = std::mem::replace(&mut *self.config.borrow_mut(), config.clone());
        if old.flush != config.flush {
            self.flush_timer_generation
                .set(self.flush_timer_generation.get() + 1);
            self.start_flush_timer();
        }
    }

    /// Waits for in-flight writes, syncs, trims the preallocated tail and writes the indexes
    /// and the checkpoint. Reads keep working; appends are refused.
    pub async fn close(&self) -> Result<(), LogError> {
        if !self.close_unsynced().await? {
            return Ok(());
        }
        let active = self.active();
        active.sync().await?;
        segment::sync_path(&segment::index_path(&self.dir, active.base_offset)).await?;
        self.close_synced(true).await
    }

    /// `close`'s first half for a stop of many logs at once: no more appends, the ones
    /// in flight landed, the active segment trimmed and its index written, nothing
    /// synced. The caller syncs the file system once for every log, then calls
    /// `close_synced(false)`. False: closed already.
    pub async fn close_unsynced(&self) -> Result<bool, LogError> {
        if self.closed.get() {
            return Ok(false);
        }
        self.closed.set(true);
        let _p = self.reserve_gate.lock().await;
        let next = self.next_offset.get();
        OffsetWait::new(
            &self.hwm_waiters,
            &self.high_watermark,
            &self.offline,
            next - 1,
        )
        .await;
        if self.offline.get() {
            return self.check_online().map(|_| false);
        }
        let active = self.active();
        active.trim().await?;
        active.persist_index(false).await?;
        Ok(true)
    }

    /// `close`'s second half, once the segment and its index are synced: the checkpoint
    /// that says so (synced here when `sync`, else by the caller's next file-system sync).
    pub async fn close_synced(&self, sync: bool) -> Result<(), LogError> {
        self.mark_durable(self.next_offset.get());
        self.write_checkpoint(sync).await?;
        self.flush_timer_generation
            .set(self.flush_timer_generation.get() + 1);
        Ok(())
    }

    /// Deletes every file and the directory (DeleteTopics). Open fetch ranges stay readable.
    pub async fn remove(&self) -> Result<(), LogError> {
        self.closed.set(true);
        self.removed.set(true);
        // A checkpoint write already past its check finishes before the files go.
        let _gate = self
            .checkpoint_gate
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Offline("checkpoint gate".into()))?;
        let _layout = self.layout().await?;
        self.offline_reason
            .borrow_mut()
            .get_or_insert_with(|| "removed".into());
        self.offline.set(true);
        self.hwm_waiters.borrow_mut().wake_all();
        self.durable_waiters.borrow_mut().wake_all();
        self.flush_timer_generation
            .set(self.flush_timer_generation.get() + 1);
        let segs: Vec<Rc<Segment>> = self.segments.borrow().clone();
        self.delete_segment_files(&segs).await?;
        // See `open` for why directory operations use std.
        std::fs::remove_dir_all(&self.dir)
            .map_err(|e| LogError::io("removing partition directory", &self.dir, e))?;
        Ok(())
    }

    /// Approximate heap bytes held for this partition (indexes and bookkeeping).
    pub fn heap_bytes(&self) -> usize {
        let segs = self.segments.borrow();
        std::mem::size_of::<Self>()
            + segs
                .iter()
                .map(|s| std::mem::size_of::<Segment>() + s.index.borrow().heap_bytes())
                .sum::<usize>()
            + self.hwm_waiters.borrow().len() * 48
    }
}
