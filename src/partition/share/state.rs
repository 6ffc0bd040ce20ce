//! Share-partition state (KIP-932) on the partition's owner shard: for one share group
//! and one partition, the share-partition start offset (SPSO), the in-flight window
//! `[start, end)` with each record's state and delivery count, and the acquisition
//! locks. Everything below `start` is done (acknowledged or archived); nothing at or
//! after `end` has been handed out yet.
//!
//! A record moves Available → Acquired (a member holds its lock; delivery count + 1) →
//! Acknowledged (ACCEPT) | Available (RELEASE, lock expiry) | Archived (REJECT, or the
//! delivery count limit reached on release or expiry). Control records and, for
//! read_committed, records of aborted transactions are archived without ever being
//! acquired. The window is capped at `max_locks` records (Kafka's
//! `share.partition.max.record.locks`), so memory stays bounded however far the
//! consumers are behind.
//!
//! Pure state: no I/O, no clock (callers pass `now_ms`). `partition/share/owner.rs`
//! reads the log, writes the journal and answers the messages.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::kafka::ErrorCode;

/// ShareAcknowledge / ShareFetch acknowledge types (KIP-932, KIP-1222).
pub const ACK_GAP: i8 = 0;
pub const ACK_ACCEPT: i8 = 1;
pub const ACK_RELEASE: i8 = 2;
pub const ACK_REJECT: i8 = 3;
pub const ACK_RENEW: i8 = 4;

/// What governs one share group's partitions (the group's configs, resolved).
#[derive(Debug, Clone, PartialEq)]
pub struct ShareConfig {
    pub lock_ms: i64,
    pub delivery_limit: i16,
    pub max_locks: usize,
    /// share.isolation.level=read_committed.
    pub committed: bool,
    /// share.auto.offset.reset=earliest (else latest).
    pub reset_earliest: bool,
    /// Sluice: a released or expired record waits `backoff_ms * 2^(count-1)` (at most
    /// `backoff_max_ms`) before it is available again. 0: off (Kafka's behaviour).
    pub backoff_ms: i64,
    pub backoff_max_ms: i64,
    /// KIP-1191: where rejected and delivery-limit records are copied before archiving.
    pub dlq_topic: Option<String>,
    /// KIP-1191: the dead-letter record carries the original key and value.
    pub dlq_copy_record: bool,
}

impl Default for ShareConfig {
    fn default() -> Self {
        ShareConfig {
            lock_ms: 30_000,
            delivery_limit: 5,
            max_locks: 2_000,
            committed: false,
            reset_earliest: false,
            backoff_ms: 0,
            backoff_max_ms: 60_000,
            dlq_topic: None,
            dlq_copy_record: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired,
    Acknowledged,
    Archived,
}

impl RecordState {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> RecordState {
        match c {
            0 => RecordState::Available,
            1 => RecordState::Acquired,
            2 => RecordState::Acknowledged,
            _ => RecordState::Archived,
        }
    }

    fn is_terminal(self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

/// Why a record was archived: what a dead-letter record says (KIP-1191).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveReason {
    Rejected,
    DeliveryLimit,
}

impl ArchiveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveReason::Rejected => "REJECTED",
            ArchiveReason::DeliveryLimit => "DELIVERY_COUNT_LIMIT",
        }
    }
}

/// A record archived by a consumer's decision or the delivery limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Archived {
    pub offset: i64,
    pub delivery_count: i16,
    pub reason: ArchiveReason,
}

#[derive(Debug, Clone)]
struct Slot {
    state: RecordState,
    delivery_count: i16,
    member: Option<Rc<str>>,
    /// Acquired: when the lock expires. Available: not before this (backoff, delay).
    deadline_ms: i64,
}

impl Slot {
    fn fresh() -> Slot {
        Slot {
            state: RecordState::Available,
            delivery_count: 0,
            member: None,
            deadline_ms: 0,
        }
    }

    /// Available and past any backoff or delay: a fetch may acquire it now.
    fn ready(&self, now_ms: i64) -> bool {
        self.state == RecordState::Available && self.deadline_ms <= now_ms
    }
}

/// What one batch of the log looks like to acquisition.
#[derive(Debug, Clone, Copy)]
pub struct BatchSpan {
    pub base: i64,
    pub last: i64,
    /// Control batch, or (read_committed) a batch of an aborted transaction: archived,
    /// never handed out.
    pub skip: bool,
    /// Sluice's delayed delivery: not acquirable before this time (0: now).
    pub not_before_ms: i64,
}

