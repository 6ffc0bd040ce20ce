//! See src/fuzzing.rs, `state_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::state_file(data));
