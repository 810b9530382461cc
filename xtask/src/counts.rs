//! Test counts read from the runners' own output, for xtask's last line.
//!
//! `cargo xtask test` ends with `xtask: N passed, M failed`, which CI reads;
//! N and M count tests, not xtask's steps. The runners already print them:
//! nextest one `Summary [...] T tests run: P passed, F failed, S skipped`
//! line per run, `cargo test` one `test result: ok. P passed; F failed; ...`
//! line per test binary (doc tests included). The lines are passed through
//! to the terminal unchanged while they are read here.
//!
//! Each step reads one runner's lines only: nextest replays a failed test's
//! output, libtest's `test result:` line included, and counting that too
//! would count the failure twice.

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Which runner's summary lines a step counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Runner {
    /// `cargo nextest run`: one `Summary` line.
    Nextest,
    /// `cargo test`: one `test result:` line per test binary.
    Libtest,
}

/// Tests that passed and failed in one step.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) passed: u64,
    pub(crate) failed: u64,
    /// Whether any summary line was seen (a build failure prints none).
    pub(crate) seen: bool,
}

impl Counts {
    /// Adds what `line` reports, if it is `runner`'s summary.
    pub(crate) fn read_line(&mut self, runner: Runner, line: &str) {
        let line = line.trim();
        let (items, separator) = if runner == Runner::Libtest
            && let Some(rest) = line.strip_prefix("test result: ")
        {
            // "ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s"
            match rest.split_once(". ") {
                Some((_, items)) => (items, ';'),
                None => return,
            }
        } else if runner == Runner::Nextest && line.starts_with("Summary [") {
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
pub(crate) async fn tee<R>(from: R, to: Target, runner: Runner, counts: Arc<Mutex<Counts>>)
where
    R: AsyncRead + Unpin,
{
    let mut lines = BufReader::new(from).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .read_line(runner, &line);
        let _ = match to {
            Target::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Target::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(runner: Runner, lines: &[&str]) -> Counts {
        let mut counts = Counts::default();
        for line in lines {
            counts.read_line(runner, line);
        }
        counts
    }

    /// A nextest run with one failed test: the failure's replayed output
    /// holds a libtest summary, which must not count again.
    const NEXTEST: &[&str] = &[
        "        PASS [   0.010s] test-support port::tests::a_dead_port",
        "    test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 11 filtered out",
        "     Summary [  12.345s] 10 tests run: 7 passed (1 slow), 2 failed, 1 timed out, 3 skipped",
        "        FAIL [   9.288s] (101/283) backend-memcached::failure rehash",
    ];
    const LIBTEST: &[&str] = &[
        "test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
        "test passed_and_failed ... ok",
        "test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s",
    ];

    #[test]
    fn each_runner_counts_its_own_summaries_once() {
        let nextest = count(Runner::Nextest, NEXTEST);
        let libtest = count(Runner::Libtest, LIBTEST);
        assert_eq!((nextest.passed, nextest.failed, nextest.seen), (7, 3, true));
        assert_eq!((libtest.passed, libtest.failed, libtest.seen), (6, 2, true));
        let mut total = nextest;
        total.add(libtest);
        assert_eq!((total.passed, total.failed), (13, 5));
        let none = count(Runner::Libtest, &["error[E0425]: cannot find value"]);
        assert_eq!(none, Counts::default());
        let single = count(
            Runner::Nextest,
            &["     Summary [   0.005s] 1 test run: 1 passed, 0 skipped"],
        );
        assert_eq!((single.passed, single.failed), (1, 0));
    }
}