/// Counters a share partition reports.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ShareCounts {
    pub available: u64,
    pub acquired: u64,
}

#[derive(Debug, Clone)]
pub struct SharePartition {
    start: i64,
    slots: VecDeque<Slot>,
    pub lock_expiries: u64,
    pub delivery_limit_hits: u64,
    /// Records archived by REJECT or the delivery limit (not control records).
    pub archived_total: u64,
}

impl SharePartition {
    pub fn new(start: i64) -> SharePartition {
        SharePartition {
            start,
            slots: VecDeque::new(),
            lock_expiries: 0,
            delivery_limit_hits: 0,
            archived_total: 0,
        }
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    /// The first offset not handed out yet (SPEO).
    pub fn end(&self) -> i64 {
        self.start + self.slots.len() as i64
    }

    fn slot(&self, offset: i64) -> Option<&Slot> {
        let i = usize::try_from(offset - self.start).ok()?;
        self.slots.get(i)
    }

    fn slot_mut(&mut self, offset: i64) -> Option<&mut Slot> {
        let i = usize::try_from(offset - self.start).ok()?;
        self.slots.get_mut(i)
    }

    /// The state and delivery count of `offset`.
    #[cfg(test)]
    pub fn state_of(&self, offset: i64) -> Option<(RecordState, i16)> {
        self.slot(offset).map(|s| (s.state, s.delivery_count))
    }

    /// The log start moved past the window (retention, DeleteRecords): what is gone is
    /// gone for the share group too.
    pub fn clamp_to(&mut self, log_start: i64) {
        while self.start < log_start {
            if self.slots.pop_front().is_none() {
                self.start = log_start;
                return;
            }
            self.start += 1;
        }
    }

    /// Locks past their time return their records (archived at the delivery limit).
    pub fn expire(&mut self, now_ms: i64, c: &ShareConfig) -> Vec<Archived> {
        let mut archived = Vec::new();
        let start = self.start;
        let mut expired = 0;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.state == RecordState::Acquired && s.deadline_ms <= now_ms {
                expired += 1;
                if let Some(a) = Self::give_back(s, start + i as i64, now_ms, c) {
                    archived.push(a);
                }
            }
        }
        self.lock_expiries += expired;
        self.delivery_limit_hits += archived.len() as u64;
        self.archived_total += archived.len() as u64;
        self.advance();
        archived
    }

    /// An acquired record goes back: available (after the backoff), or archived once
    /// it was delivered `delivery_limit` times.
    fn give_back(s: &mut Slot, offset: i64, now_ms: i64, c: &ShareConfig) -> Option<Archived> {
        s.member = None;
        if s.delivery_count >= c.delivery_limit {
            s.state = RecordState::Archived;
            return Some(Archived {
                offset,
                delivery_count: s.delivery_count,
                reason: ArchiveReason::DeliveryLimit,
            });
        }
        s.state = RecordState::Available;
        s.deadline_ms = now_ms + backoff(c, s.delivery_count);
        None
    }

    /// Where the next acquisition should read the log from: the first available record
    /// of the window, else the end; None when the window is full and nothing in it is
    /// available now.
    pub fn next_read(&self, now_ms: i64, c: &ShareConfig) -> Option<i64> {
        let first = self.slots.iter().position(|s| s.ready(now_ms));
        match first {
            Some(i) => Some(self.start + i as i64),
            None if self.slots.len() < c.max_locks => Some(self.end()),
            None => None,
        }
    }

    /// How many records a fetch could acquire now: the available ones in the window and
    /// the room left under `share.partition.max.record.locks`.
    pub fn acquirable(&self, now_ms: i64, c: &ShareConfig) -> usize {
        let available = self.slots.iter().filter(|s| s.ready(now_ms)).count();
        available + c.max_locks.saturating_sub(self.slots.len())
    }

    /// The earliest time a lock expires or a held-back record becomes available (a
    /// fetch that found nothing waits at most until then).
    pub fn next_deadline(&self) -> Option<i64> {
        self.slots
            .iter()
            .filter(|s| s.state == RecordState::Acquired || s.state == RecordState::Available)
            .map(|s| s.deadline_ms)
            .filter(|&d| d > 0)
            .min()
    }

