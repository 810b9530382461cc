//! `target/soak/report.md` and `report.json`: requests by kind, errors by
//! class, the faults, each invariant's verdict with its first
//! counterexamples, and the plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::checker::{Parsed, Verdict};
use super::history::Outcome;

/// Writes both reports into `dir`; returns the markdown.
pub(crate) fn write(dir: &Path, parsed: &Parsed, verdicts: &[Verdict]) -> anyhow::Result<String> {
    let ops = &parsed.ops;
    let mut by_kind: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for op in ops {
        let kind = if op.client == "sweep" {
            "sweep read".to_owned()
        } else {
            format!("{} {}", op.client.split('-').next().unwrap_or(""), op.op)
        };
        let slot = match op.outcome {
            Outcome::Ok => 0,
            Outcome::NotFound => 1,
            Outcome::Error => 2,
        };
        by_kind.entry(kind).or_default()[slot] += 1;
        if op.outcome == Outcome::Error {
            let class = format!(
                "{}{}",
                op.class.as_deref().unwrap_or("none"),
                op.delivery
                    .as_deref()
                    .map(|d| format!(" (delivery {d})"))
                    .unwrap_or_default()
            );
            *errors.entry(class).or_default() += 1;
        }
    }
    let points = super::plot::per_second(
        &ops.iter()
            .filter(|o| o.start_ms <= parsed.meta.duration_ms)
            .cloned()
            .collect::<Vec<_>>(),
        parsed.meta.duration_ms,
    );
    let plot = dir.join("soak.svg");
    super::plot::draw(&plot, &points, &parsed.faults)?;
    let passed = verdicts.iter().all(Verdict::passed);

    let m = &parsed.meta;
    let mut md = String::new();
    let _ = writeln!(md, "# Soak report\n");
    let _ = writeln!(
        md,
        "Seed {}, {} requests/s for {:.0} s; promised delays: copy {:.0} ms, after a heal {:.0} ms; error bound {:.0} ms. **{}**\n",
        m.seed,
        m.rate,
        m.duration_ms / 1000.0,
        m.copy_delay_ms,
        m.heal_delay_ms,
        m.error_bound_ms,
        if passed {
            "All invariants held."
        } else {
            "Some invariants FAILED."
        }
    );
    let _ = writeln!(
        md,
        "## Invariants\n\n| invariant | verdict | checked | excused | failed |\n|---|---|---|---|---|"
    );
    for v in verdicts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            v.name,
            if v.passed() { "pass" } else { "FAIL" },
            v.checked,
            v.excused,
            v.failed
        );
    }
    for v in verdicts {
        let _ = writeln!(md, "\n### {}\n\n{}\n", v.name, v.statement);
        for n in &v.notes {
            let _ = writeln!(md, "- {n}");
        }
        if v.checked == 0 {
            let _ = writeln!(
                md,
                "- nothing was checked: the run is too short or the load missed it"
            );
        }
        for e in &v.examples {
            let _ = writeln!(md, "- counterexample: {e}");
        }
    }
    let _ = writeln!(
        md,
        "\n## Requests\n\n| kind | ok | not found | error |\n|---|---|---|---|"
    );
    for (k, [ok, nf, err]) in &by_kind {
        let _ = writeln!(md, "| {k} | {ok} | {nf} | {err} |");
    }
    let _ = writeln!(md, "\n## Errors by class\n\n| class | count |\n|---|---|");
    for (c, n) in &errors {
        let _ = writeln!(md, "| {c} | {n} |");
    }
    let _ = writeln!(
        md,
        "\n## Faults\n\n| # | kind | target | at (s) | healed after (s) | error |\n|---|---|---|---|---|---|"
    );
    for f in &parsed.faults {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {} |",
            f.id,
            f.kind,
            f.target,
            f.start_ms / 1000.0,
            (f.end_ms - f.start_ms) / 1000.0,
            f.error.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(
        md,
        "\n## Over time\n\n![ops/s and p99 over time, faults shaded](soak.svg)"
    );
    std::fs::write(dir.join("report.md"), &md).context("writing report.md")?;

    let report = json!({
        "seed": m.seed,
        "rate": m.rate,
        "duration_ms": m.duration_ms,
        "copy_delay_ms": m.copy_delay_ms,
        "heal_delay_ms": m.heal_delay_ms,
        "error_bound_ms": m.error_bound_ms,
        "passed": passed,
        "invariants": verdicts.iter().map(|v| json!({
            "name": v.name,
            "statement": v.statement,
            "passed": v.passed(),
            "checked": v.checked,
            "excused": v.excused,
            "failed": v.failed,
            "counterexamples": v.examples,
            "notes": v.notes,
        })).collect::<Vec<_>>(),
        "requests": by_kind.iter().map(|(k, [ok, nf, err])| (k.clone(), json!({"ok": ok, "not_found": nf, "error": err}))).collect::<serde_json::Map<_, _>>(),
        "errors": errors,
        "faults": parsed.faults,
        "per_second": points.iter().map(|(s, n, p99)| json!({"second": s, "answered": n, "p99_ms": p99})).collect::<Vec<_>>(),
    });
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )
    .context("writing report.json")?;
    Ok(md)
}
