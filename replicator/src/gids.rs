//! Which feed lines were lost, told from lines that merely came late.
//!
//! memcached numbers its log entries (`gid=`) from one counter, but each
//! worker thread buffers its own entries and the logger thread drains the
//! buffers one after the other, so a watcher sees the numbers out of order
//! (a raw watch showed `133,132,131,135,134`). Comparing each number with
//! the previous line's takes every such swap for a loss. A [`GidWindow`]
//! instead remembers which of the last [`WINDOW`] numbers it has seen, and
//! counts a number as lost only when the window slides past it unseen: a
//! line that arrives up to `WINDOW` numbers late is never a loss.
//!
//! The window is a hint, not the only signal: memcached's own
//! `log_watcher_skipped` / `log_worker_dropped` counters (polled by the
//! feed) and its skip notices say so too. Another client watching other
//! kinds of events (`watch fetchers`) takes numbers from the same counter;
//! those show here as holes, so a link fed by such a server compares more
//! often than needed, never less.

/// Numbers remembered behind the highest one seen; larger than what the
/// worker buffers can hold between two drains (64 KiB per worker, lines of
/// about 150 bytes, a few workers).
pub(crate) const WINDOW: u64 = 1 << 16;

const WORDS: usize = (WINDOW / 64) as usize;

/// The seen numbers in `[base, base + WINDOW)`, as a ring of bits.
pub(crate) struct GidWindow {
    /// The lowest number not yet seen (everything below was seen or
    /// counted lost); `None` before the first line.
    base: Option<u64>,
    bits: Box<[u64; WORDS]>,
}

impl GidWindow {
    /// An empty window (a new feed connection: numbers before its first
    /// line are not ours to miss).
    pub(crate) fn new() -> GidWindow {
        GidWindow {
            base: None,
            bits: Box::new([0; WORDS]),
        }
    }

    /// Records `gid`; returns how many numbers the window gave up on
    /// (lost) to make room for it. A number seen twice, or older than the
    /// window, changes nothing.
    pub(crate) fn see(&mut self, gid: u64) -> u64 {
        let Some(base) = self.base else {
            self.base = Some(gid.saturating_add(1));
            return 0;
        };
        if gid < base {
            return 0;
        }
        let mut base = base;
        let mut lost = 0;
        if gid >= base.saturating_add(WINDOW) {
            let new_base = gid - WINDOW + 1;
            if new_base - base >= WINDOW {
                // Slid past the whole window: what it held is gone at once.
                let seen: u64 = self.bits.iter().map(|w| u64::from(w.count_ones())).sum();
                lost = (new_base - base) - seen;
                self.bits.fill(0);
                base = new_base;
            } else {
                while base < new_base {
                    if !self.take(base) {
                        lost += 1;
                    }
                    base += 1;
                }
            }
        }
        self.set(gid);
        // Everything contiguous from the base is settled.
        while self.take(base) {
            base += 1;
        }
        self.base = Some(base);
        lost
    }

    fn slot(gid: u64) -> (usize, u64) {
        let i = gid % WINDOW;
        ((i / 64) as usize, 1 << (i % 64))
    }

    fn set(&mut self, gid: u64) {
        let (w, b) = Self::slot(gid);
        self.bits[w] |= b;
    }

    /// Clears `gid`'s bit; true if it was set.
    fn take(&mut self, gid: u64) -> bool {
        let (w, b) = Self::slot(gid);
        let was = self.bits[w] & b != 0;
        self.bits[w] &= !b;
        was
    }
}

/// The `gid=` of any watch line, whatever its event type (every line takes
/// a number, including those the feed otherwise ignores).
pub(crate) fn line_gid(line: &[u8]) -> Option<u64> {
    line.split(|&b| b == b' ')
        .find_map(|f| f.strip_prefix(b"gid="))
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(gids: impl IntoIterator<Item = u64>) -> u64 {
        let mut w = GidWindow::new();
        gids.into_iter().map(|g| w.see(g)).sum()
    }

    #[test]
    fn reordered_lines_are_not_losses() {
        assert_eq!(feed([130, 133, 132, 131, 135, 134, 136]), 0);
        // Four writers' lines interleaved by whole buffers, far apart.
        let mut gids: Vec<u64> = Vec::new();
        for chunk in (1..=4000u64).collect::<Vec<_>>().chunks(500).rev() {
            gids.extend(chunk);
        }
        assert_eq!(feed(gids), 0);
    }

    #[test]
    fn duplicates_and_old_numbers_change_nothing() {
        assert_eq!(feed([5, 6, 6, 7, 5, 1, 7, 8]), 0);
    }

    #[test]
    fn a_missing_number_is_lost_once_the_window_passes_it() {
        let mut w = GidWindow::new();
        assert_eq!(w.see(1), 0);
        // 2 never comes; nothing is said while it may still be late.
        let mut lost = 0;
        for g in 3..(2 + WINDOW) {
            lost += w.see(g);
        }
        assert_eq!(lost, 0);
        assert_eq!(w.see(2 + WINDOW), 1);
        // Counted once only.
        assert_eq!(w.see(3 + WINDOW), 0);
        assert_eq!(w.see(2), 0);
    }

    #[test]
    fn a_jump_past_the_whole_window_counts_every_unseen_number() {
        let mut w = GidWindow::new();
        w.see(10);
        w.see(12);
        // 11 and 13..=10+3*WINDOW are unseen, 12 was seen.
        let far = 10 + 3 * WINDOW;
        assert_eq!(w.see(far + WINDOW - 1), 3 * WINDOW - 2);
        // The new window starts right after the jump: the number it slides
        // past next was never seen either.
        assert_eq!(w.see(far + WINDOW), 1);
        assert_eq!(w.see(11), 0);
    }

    #[test]
    fn gid_is_read_from_any_line() {
        assert_eq!(
            line_gid(b"ts=1.2 gid=77 type=item_get key=k status=found"),
            Some(77)
        );
        assert_eq!(line_gid(b"ts=1.2 type=item_get"), None);
        assert_eq!(line_gid(b"gid=x"), None);
    }
}
