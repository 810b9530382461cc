//! `cargo xtask test`: the one test command of the README and of CI.
//!
//! First the machine is checked for everything the selected tests need
//! (`prereqs`); when something is missing, one message lists it all with
//! the commands that install it, and nothing is built. Then the steps, each
//! announced as `==> [n/N] <step>` and timed:
//! fmt and clippy (skipped with `--quick`), three memcached and one Redis
//! started through test-support, the workspace's tests with the servers'
//! addresses in the environment (nextest when installed, then the doc tests;
//! `cargo test` otherwise), and the servers stopped again, also after a
//! failure or Ctrl-C. Every step runs even when an earlier one failed, so one
//! run reports everything.
//!
//! Tests of one provider run only on servers of that provider; the others
//! are left out, each printed with the reason (`scope.rs`). The last line is
//! `xtask: N passed, M failed`, counting tests (`counts.rs`); a step that
//! failed without running tests (fmt, clippy, a build error, the servers)
//! counts as one failure, so M is 0 only when everything passed.

use std::{
    process::{ExitCode, Stdio},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use anyhow::Context;
use test_support::{
    MEMCACHED_ENV, PROVIDER_ENV, Provider, ProviderKind, REDIS_CLUSTER_ENV, REDIS_ENV,
    RedisCluster, Server,
};
use tokio::{process::Command, sync::watch};

use crate::{
    cargo,
    counts::{self, Counts},
    project_root, scope,
};

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where servers come from; default: $MEMORYCACHED_PROVIDER, else auto
    /// (docker when a daemon answers, local processes otherwise).
    #[arg(long, value_enum)]
    provider: Option<ProviderArg>,
    /// Skip fmt and clippy (for a second pass that only re-runs the tests).
    #[arg(long)]
    quick: bool,
    /// Run only this package's tests against the shared servers (e.g. your own
    /// backend crate, whose tests call `session_core::conformance_tests!`)
    /// instead of the whole workspace's. Repeatable.
    #[arg(long = "backend", value_name = "PACKAGE")]
    backends: Vec<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ProviderArg {
    Auto,
    Docker,
    Process,
}

/// How many shared memcached servers the tests get.
const MEMCACHED_SERVERS: usize = 3;
/// How long a child gets to exit after it was interrupted before it is killed.
const CHILD_GRACE: Duration = Duration::from_secs(15);

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    // Before anything is built: a fresh machine would otherwise compile for
    // minutes, then fail one test per missing tool.
    let scope = crate::prereqs::Scope {
        lints: !args.quick,
        packages: &args.backends,
    };
    if let Err(report) = crate::prereqs::check_machine(&scope) {
        eprintln!("{report}");
        return Ok(ExitCode::FAILURE);
    }
    // This command handles signals itself: it still has servers to stop and
    // a summary to print.
    test_support::disable_signal_cleanup();
    let runtime = crate::runtime()?;
    runtime.block_on(run_steps(args))
}

enum Outcome {
    Passed,
    Failed(String),
}

struct Step {
    name: String,
    outcome: Outcome,
    elapsed: Duration,
    /// Tests counted from the step's output; `None` for steps that run none.
    tests: Option<Counts>,
}

/// Numbers, times and records the steps; knows whether Ctrl-C was pressed.
struct Runner {
    total: usize,
    steps: Vec<Step>,
    interrupted: watch::Receiver<Option<i32>>,
}

impl Runner {
    fn begin(&self, name: &str) -> Instant {
        println!("==> [{}/{}] {name}", self.steps.len() + 1, self.total);
        Instant::now()
    }

    fn finish(&mut self, name: &str, started: Instant, outcome: Outcome) {
        self.finish_counted(name, started, outcome, None);
    }

    fn finish_counted(
        &mut self,
        name: &str,
        started: Instant,
        outcome: Outcome,
        tests: Option<Counts>,
    ) {
        let elapsed = started.elapsed();
        match &outcome {
            Outcome::Passed => println!("    ok ({elapsed:.1?})"),
            Outcome::Failed(why) => println!("    FAILED: {why} ({elapsed:.1?})"),
        }
        self.steps.push(Step {
            name: name.to_owned(),
            outcome,
            elapsed,
            tests,
        });
    }

    fn signal(&self) -> Option<i32> {
        *self.interrupted.borrow()
    }

