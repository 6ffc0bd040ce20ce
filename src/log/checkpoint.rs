//! The recovery checkpoint: a 40-byte file in the partition directory saying up to where the
//! log was synced and validated, so recovery re-validates only what comes after it.
//!
//! Layout (big-endian): `"SLCP" | segment base i64 | position u64 | next offset i64 |
//! log start offset i64 | crc32c u32 of the 36 bytes before`. It is overwritten in place (one
//! sector, never torn in practice; a torn or missing file only means more re-validation).
//! It is written after syncs (at most once a second), on roll, on clean close, and with an
//! fdatasync when the log start offset moves (DeleteRecords must survive a crash).

use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "recovery-checkpoint";
const MAGIC: &[u8; 4] = b"SLCP";
pub const LEN: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The segment holding `position`.
    pub segment_base: i64,
    /// Byte position in that segment up to which every batch is synced and valid.
    pub position: u64,
    /// The offset of the batch at `position` (the log end offset at checkpoint time).
    pub next_offset: i64,
    pub log_start_offset: i64,
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.segment_base.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
        out.extend_from_slice(&self.next_offset.to_be_bytes());
        out.extend_from_slice(&self.log_start_offset.to_be_bytes());
        let crc = crate::crc::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Checkpoint> {
        if b.len() < LEN || &b[..4] != MAGIC {
            return None;
        }
        let word = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            a
        };
        let crc = u32::from_be_bytes([b[36], b[37], b[38], b[39]]);
        if crate::crc::crc32c(&b[..36]) != crc {
            return None;
        }
        let c = Checkpoint {
            segment_base: i64::from_be_bytes(word(4)),
            position: u64::from_be_bytes(word(12)),
            next_offset: i64::from_be_bytes(word(20)),
            log_start_offset: i64::from_be_bytes(word(28)),
        };
        let sane =
            c.segment_base >= 0 && c.next_offset >= c.segment_base && c.log_start_offset >= 0;
        sane.then_some(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn() {
        let c = Checkpoint {
            segment_base: 100,
            position: 4096,
            next_offset: 150,
            log_start_offset: 7,
        };
        let mut b = c.encode();
        assert_eq!(Checkpoint::decode(&b), Some(c));
        b[10] ^= 1;
        assert_eq!(Checkpoint::decode(&b), None);
        assert_eq!(Checkpoint::decode(&b[..20]), None);
    }
}
