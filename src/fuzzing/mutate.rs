//! The short fuzz run of `scripts/test.sh` (issue 14 item 4): every target of
//! `fuzzing` gets a few thousand inputs made by mutating its kept corpus, in the
//! `cargo test --release` build. Without coverage feedback it finds less than a libFuzzer
//! run of the same length (`scripts/fuzz.sh`, which needs a ten-minute sanitized build
//! that the CI budget has no room for), but it runs every target on new inputs each time
//! the tests run, and it fails the same way: a panic, with the input kept.
//!
//! The seed is the time unless `SLUICE_FUZZ_SEED` names one; it is printed, so a failure
//! replays with that seed. A failing input is written to `fuzz/artifacts/<target>/`, from
//! where `cargo fuzz run <target> <file>` (or adding it to the corpus) reproduces it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// xorshift64*: enough randomness to pick mutations, and reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Values that sit on the edges decoders check: lengths, counts, signs.
const INTERESTING: [i64; 12] = [
    0,
    1,
    -1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    -0x8000_0000,
    0x7fff_ffff_ffff_ffff,
    16,
];

/// `input` changed by one to four mutations, as libFuzzer's default mutators do: bits
/// flipped, bytes set, edge values written at any width and byte order, ranges inserted,
/// erased or copied, the tail cut, or a splice with `other`.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..=rng.below(4) {
        mutate_once(rng, &mut data, other);
    }
    data
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    if data.is_empty() {
        data.push(rng.next() as u8);
        return;
    }
    let at = rng.below(data.len());
    match rng.below(8) {
        0 => data[at] ^= 1 << rng.below(8),
        1 => data[at] = rng.next() as u8,
        2 => write_interesting(rng, data, at),
        3 => {
            let bytes: Vec<u8> = (0..=rng.below(16)).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        4 => {
            let end = (at + 1 + rng.below(32)).min(data.len());
            data.drain(at..end);
        }
        5 => {
            let end = (at + 1 + rng.below(64)).min(data.len());
            let copy = data[at..end].to_vec();
            let to = rng.below(data.len());
            data.splice(to..to, copy);
        }
        6 => data.truncate(at),
        _ if other.is_empty() => data.reverse(),
        _ => {
            let from = rng.below(other.len());
            data.truncate(at);
            data.extend_from_slice(&other[from..]);
        }
    }
}

fn write_interesting(rng: &mut Rng, data: &mut [u8], at: usize) {
    let value = INTERESTING[rng.below(INTERESTING.len())];
    let width = [1, 2, 4, 8][rng.below(4)];
    let bytes = if rng.below(2) == 0 {
        value.to_be_bytes()[8 - width..].to_vec()
    } else {
        value.to_le_bytes()[..width].to_vec()
    };
    for (i, b) in bytes.into_iter().enumerate() {
        if let Some(slot) = data.get_mut(at + i) {
            *slot = b;
        }
    }
}

/// `runs` mutated inputs through `target`, from the kept inputs of `corpus`. A panic is
/// caught, its input written under `artifacts`, and reported with the seed.
pub fn run(name: &str, target: fn(&[u8]), corpus: &[Vec<u8>], runs: usize, seed: u64) {
    assert!(!corpus.is_empty(), "{name}: no kept inputs to mutate");
    let mut rng = Rng::new(seed);
    for i in 0..runs {
        let input = &corpus[rng.below(corpus.len())];
        let other = &corpus[rng.below(corpus.len())];
        let data = mutate(&mut rng, input, other);
        if catch_unwind(AssertUnwindSafe(|| target(&data))).is_err() {
            let kept = keep(name, seed, i, &data);
            panic!("{name}: mutated input {i} of seed {seed} panicked; kept in {kept}");
        }
    }
}

fn keep(name: &str, seed: u64, i: usize, data: &[u8]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/artifacts")
        .join(name);
    let path = dir.join(format!("mutation-{seed}-{i}"));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, data)) {
        Ok(()) => path.display().to_string(),
        Err(e) => format!("(not written: {e}) {data:?}"),
    }
}

/// The seed of this run: `SLUICE_FUZZ_SEED`, else the clock.
pub fn seed() -> u64 {
    match std::env::var("SLUICE_FUZZ_SEED") {
        Ok(s) => s.parse().expect("SLUICE_FUZZ_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    }
}

// The whole module is compiled for tests only, so its own tests sit at its top level.
#[test]
fn a_seed_gives_the_same_mutations_and_they_change_the_input() {
    let input = b"a kept input of some length".to_vec();
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    let mut changed = 0;
    for _ in 0..100 {
        let m = mutate(&mut a, &input, b"other");
        assert_eq!(m, mutate(&mut b, &input, b"other"));
        changed += usize::from(m != input);
    }
    assert!(
        changed > 90,
        "only {changed} of 100 mutations changed the input"
    );
}

#[test]
fn a_panicking_target_fails_the_run_and_keeps_its_input() {
    fn picky(data: &[u8]) {
        assert!(!data.contains(&0xff), "0xff");
    }
    let corpus = vec![b"0123456789".to_vec()];
    let caught = catch_unwind(|| run("mutate_selftest", picky, &corpus, 10_000, 3));
    let message = caught.expect_err("some mutation writes 0xff");
    let text = message.downcast_ref::<String>().expect("a message");
    let kept = text.rsplit("kept in ").next().expect("the path");
    assert!(std::fs::read(kept).expect("kept").contains(&0xff));
    let _ = std::fs::remove_dir_all(Path::new(kept).parent().expect("dir"));
}