    /// Acquire for `member` what `batches` (read from the log, in order) hold that is
    /// available, at most `max_records` records. Returns the acquired ranges
    /// `(first, last, delivery_count)` and, per batch, whether any of it was acquired.
    pub fn acquire(
        &mut self,
        member: &Rc<str>,
        batches: &[BatchSpan],
        max_records: usize,
        now_ms: i64,
        c: &ShareConfig,
    ) -> (Vec<(i64, i64, i16)>, Vec<bool>) {
        let mut ranges: Vec<(i64, i64, i16)> = Vec::new();
        let mut used = Vec::with_capacity(batches.len());
        let mut taken = 0usize;
        for b in batches {
            let mut any = false;
            for offset in b.base.max(self.start)..=b.last {
                if taken >= max_records {
                    break;
                }
                if !self.extend_to(offset, c) {
                    break;
                }
                let Some(s) = self.slot_mut(offset) else {
                    break;
                };
                if b.skip {
                    if s.state == RecordState::Available {
                        s.state = RecordState::Archived;
                    }
                    continue;
                }
                let ready = s.deadline_ms <= now_ms && b.not_before_ms <= now_ms;
                if s.state != RecordState::Available || !ready {
                    continue;
                }
                s.state = RecordState::Acquired;
                s.delivery_count = s.delivery_count.saturating_add(1);
                s.member = Some(member.clone());
                s.deadline_ms = now_ms + c.lock_ms;
                let count = s.delivery_count;
                taken += 1;
                any = true;
                match ranges.last_mut() {
                    Some(r) if r.1 + 1 == offset && r.2 == count => r.1 = offset,
                    _ => ranges.push((offset, offset, count)),
                }
            }
            used.push(any);
        }
        self.advance();
        (ranges, used)
    }

    /// Make `offset` part of the window if it is the next one and the cap allows.
    fn extend_to(&mut self, offset: i64, c: &ShareConfig) -> bool {
        while self.end() <= offset {
            if self.slots.len() >= c.max_locks {
                return false;
            }
            self.slots.push_back(Slot::fresh());
        }
        true
    }

