//! `sessionctl reseal`: every key a scan lists under the key prefix, given
//! to `Sessions::reseal` (conditional writes; the library decides what is a
//! session and what is current), with a progress line per page.

use std::time::Instant;

use session_core::{ResealOutcome, Sessions};

use crate::Found;

/// What a run did, printed as one JSON object at the end.
#[derive(Default)]
struct Tally {
    scanned: u64,
    resealed: u64,
    current: u64,
    not_a_session: u64,
    gone: u64,
    refused: u64,
}

impl Tally {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "scanned": self.scanned,
            "resealed": self.resealed,
            "current": self.current,
            "not_a_session": self.not_a_session,
            "gone": self.gone,
            "refused": self.refused,
        })
    }
}

/// Scans the principal store page by page and reseals each key.
pub(crate) async fn run(sessions: &Sessions, page_size: usize) -> anyhow::Result<Found> {
    let started = Instant::now();
    let prefix = sessions.config().key_prefix.clone();
    let mut tally = Tally::default();
    let mut cursor = None;
    loop {
        let page = sessions
            .servers()
            .scan(&prefix, cursor.as_ref(), page_size.max(1))
            .await
            .map_err(|e| anyhow::Error::new(e).context("scan"))?;
        for key in &page.keys {
            tally.scanned += 1;
            match sessions
                .reseal(key)
                .await
                .map_err(|e| anyhow::Error::new(e).context(format!("reseal {key}")))?
            {
                ResealOutcome::Resealed => tally.resealed += 1,
                ResealOutcome::Current => tally.current += 1,
                ResealOutcome::Gone => tally.gone += 1,
                ResealOutcome::Refused(problem) => {
                    tally.refused += 1;
                    eprintln!("sessionctl: reseal: {key}: {problem}");
                }
                // NotASession, and any outcome a newer library adds.
                _ => tally.not_a_session += 1,
            }
        }
        eprintln!(
            "sessionctl: reseal: {} keys scanned, {} resealed, {} current, {} refused ({:.1} s)",
            tally.scanned,
            tally.resealed,
            tally.current,
            tally.refused,
            started.elapsed().as_secs_f64()
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    println!("{}", tally.json());
    anyhow::ensure!(
        tally.refused == 0,
        "{} value(s) were refused by the seal and left as they are (plain values need \
         --accept-unsealed; others need the key they were sealed under)",
        tally.refused
    );
    Ok(Found::Yes)
}
