//! See src/fuzzing.rs, `partition_dir`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::partition_dir(data));
