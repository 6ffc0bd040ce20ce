//! CRC-32C (Castagnoli), the checksum of Kafka record batches and of our own state files.
//! `crc-fast` picks the widest carry-less multiply the CPU has at run time (VPCLMULQDQ on
//! AVX-512 machines) and falls back to SSE4.2 or a table elsewhere.

use crc_fast::CrcAlgorithm;

/// CRC-32C of `bytes` (the value Kafka stores in a batch header).
#[inline]
pub fn crc32c(bytes: &[u8]) -> u32 {
    // CRC-32/ISCSI is CRC-32C; the 32-bit value comes back widened to u64.
    crc_fast::checksum(CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

#[cfg(test)]
mod tests {
    use super::crc32c;
    use proptest::prelude::*;

    #[test]
    fn known_check_value() {
        // The catalogued check value of CRC-32/ISCSI.
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    proptest! {
        /// Same answer as the `crc32c` crate at every length and alignment (the SIMD
        /// paths switch at 16, 64, 128, 256 bytes and more).
        #[test]
        fn agrees_with_the_crc32c_crate(data in proptest::collection::vec(any::<u8>(), 0..5000), skip in 0usize..64) {
            let skip = skip.min(data.len());
            prop_assert_eq!(crc32c(&data[skip..]), ::crc32c::crc32c(&data[skip..]));
        }
    }
}
