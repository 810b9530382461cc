//! What the two daemons (soap-bridge and replicator) do the same way around
//! their own work, included by both `main.rs` files with `#[path]` (a crate
//! of its own would be a workspace member for a hundred lines): where logs
//! go and whether they are coloured, the one-line error at exit, the
//! `--print-man-page` output and the `--health-probe` client the OCI images'
//! HEALTHCHECK runs.

use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// `--log-output`: the stream logs are written to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogOutput {
    /// Standard output (what container runtimes collect by default).
    Stdout,
    /// Standard error (the default; systemd's journal takes both).
    #[default]
    Stderr,
}

/// The flags both daemons take around their own work (flattened into their
/// clap `Args`).
#[derive(Debug, Clone, clap::Args)]
pub struct Flags {
    /// Where logs go: stderr (the default) or stdout (containers). Colour
    /// only when that stream is a terminal.
    #[arg(long, value_name = "STREAM", value_enum, default_value_t = LogOutput::Stderr)]
    pub log_output: LogOutput,

    /// Write the man page (roff) to stdout and exit (packaging).
    #[arg(long, hide = true)]
    pub print_man_page: bool,

    /// GET http://HOST:PORT/healthz within 2 s; exit 0 on a 200, else 1.
    /// Nothing else is done (no config is read): the OCI images'
    /// HEALTHCHECK.
    #[arg(long, hide = true, value_name = "HOST:PORT")]
    pub health_probe: Option<String>,
}

/// A daemon's `main`: the man page or the health probe when asked (and
/// nothing else), otherwise logging, a multi-thread runtime and `work`;
/// a failure is one line on stderr and the exit code `failure`.
pub fn main<F, Fut>(
    flags: &Flags,
    command: impl FnOnce() -> clap::Command,
    work: F,
    failure: ExitCode,
) -> ExitCode
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if flags.print_man_page {
        return print_man_page(command());
    }
    if let Some(target) = &flags.health_probe {
        return health_probe(target);
    }
    init_logging(flags.log_output);
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the runtime: {e}"))
        .and_then(|rt| rt.block_on(work()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            print_error(&e);
            failure
        }
    }
}

/// Starts the `tracing` subscriber: `RUST_LOG` sets the level (default
/// `info`); ANSI colours only when the chosen stream is a terminal, so a
/// file, a pipe or the journal gets plain text.
pub fn init_logging(output: LogOutput) {
    use std::io::IsTerminal as _;
    let (writer, ansi) = match output {
        LogOutput::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        LogOutput::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(writer)
        .with_ansi(ansi)
        .init();
}

/// Prints a fatal error as one line on stderr, `error: ` then the causes
/// joined by `: ` (never anyhow's Debug form, which adds a backtrace when
/// `RUST_BACKTRACE` is set). A cause whose text the message already holds
/// is not repeated; a message that spans lines is folded onto the line.
pub fn print_error(error: &anyhow::Error) {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&cause);
        }
    }
    let line: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("error: {}", line.join(" "));
}

/// `--print-man-page`: the roff page of `command` on stdout.
pub fn print_man_page(command: clap::Command) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match clap_mangen::Man::new(command)
        .render(&mut out)
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the man page: {e}");
            ExitCode::FAILURE
        }
    }
}

/// How long `--health-probe` waits for the whole exchange.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// `--health-probe HOST:PORT`: `GET /healthz` over plain HTTP; exit 0 on a
/// 200 within two seconds, else 1 with one line on stderr. A few lines of
/// std TCP rather than an HTTP client crate: one request, one status line
/// to read, no runtime to start, and the images have no curl to run.
pub fn health_probe(target: &str) -> ExitCode {
    match probe(target, Instant::now() + PROBE_DEADLINE) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: health probe of http://{target}/healthz: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe(target: &str, deadline: Instant) -> Result<(), String> {
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        (!d.is_zero()).then_some(d).ok_or("no answer within 2 s")
    };
    let addrs = target
        .to_socket_addrs()
        .map_err(|e| format!("bad address: {e}"))?;
    let mut stream = None;
    let mut last = String::from("the name has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left()?) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = format!("connecting to {addr}: {e}"),
        }
    }
    let mut stream = stream.ok_or(last)?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    // One write: a server may answer as soon as it has the request.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    // Only the status line matters: read until its end (or 512 bytes).
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 512 {
        stream
            .set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading the answer: {e}")),
        }
    }
    let status_line = String::from_utf8_lossy(&head);
    let status_line = status_line.lines().next().unwrap_or("").trim();
    let mut parts = status_line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/1.") => Ok(()),
        _ if status_line.is_empty() => Err("no HTTP answer".into()),
        _ => Err(format!("answered {status_line:?}")),
    }
}
