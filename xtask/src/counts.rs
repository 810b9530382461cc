//! Test counts read from the runners' own output, for xtask's last line.
//!
//! `cargo xtask test` ends with `xtask: N passed, M failed`, which CI reads;
//! N and M count tests, not xtask's steps. The runners already print them:
//! nextest one `Summary [...] T tests run: P passed, F failed, S skipped`
//! line per run, `cargo test` one `test result: ok. P passed; F failed; ...`
//! line per test binary (doc tests included). The lines are passed through
//! to the terminal unchanged while they are read here.

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Tests that passed and failed in one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    /// Whether any summary line was seen (a build failure prints none).
    pub(crate) seen: bool,
}

impl Counts {
    /// Adds what `line` reports, if it is a nextest or libtest summary.
    pub(crate) fn read_line(&mut self, line: &str) {
        let line = line.trim();
        let (items, separator) = if let Some(rest) = line.strip_prefix("test result: ") {
            // "ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s"
            match rest.split_once(". ") {
                Some((_, items)) => (items, ';'),
                None => return,
            }
        } else if line.starts_with("Summary [") {
            // "Summary [   1.2s] 10 tests run: 8 passed (1 slow), 1 failed, 1 timed out, 0 skipped"
            match line.split_once(" run: ") {
                Some((_, items)) => (items, ','),
                None => return,
            }
        } else {
            return;
        };
        self.seen = true;
        for item in items.split(separator) {
            let mut words = item.split_whitespace();
            let Some(number) = words.next().and_then(|n| n.parse::<u64>().ok()) else {
                continue;
            };
            match words.next() {
                Some("passed") => self.passed += number,
                // A timed-out test failed too; nextest counts it apart.
                Some("failed") | Some("timed") => self.failed += number,
                _ => {}
            }
        }
    }

    pub(crate) fn add(&mut self, other: Counts) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.seen |= other.seen;
    }
}

/// Where [`tee`] writes what it reads.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    Stdout,
    Stderr,
}

/// Copies `from` to our own stdout or stderr line by line, adding summary
/// lines to `counts`. (A line written to a terminal or a CI log does not
/// block for long; std's locked handles keep lines from interleaving.)
pub(crate) async fn tee<R>(from: R, to: Target, counts: Arc<Mutex<Counts>>)
where
    R: AsyncRead + Unpin,
{
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read_line(&line);
        let _ = match to {
            Target::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Target::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(lines: &[&str]) -> Counts {
        let mut counts = Counts::default();
        for line in lines {
            counts.read_line(line);
        }
        counts
    }

    #[test]
    fn nextest_and_libtest_summaries_are_counted() {
        let counts = count(&[
            "        PASS [   0.010s] test-support port::tests::a_dead_port",
            "     Summary [  12.345s] 10 tests run: 7 passed (1 slow), 2 failed, 1 timed out, 3 skipped",
            "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
            "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s",
            "test passed_and_failed ... ok",
        ]);
        assert_eq!(
            counts,
            Counts {
                passed: 13,
                failed: 5,
                seen: true
            }
        );
        assert_eq!(
            count(&["error[E0425]: cannot find value"]),
            Counts::default()
        );
        let single = count(&["     Summary [   0.005s] 1 test run: 1 passed, 0 skipped"]);
        assert_eq!((single.passed, single.failed), (1, 0));
    }
}
