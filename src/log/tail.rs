//! The last batches appended to a segment, kept in memory: a live-tail fetch finds where
//! its batch starts, and where a read within its budget ends, here instead of reading
//! batch headers back from the file. The index is sparse (an entry every
//! `index.interval.bytes`), so without this every fetch at the tail read — copied — up to
//! 64 KiB of just-written bytes only to walk their headers, and then sent the same bytes
//! again with `sendfile`.

use std::collections::VecDeque;

/// Batches kept per active segment: a consumer more than this many batches behind the
/// head reads through the index as before. 16 × 32 bytes per partition.
const KEPT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Batch {
    base: i64,
    last: i64,
    position: u64,
    len: u64,
}

/// The segment's newest batches in offset order, contiguous in offsets and in position.
#[derive(Debug, Default)]
pub(crate) struct TailBatches {
    batches: VecDeque<Batch>,
}

impl TailBatches {
    /// One batch reserved at `position` with offsets `base..=last`, after every earlier one.
    pub fn push(&mut self, base: i64, last: i64, position: u64, len: u64) {
        let follows = self
            .batches
            .back()
            .is_none_or(|b| b.position + b.len == position && b.last < base);
        if !follows {
            self.batches.clear();
        }
        if self.batches.len() == KEPT {
            self.batches.pop_front();
        }
        self.batches.push_back(Batch {
            base,
            last,
            position,
            len,
        });
    }

    pub fn clear(&mut self) {
        self.batches = VecDeque::new();
    }

    /// `Segment::find_batch_from` for an offset these batches cover: `Some(answer)` —
    /// (position, length) of the first readable batch ending at or after `offset`, or
    /// `None` when no readable batch does — else `None` (look in the file).
    pub fn batch_from(&self, offset: i64, readable_end: u64) -> Option<Option<(u64, usize)>> {
        if offset < self.batches.front()?.base {
            return None;
        }
        let i = self.batches.partition_point(|b| b.last < offset);
        Some(
            self.batches
                .get(i)
                .filter(|b| b.position < readable_end)
                .map(|b| (b.position, b.len as usize)),
        )
    }

    /// `Segment::last_boundary` when `start` is the position of a batch kept here: the
    /// end of the last whole batch from `start` that ends by `limit` and starts before
    /// `readable_end` (`start` itself when the first alone goes past `limit`).
    pub fn last_boundary(&self, start: u64, limit: u64, readable_end: u64) -> Option<u64> {
        let i = self
            .batches
            .binary_search_by_key(&start, |b| b.position)
            .ok()?;
        let end = readable_end.min(limit);
        let mut pos = start;
        for b in self.batches.range(i..) {
            if pos >= end || b.position + b.len > limit {
                break;
            }
            pos += b.len;
        }
        Some(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::TailBatches;

    /// Batches of 3 offsets and 100 bytes each, from offset 10 at position 0.
    fn tail(n: i64) -> TailBatches {
        let mut t = TailBatches::default();
        for i in 0..n {
            t.push(10 + 3 * i, 12 + 3 * i, 100 * i as u64, 100);
        }
        t
    }

    #[test]
    fn finds_the_batch_holding_an_offset_or_says_none_follows() {
        let t = tail(4); // offsets 10..=21, positions 0..400
        assert_eq!(t.batch_from(10, 400), Some(Some((0, 100))));
        assert_eq!(t.batch_from(14, 400), Some(Some((100, 100))));
        assert_eq!(t.batch_from(21, 400), Some(Some((300, 100))));
        // Past the last batch, or in one not readable yet.
        assert_eq!(t.batch_from(22, 400), Some(None));
        assert_eq!(t.batch_from(20, 300), Some(None));
        // Before the first kept batch: the file knows.
        assert_eq!(t.batch_from(9, 400), None);
        assert_eq!(TailBatches::default().batch_from(0, 0), None);
    }

    #[test]
    fn keeps_only_the_newest_batches() {
        let t = tail(40);
        let first_kept = 10 + 3 * (40 - super::KEPT as i64);
        assert_eq!(t.batch_from(first_kept - 1, u64::MAX), None);
        assert!(t.batch_from(first_kept, u64::MAX).is_some());
    }

    #[test]
    fn a_batch_that_does_not_follow_starts_over() {
        let mut t = tail(3);
        t.push(100, 100, 900, 50); // a gap in positions
        assert_eq!(t.batch_from(10, u64::MAX), None);
        assert_eq!(t.batch_from(100, u64::MAX), Some(Some((900, 50))));
        t.push(90, 95, 950, 50); // offsets going back
        assert_eq!(t.batch_from(91, u64::MAX), Some(Some((950, 50))));
        assert_eq!(t.batch_from(89, u64::MAX), None);
    }

    #[test]
    fn last_boundary_stops_at_the_limit_and_the_readable_end() {
        let t = tail(4);
        assert_eq!(t.last_boundary(0, 1000, 400), Some(400));
        assert_eq!(t.last_boundary(0, 250, 400), Some(200));
        assert_eq!(t.last_boundary(100, 150, 400), Some(100)); // first alone too big
        assert_eq!(t.last_boundary(100, 1000, 300), Some(300));
        assert_eq!(t.last_boundary(50, 1000, 400), None); // not a kept batch start
    }
}
