//! Where log lines go: stderr, through a writer that can never take the broker down.
//!
//! tracing-subscriber writes each event with `write_all`; when that fails it reports the
//! failure with `eprintln!`, which panics when stderr itself is the thing that fails (a
//! full disk under a redirected stderr, a closed pipe), and under `panic = "abort"` a
//! panic ends the process. `DroppingStderr` swallows every write error instead: the line
//! is dropped and counted (`sluice_log_lines_dropped_total`), the broker carries on.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};

/// Log lines (events) that could not be written, process-wide since start.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped because the sink failed.
pub fn dropped_lines() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// A `MakeWriter` for tracing-subscriber: every event is one `write_all` to stderr,
/// whose failure is counted and never returned.
#[derive(Clone, Copy, Debug, Default)]
pub struct DroppingStderr;

/// The writer of one event.
pub struct LineWriter {
    failed: bool,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if !self.failed && io::stderr().lock().write_all(buf).is_err() {
            self.failed = true;
        }
        // Claim the bytes were written: an error here would reach tracing-subscriber's
        // `eprintln!` fallback.
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().lock().flush();
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if self.failed {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DroppingStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { failed: false }
    }
}

/// Writes one line to stderr (for the few messages printed outside tracing), counting
/// it as dropped if stderr fails; never panics, unlike `eprintln!`.
pub fn print_line(line: &str) {
    let mut w = LineWriter { failed: false };
    let _ = writeln!(w, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_write_is_counted_not_returned() {
        let before = dropped_lines();
        let mut w = LineWriter { failed: true };
        assert_eq!(w.write(b"line\n").unwrap(), 5);
        drop(w);
        assert_eq!(dropped_lines(), before + 1);
    }
}
