//! See src/fuzzing.rs, `record_batch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::record_batch(data));
