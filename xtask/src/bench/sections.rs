//! The bench targets' JSON lines (format in the parent module's docs),
//! gathered per section and run, then summarised: medians over runs, and
//! ratios to baselines of the same run.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// One measurement line of one run.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub ops: f64,
    pub errors: f64,
    pub ops_per_s: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub first_error: Option<String>,
    pub baseline: Option<String>,
    pub target: Option<f64>,
}

/// One section (bench target) over all runs.
#[derive(Debug)]
pub struct Section {
    pub bench: String,
    pub title: String,
    /// Measurement lines, per run (index = run - 1).
    pub runs: Vec<Vec<Line>>,
    /// The bench process's own peak RSS lines: (name, KiB), every run.
    pub own_rss: Vec<(String, f64)>,
    /// Each daemon's peak RSS during this section (KiB), every run; the
    /// flag says whether the peak was reset before (else: since start).
    pub daemon_rss: Vec<(String, Option<f64>, bool)>,
}

/// A summarised row: medians over runs.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub ops_per_s: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    pub errors: f64,
    pub ops: f64,
    pub first_error: Option<String>,
    pub baseline: Option<String>,
    /// Median of the per-run ratios ops_per_s / baseline's ops_per_s.
    pub ratio: Option<f64>,
    /// Every run's ratio, in run order.
    pub ratios: Vec<f64>,
    pub target: Option<f64>,
}

/// Everything measured.
#[derive(Debug)]
pub struct Results {
    pub sections: Vec<Section>,
}

fn parse(v: &Value, line: &str) -> Result<Option<Line>> {
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .with_context(|| format!("no name in {line}"))?
        .to_owned();
    if v.get("peak_rss_kib").is_some() {
        return Ok(None);
    }
    let num = |k: &str| {
        v.get(k)
            .and_then(Value::as_f64)
            .with_context(|| format!("no number {k} in {line}"))
    };
    Ok(Some(Line {
        name,
        ops: num("ops")?,
        errors: num("errors")?,
        ops_per_s: num("ops_per_s")?,
        p50_us: v.get("p50_us").and_then(Value::as_f64),
        p99_us: v.get("p99_us").and_then(Value::as_f64),
        first_error: v
            .get("first_error")
            .and_then(Value::as_str)
            .map(str::to_owned),
        baseline: v.get("baseline").and_then(Value::as_str).map(str::to_owned),
        target: v.get("target").and_then(Value::as_f64),
    }))
}

impl Results {
    pub fn new() -> Results {
        Results {
            sections: Vec::new(),
        }
    }

    /// Adds one run of one section from its result file's `text`.
    pub fn add(
        &mut self,
        bench: &str,
        title: &str,
        run: usize,
        text: &str,
        daemons: Vec<(String, Option<f64>)>,
        reset: bool,
    ) -> Result<()> {
        let index = match self.sections.iter().position(|s| s.bench == bench) {
            Some(i) => i,
            None => {
                self.sections.push(Section {
                    bench: bench.to_owned(),
                    title: title.to_owned(),
                    runs: Vec::new(),
                    own_rss: Vec::new(),
                    daemon_rss: Vec::new(),
                });
                self.sections.len() - 1
            }
        };
        let section = &mut self.sections[index];
        let mut lines = Vec::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("{bench}: not a JSON line: {line}"))?;
            match parse(&v, line).with_context(|| format!("bench {bench}"))? {
                Some(l) => lines.push(l),
                None => {
                    let name = v.get("name").and_then(Value::as_str).unwrap_or("process");
                    if let Some(kib) = v.get("peak_rss_kib").and_then(Value::as_f64) {
                        section.own_rss.push((name.to_owned(), kib));
                    }
                }
            }
        }
        if lines.is_empty() {
            bail!("bench {bench} wrote no measurement (run {run})");
        }
        section.runs.push(lines);
        section
            .daemon_rss
            .extend(daemons.into_iter().map(|(d, kib)| (d, kib, reset)));
        Ok(())
    }

    /// `name`'s ops/s in run `run` (0-based): this section first, then any.
    fn ops_in_run(&self, section: &Section, run: usize, name: &str) -> Option<f64> {
        let find = |s: &Section| {
            s.runs
                .get(run)
                .and_then(|lines| lines.iter().find(|l| l.name == name))
                .map(|l| l.ops_per_s)
        };
        find(section).or_else(|| self.sections.iter().find_map(find))
    }

    /// A section's rows, in the order of its first run, summarised.
    pub fn rows(&self, section: &Section) -> Vec<Row> {
        let Some(first) = section.runs.first() else {
            return Vec::new();
        };
        first
            .iter()
            .map(|l| {
                let all: Vec<&Line> = section
                    .runs
                    .iter()
                    .filter_map(|lines| lines.iter().find(|x| x.name == l.name))
                    .collect();
                let med = |f: &dyn Fn(&Line) -> Option<f64>| {
                    let v: Vec<f64> = all.iter().filter_map(|x| f(x)).collect();
                    (!v.is_empty()).then(|| median(&v))
                };
                let ratios: Vec<f64> = match &l.baseline {
                    None => Vec::new(),
                    Some(b) => (0..section.runs.len())
                        .filter_map(|run| {
                            let subject = section.runs[run].iter().find(|x| x.name == l.name)?;
                            let base = self.ops_in_run(section, run, b)?;
                            (base > 0.0).then(|| subject.ops_per_s / base)
                        })
                        .collect(),
                };
                Row {
                    name: l.name.clone(),
                    ops_per_s: med(&|x| Some(x.ops_per_s)).unwrap_or(0.0),
                    p50_us: med(&|x| x.p50_us),
                    p99_us: med(&|x| x.p99_us),
                    errors: all.iter().map(|x| x.errors).sum(),
                    ops: all.iter().map(|x| x.ops).sum(),
                    first_error: all.iter().find_map(|x| x.first_error.clone()),
                    baseline: l.baseline.clone(),
                    ratio: (!ratios.is_empty()).then(|| median(&ratios)),
                    ratios,
                    target: l.target,
                }
            })
            .collect()
    }

    /// A row by name in any section.
    pub fn find(&self, name: &str) -> Option<Row> {
        self.sections
            .iter()
            .find_map(|s| self.rows(s).into_iter().find(|r| r.name == name))
    }

    /// Fails when a measurement reported errors or made no operation.
    pub fn check(&self) -> Result<()> {
        let mut problems = Vec::new();
        for section in &self.sections {
            for row in self.rows(section) {
                if row.errors > 0.0 || row.ops == 0.0 {
                    problems.push(format!(
                        "{}: {}: {} errors of {} ops (first: {})",
                        section.bench,
                        row.name,
                        row.errors,
                        row.ops,
                        row.first_error.as_deref().unwrap_or("none")
                    ));
                }
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        bail!("benchmark operations failed:\n  {}", problems.join("\n  "))
    }
}

/// The median (upper median for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