    /// Records a step that was not run, without running anything.
    fn skip(&mut self, name: &str, why: &str) {
        let started = self.begin(name);
        self.finish(name, started, Outcome::Failed(format!("not run: {why}")));
    }

    /// Runs `cargo <args>` in the workspace root with `envs`, as one step.
    async fn cargo(&mut self, args: &[&str], envs: &[(&str, String)]) {
        self.cargo_step(args, envs, false).await;
    }

    /// [`Runner::cargo`] for a step that runs tests: its output is passed
    /// through and its test summaries counted.
    async fn cargo_tests(&mut self, args: &[&str], envs: &[(&str, String)]) {
        self.cargo_step(args, envs, true).await;
    }

    async fn cargo_step(&mut self, args: &[&str], envs: &[(&str, String)], count: bool) {
        let name = format!("cargo {}", args.join(" "));
        if let Some(signal) = self.signal() {
            return self.skip(&name, &format!("interrupted by signal {signal}"));
        }
        let started = self.begin(&name);
        let mut cmd = Command::new(cargo());
        cmd.args(args)
            .current_dir(project_root())
            .stdin(Stdio::null())
            .kill_on_drop(true);
        for (key, value) in envs {
            cmd.env(key, value);
        }
        if count {
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let runner = match args.first() {
            Some(&"nextest") => counts::Runner::Nextest,
            _ => counts::Runner::Libtest,
        };
        let counts = Arc::new(Mutex::new(Counts::default()));
        let outcome = match cmd.spawn() {
            Ok(mut child) => {
                let mut readers = tokio::task::JoinSet::new();
                if let Some(out) = child.stdout.take() {
                    let counts = Arc::clone(&counts);
                    readers.spawn(counts::tee(out, counts::Target::Stdout, runner, counts));
                }
                if let Some(err) = child.stderr.take() {
                    let counts = Arc::clone(&counts);
                    readers.spawn(counts::tee(err, counts::Target::Stderr, runner, counts));
                }
                let outcome = self.wait(child).await;
                // The pipes close when cargo and the test binaries it ran
                // exit; a stray grandchild holding one must not hang xtask.
                if tokio::time::timeout(CHILD_GRACE, readers.join_all())
                    .await
                    .is_err()
                {
                    println!(
                        "    (output still open {CHILD_GRACE:?} after cargo exited; stopped reading it)"
                    );
                }
                outcome
            }
            Err(e) => Outcome::Failed(format!("could not start cargo: {e}")),
        };
        let counts = *counts.lock().unwrap_or_else(PoisonError::into_inner);
        if count && counts.seen {
            println!(
                "    tests: {} passed, {} failed",
                counts.passed, counts.failed
            );
        }
        self.finish_counted(&name, started, outcome, count.then_some(counts));
    }

    /// Waits for `child`; on a signal, passes SIGINT on, waits a grace
    /// period, then kills it.
    async fn wait(&self, mut child: tokio::process::Child) -> Outcome {
        let mut interrupted = self.interrupted.clone();
        tokio::select! {
            status = child.wait() => match status {
                Ok(status) if status.success() => Outcome::Passed,
                Ok(status) => {
                    // Ctrl-C reaches the child too, and it may exit before our
                    // own handler has run: give the handler a moment, so the
                    // next steps see the interruption.
                    if std::os::unix::process::ExitStatusExt::signal(&status).is_some() {
                        let mut late = self.interrupted.clone();
                        let _ = tokio::time::timeout(
                            Duration::from_millis(500),
                            late.wait_for(Option::is_some),
                        )
                        .await;
                    }
                    Outcome::Failed(status.to_string())
                }
                Err(e) => Outcome::Failed(format!("waiting for cargo: {e}")),
            },
            _ = interrupted.wait_for(Option::is_some) => {
                let pid = child
                    .id()
                    .and_then(|id| i32::try_from(id).ok())
                    .and_then(rustix::process::Pid::from_raw);
                if let Some(pid) = pid {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
                }
                if tokio::time::timeout(CHILD_GRACE, child.wait()).await.is_err() {
                    let _ = child.kill().await;
                }
                Outcome::Failed("interrupted".to_owned())
            }
        }
    }
}

async fn has_nextest() -> bool {
    Command::new(cargo())
        .args(["nextest", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Sets the receiver to `Some(signal number)` on SIGINT or SIGTERM.
fn watch_signals() -> anyhow::Result<watch::Receiver<Option<i32>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(None);
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    tokio::spawn(async move {
        let number = tokio::select! {
            _ = int.recv() => 2,
            _ = term.recv() => 15,
        };
        eprintln!("xtask: signal {number}: stopping the current step, then the servers");
        let _ = tx.send(Some(number));
    });
    Ok(rx)
}

/// The shared servers and the environment that tells tests about them.
struct Shared {
    kind: ProviderKind,
    servers: Vec<Server>,
    cluster: RedisCluster,
    env: Vec<(&'static str, String)>,
}

async fn start_servers(kind: ProviderKind) -> anyhow::Result<Shared> {
    let stale = test_support::cleanup_stale().await?;
    if stale.containers + stale.networks > 0 {
        println!(
            "    removed {} stale container(s) and {} stale network(s) of interrupted runs",
            stale.containers, stale.networks
        );
    }
    let provider = Provider::new(kind).await?;
    println!("    provider: {}", provider.description());
    let (a, b, c, redis, cluster) = tokio::join!(
        provider.memcached(),
        provider.memcached(),
        provider.memcached(),
        provider.redis(),
        provider.redis_cluster()
    );
    let memcached: [Server; MEMCACHED_SERVERS] = [a?, b?, c?];
    let redis = redis?;
    let cluster = cluster?;
    let list = |servers: &[Server]| {
        servers
            .iter()
            .map(Server::addr)
            .collect::<Vec<_>>()
            .join(",")
    };
    let image = |server: &Server| {
        server
            .image()
            .map(|i| format!(" (image {i})"))
            .unwrap_or_default()
    };
    println!(
        "    {MEMCACHED_ENV}={}{}",
        list(&memcached),
        image(&memcached[0])
    );
    println!("    {REDIS_ENV}={}{}", redis.addr(), image(&redis));
    println!("    {REDIS_CLUSTER_ENV}={}", list(cluster.nodes()));
    let env = vec![
        (MEMCACHED_ENV, list(&memcached)),
        (REDIS_ENV, redis.addr()),
        (REDIS_CLUSTER_ENV, list(cluster.nodes())),
        (PROVIDER_ENV, provider.kind().as_str().to_owned()),
    ];
    let mut servers = Vec::from(memcached);
    servers.push(redis);
    Ok(Shared {
        kind: provider.kind(),
        servers,
        cluster,
        env,
    })
}

async fn run_steps(args: Args) -> anyhow::Result<ExitCode> {
    let kind = match args.provider {
        Some(ProviderArg::Auto) => ProviderKind::Auto,
        Some(ProviderArg::Docker) => ProviderKind::Docker,
        Some(ProviderArg::Process) => ProviderKind::Process,
        None => match std::env::var(PROVIDER_ENV) {
            Ok(value) => value.parse()?,
            Err(_) => ProviderKind::Auto,
        },
    };
    let nextest = has_nextest().await;
    // A separate doc-test step only with nextest, and only where there are
    // doc tests: `cargo test --doc` fails outright on binaries alone. When
    // unsure, run it, and let its own message tell.
    let doc_tests = nextest && scope::has_library(&args.backends).unwrap_or(true);
    let mut total = 3 + usize::from(doc_tests);
    if !args.quick {
        total += 2;
    }
    let mut runner = Runner {
        total,
        steps: Vec::new(),
        interrupted: watch_signals()?,
    };

    if args.quick {
        println!("xtask: --quick: skipping fmt and clippy");
    } else {
        runner.cargo(&["fmt", "--all", "--", "--check"], &[]).await;
        runner
            .cargo(
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--all-features",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )
            .await;
    }

    let name = format!(
        "start shared servers ({MEMCACHED_SERVERS} memcached + 1 redis + a 3-master redis cluster, \
         provider {kind})"
    );
    let shared = if let Some(signal) = runner.signal() {
        runner.skip(&name, &format!("interrupted by signal {signal}"));
        None
    } else {
        let started = runner.begin(&name);
        let mut interrupted = runner.interrupted.clone();
        let result = tokio::select! {
            result = start_servers(kind) => result,
            _ = interrupted.wait_for(Option::is_some) => Err(anyhow::anyhow!("interrupted")),
        };
        match result {
            Ok(shared) => {
                runner.finish(&name, started, Outcome::Passed);
                Some(shared)
            }
            Err(e) => {
                runner.finish(&name, started, Outcome::Failed(format!("{e:#}")));
                None
            }
        }
    };

    if !args.backends.is_empty() {
        println!("xtask: tests restricted to {}", args.backends.join(", "));
    }
    // Packages and features for the servers' provider; tests of the other
    // provider are left out, and said so here and in the summary.
    let (scope, left_out) = match &shared {
        Some(shared) => match scope::scope(&args.backends, shared.kind) {
            Ok(scope) => (Some(scope.args), scope.left_out),
            Err(e) => {
                let started = runner.begin("select the tests (cargo metadata)");
                let why = Outcome::Failed(format!("{e:#}"));
                runner.finish("select the tests (cargo metadata)", started, why);
                (None, Vec::new())
            }
        },
        None => (None, Vec::new()),
    };
    for line in &left_out {
        println!("xtask: left out: {line}");
    }
    let shown_scope = scope
        .clone()
        .unwrap_or_else(|| vec!["--workspace".to_owned()]);
    let scope_args: Vec<&str> = shown_scope.iter().map(String::as_str).collect();
    let mut test_steps: Vec<Vec<&str>> = Vec::new();
    if nextest {
        println!(
            "xtask: cargo-nextest found: tests run with nextest, doc tests with cargo test --doc"
        );
        test_steps.push([&["nextest", "run"][..], &scope_args, &["--no-fail-fast"]].concat());
        if doc_tests {
            test_steps.push([&["test"][..], &scope_args, &["--doc"]].concat());
        } else {
            println!("xtask: no library among the selected packages, so no doc tests to run");
        }
    } else {
        println!("xtask: cargo-nextest not found: tests (doc tests included) run with cargo test");
        test_steps.push([&["test"][..], &scope_args, &["--no-fail-fast"]].concat());
    }
    for step in &test_steps {
        match (&shared, &scope) {
            (Some(shared), Some(_)) => runner.cargo_tests(step, &shared.env).await,
            (None, _) => runner.skip(
                &format!("cargo {}", step.join(" ")),
                "the shared servers did not start",
            ),
            (Some(_), None) => runner.skip(
                &format!("cargo {}", step.join(" ")),
                "the tests could not be selected",
            ),
        }
    }

    let name = "stop shared servers";
    let started = runner.begin(name);
    if let Some(shared) = shared {
        println!(
            "    stopping {} {} server(s)",
            shared.servers.len() + shared.cluster.nodes().len(),
            shared.kind
        );
        // Dropping a server blocks until its process is reaped or its
        // container removed; tell the runtime this worker is busy.
        tokio::task::block_in_place(move || drop((shared.servers, shared.cluster)));
    }
    runner.finish(name, started, Outcome::Passed);

    println!();
    let mut tests = Counts::default();
    // Steps that failed without a failed test to show for it: each counts as
    // one failure, so that a clippy error or a build failure is never "0 failed".
    let mut failed_steps = Vec::new();
    for step in &runner.steps {
        let status = match &step.outcome {
            Outcome::Passed => "ok",
            Outcome::Failed(_) => "FAILED",
        };
        let counted = match step.tests {
            Some(counts) if counts.seen => {
                tests.add(counts);
                format!("  ({} passed, {} failed)", counts.passed, counts.failed)
            }
            _ => String::new(),
        };
        if matches!(step.outcome, Outcome::Failed(_))
            && step.tests.is_none_or(|counts| counts.failed == 0)
        {
            failed_steps.push(step.name.as_str());
        }
        println!(
            "    {status:<6} {:>8.1?}  {}{counted}",
            step.elapsed, step.name
        );
    }
    for line in &left_out {
        println!("    left out: {line}");
    }
    if !failed_steps.is_empty() {
        println!(
            "    {} failed step(s) counted as one failure each: {}",
            failed_steps.len(),
            failed_steps.join("; ")
        );
    }
    let failed = tests.failed + failed_steps.len() as u64;
    println!("xtask: {} passed, {failed} failed", tests.passed);
    Ok(match runner.signal() {
        Some(signal) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(130)),
        None if failed > 0 => ExitCode::FAILURE,
        None => ExitCode::SUCCESS,
    })
}