    /// Apply one member's acknowledgements: `(first, last, types)` with one type for
    /// the whole range or one per offset. All or nothing: every offset must be acquired
    /// by `member` (else INVALID_RECORD_STATE and nothing changes).
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[(i64, i64, Vec<i8>)],
        now_ms: i64,
        c: &ShareConfig,
    ) -> Result<Vec<Archived>, ErrorCode> {
        self.check_acks(member, batches)?;
        let mut archived = Vec::new();
        let mut hits = 0;
        for (first, last, types) in batches {
            for offset in *first..=*last {
                let t = ack_type(types, offset - first);
                let Some(s) = self.slot_mut(offset) else {
                    continue;
                };
                match t {
                    ACK_ACCEPT => {
                        s.state = RecordState::Acknowledged;
                        s.member = None;
                    }
                    ACK_GAP | ACK_REJECT => {
                        s.state = RecordState::Archived;
                        s.member = None;
                        if t == ACK_REJECT {
                            archived.push(Archived {
                                offset,
                                delivery_count: s.delivery_count,
                                reason: ArchiveReason::Rejected,
                            });
                        }
                    }
                    ACK_RELEASE => {
                        if let Some(a) = Self::give_back(s, offset, now_ms, c) {
                            hits += 1;
                            archived.push(a);
                        }
                    }
                    _ => s.deadline_ms = now_ms + c.lock_ms,
                }
            }
        }
        self.delivery_limit_hits += hits;
        self.archived_total += archived.len() as u64;
        self.advance();
        Ok(archived)
    }

    fn check_acks(&self, member: &str, batches: &[(i64, i64, Vec<i8>)]) -> Result<(), ErrorCode> {
        for (first, last, types) in batches {
            let n = last - first + 1;
            if n <= 0 || (types.len() != 1 && types.len() as i64 != n) {
                return Err(ErrorCode::InvalidRequest);
            }
            if types.iter().any(|t| !(ACK_GAP..=ACK_RENEW).contains(t)) {
                return Err(ErrorCode::InvalidRequest);
            }
            for offset in *first..=*last {
                let held = self
                    .slot(offset)
                    .filter(|_| offset >= self.start)
                    .is_some_and(|s| {
                        s.state == RecordState::Acquired && s.member.as_deref() == Some(member)
                    });
                // A gap the member saw no record at (control records) may be below the
                // window already.
                let gap = ack_type(types, offset - first) == ACK_GAP;
                let gap_done = gap && self.slot(offset).is_none_or(|s| s.state.is_terminal());
                if !(held || gap_done) {
                    return Err(ErrorCode::InvalidRecordState);
                }
            }
        }
        Ok(())
    }

    /// A member left (its share session closed): its records go back at once, with
    /// the delivery count they have.
    pub fn release_member(&mut self, member: &str, now_ms: i64, c: &ShareConfig) -> Vec<Archived> {
        let mut archived = Vec::new();
        let start = self.start;
        for (i, s) in self.slots.iter_mut().enumerate() {
            if s.state == RecordState::Acquired && s.member.as_deref() == Some(member) {
                if let Some(a) = Self::give_back(s, start + i as i64, now_ms, c) {
                    archived.push(a);
                }
            }
        }
        self.delivery_limit_hits += archived.len() as u64;
        self.archived_total += archived.len() as u64;
        self.advance();
        archived
    }

    /// Move the start past the done records at the front of the window.
    fn advance(&mut self) {
        while self.slots.front().is_some_and(|s| s.state.is_terminal()) {
            self.slots.pop_front();
            self.start += 1;
        }
    }

    pub fn counts(&self) -> ShareCounts {
        let mut c = ShareCounts::default();
        for s in &self.slots {
            match s.state {
                RecordState::Available => c.available += 1,
                RecordState::Acquired => c.acquired += 1,
                RecordState::Acknowledged | RecordState::Archived => {}
            }
        }
        c
    }

    /// The durable form: runs `(first, last, state, delivery_count)` of the window, an
    /// acquired record saved as available (its lock does not survive a restart).
    pub fn runs(&self) -> Vec<(i64, i64, u8, i16)> {
        let mut runs: Vec<(i64, i64, u8, i16)> = Vec::new();
        for (i, s) in self.slots.iter().enumerate() {
            let offset = self.start + i as i64;
            let state = match s.state {
                RecordState::Acquired => RecordState::Available,
                other => other,
            }
            .code();
            match runs.last_mut() {
                Some(r) if r.1 + 1 == offset && r.2 == state && r.3 == s.delivery_count => {
                    r.1 = offset
                }
                _ => runs.push((offset, offset, state, s.delivery_count)),
            }
        }
        runs
    }

    /// Rebuild from the durable form.
    pub fn restore(start: i64, runs: &[(i64, i64, u8, i16)]) -> SharePartition {
        let mut sp = SharePartition::new(start);
        for &(first, last, state, count) in runs {
            for offset in first.max(start)..=last {
                while sp.end() < offset {
                    sp.slots.push_back(Slot::fresh());
                }
                sp.slots.push_back(Slot {
                    state: RecordState::from_code(state),
                    delivery_count: count,
                    member: None,
                    deadline_ms: 0,
                });
            }
        }
        sp.advance();
        sp
    }
}

fn ack_type(types: &[i8], i: i64) -> i8 {
    if types.len() == 1 {
        types[0]
    } else {
        types.get(i as usize).copied().unwrap_or(ACK_ACCEPT)
    }
}

