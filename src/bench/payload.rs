//! The first bytes of every message the load generator sends: a magic, the run id and the
//! intended send time, so a consumer measures end-to-end latency from the schedule.

/// `b"SLBN"`: marks a `sluice bench` payload.
pub const MAGIC: u32 = 0x534c_424e;
/// magic (4) + run id (4) + intended send time in ns since the run's epoch (8).
pub const HEADER_BYTES: usize = 16;

/// A payload of `size` bytes (at least the header): the header, then filler.
/// The filler is pseudo-random (xorshift), so it does not compress to nothing.
pub fn template(size: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0u8; size.max(HEADER_BYTES)];
    let mut x = seed | 1;
    for b in buf.iter_mut().skip(HEADER_BYTES) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    buf
}

/// Writes the header into `buf` (made by `template`).
pub fn stamp(buf: &mut [u8], run_id: u32, intended_ns: u64) {
    buf[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    buf[4..8].copy_from_slice(&run_id.to_be_bytes());
    buf[8..16].copy_from_slice(&intended_ns.to_be_bytes());
}

/// The intended send time of a payload of run `run_id`, or `None` for anything else.
pub fn read(buf: &[u8], run_id: u32) -> Option<u64> {
    if buf.len() < HEADER_BYTES
        || buf[0..4] != MAGIC.to_be_bytes()
        || buf[4..8] != run_id.to_be_bytes()
    {
        return None;
    }
    let mut t = [0u8; 8];
    t.copy_from_slice(&buf[8..16]);
    Some(u64::from_be_bytes(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamped_payload_reads_back_its_time_only_for_its_own_run() {
        let mut p = template(100, 7);
        assert_eq!(p.len(), 100);
        stamp(&mut p, 42, 123_456_789);
        assert_eq!(read(&p, 42), Some(123_456_789));
        assert_eq!(read(&p, 43), None);
        assert_eq!(read(&p[..15], 42), None);
        assert_eq!(read(b"plain text from someone else", 42), None);
    }

    #[test]
    fn tiny_sizes_still_hold_the_header() {
        assert_eq!(template(1, 1).len(), HEADER_BYTES);
    }
}