/// Sluice's redelivery backoff for a record delivered `count` times.
fn backoff(c: &ShareConfig, count: i16) -> i64 {
    if c.backoff_ms <= 0 || count <= 0 {
        return 0;
    }
    let shift = (count - 1).clamp(0, 20) as u32;
    c.backoff_ms
        .saturating_mul(1 << shift)
        .min(c.backoff_max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(base: i64, last: i64) -> BatchSpan {
        BatchSpan {
            base,
            last,
            skip: false,
            not_before_ms: 0,
        }
    }

    fn m(s: &str) -> Rc<str> {
        Rc::from(s)
    }

    #[test]
    fn two_members_never_get_the_same_record() {
        let c = ShareConfig::default();
        let mut sp = SharePartition::new(0);
        let (a, _) = sp.acquire(&m("a"), &[span(0, 9)], 4, 0, &c);
        assert_eq!(a, vec![(0, 3, 1)]);
        let (b, _) = sp.acquire(&m("b"), &[span(0, 9)], 100, 0, &c);
        assert_eq!(b, vec![(4, 9, 1)]);
        assert_eq!(sp.counts().acquired, 10);
    }

    #[test]
    fn accept_moves_the_start_and_release_redelivers_with_count_two() {
        let c = ShareConfig::default();
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), &[span(0, 2)], 10, 0, &c);
        sp.acknowledge(
            "a",
            &[(0, 0, vec![ACK_ACCEPT]), (1, 1, vec![ACK_RELEASE])],
            0,
            &c,
        )
        .unwrap();
        assert_eq!(sp.start(), 1);
        let (again, _) = sp.acquire(&m("b"), &[span(1, 2)], 10, 0, &c);
        assert_eq!(again, vec![(1, 1, 2)]);
    }

    #[test]
    fn acks_of_records_another_member_holds_change_nothing() {
        let c = ShareConfig::default();
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), &[span(0, 1)], 10, 0, &c);
        let e = sp.acknowledge("b", &[(0, 1, vec![ACK_ACCEPT])], 0, &c);
        assert_eq!(e, Err(ErrorCode::InvalidRecordState));
        assert_eq!(sp.counts().acquired, 2);
    }

    #[test]
    fn the_delivery_limit_archives() {
        let c = ShareConfig {
            delivery_limit: 2,
            ..ShareConfig::default()
        };
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), &[span(0, 0)], 10, 0, &c);
        assert!(sp
            .acknowledge("a", &[(0, 0, vec![ACK_RELEASE])], 0, &c)
            .unwrap()
            .is_empty());
        sp.acquire(&m("a"), &[span(0, 0)], 10, 0, &c);
        let a = sp
            .acknowledge("a", &[(0, 0, vec![ACK_RELEASE])], 0, &c)
            .unwrap();
        assert_eq!(a[0].reason, ArchiveReason::DeliveryLimit);
        assert_eq!(sp.start(), 1);
    }

    #[test]
    fn expired_locks_return_records() {
        let c = ShareConfig {
            lock_ms: 100,
            ..ShareConfig::default()
        };
        let mut sp = SharePartition::new(5);
        sp.acquire(&m("a"), &[span(5, 6)], 10, 0, &c);
        assert!(sp.expire(99, &c).is_empty());
        assert_eq!(sp.counts().acquired, 2);
        sp.expire(100, &c);
        assert_eq!(sp.counts().available, 2);
        assert_eq!(sp.lock_expiries, 2);
    }

    #[test]
    fn the_window_is_capped() {
        let c = ShareConfig {
            max_locks: 3,
            ..ShareConfig::default()
        };
        let mut sp = SharePartition::new(0);
        let (a, _) = sp.acquire(&m("a"), &[span(0, 9)], 100, 0, &c);
        assert_eq!(a, vec![(0, 2, 1)]);
        assert_eq!(sp.next_read(0, &c), None);
    }

    #[test]
    fn runs_survive_a_restart_with_acquired_as_available() {
        let c = ShareConfig::default();
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), &[span(0, 3)], 10, 0, &c);
        sp.acknowledge("a", &[(1, 1, vec![ACK_ACCEPT])], 0, &c)
            .unwrap();
        let back = SharePartition::restore(sp.start(), &sp.runs());
        assert_eq!(back.state_of(0), Some((RecordState::Available, 1)));
        assert_eq!(back.state_of(1), Some((RecordState::Acknowledged, 1)));
        assert_eq!(back.end(), 4);
    }

    #[test]
    fn skipped_batches_are_archived_not_handed_out() {
        let c = ShareConfig::default();
        let mut sp = SharePartition::new(0);
        let mut marker = span(2, 2);
        marker.skip = true;
        let (a, used) = sp.acquire(&m("a"), &[span(0, 1), marker, span(3, 3)], 10, 0, &c);
        assert_eq!(a, vec![(0, 1, 1), (3, 3, 1)]);
        assert_eq!(used, vec![true, false, true]);
    }

    #[test]
    fn backoff_holds_a_released_record_back() {
        let c = ShareConfig {
            backoff_ms: 1000,
            ..ShareConfig::default()
        };
        let mut sp = SharePartition::new(0);
        sp.acquire(&m("a"), &[span(0, 0)], 10, 0, &c);
        sp.acknowledge("a", &[(0, 0, vec![ACK_RELEASE])], 10, &c)
            .unwrap();
        assert!(sp.acquire(&m("a"), &[span(0, 0)], 10, 500, &c).0.is_empty());
        assert_eq!(
            sp.acquire(&m("a"), &[span(0, 0)], 10, 1010, &c).0,
            vec![(0, 0, 2)]
        );
    }
}
