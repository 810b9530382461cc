//! One installed daemon run the way its unit runs it: as its own user, with
//! the packaged config, from `/`, with an almost empty environment; then
//! `/healthz` polled until it answers 200, and SIGTERM, after which it must
//! exit 0.
//!
//! The packaged configs name memcached on loopback ports; memcached is
//! started on each such port for the run (or one already answering there
//! is used), so the check needs nothing but the `memcached` binary.

use std::{
    fs,
    io::{Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::deb::Package;

/// How long a daemon may take to answer `/healthz` (a loaded CI machine).
const HEALTH_DEADLINE: Duration = Duration::from_secs(30);
/// How long it may take to exit after SIGTERM (the bridge drains for up to
/// its `shutdown_grace_ms`, 10 s by default).
const STOP_DEADLINE: Duration = Duration::from_secs(30);

/// The health address when the config does not name one: the binaries'
/// defaults.
fn default_health(bin: &str) -> &'static str {
    match bin {
        "replicator" => "127.0.0.1:9150",
        _ => "127.0.0.1:8080",
    }
}

/// The config key holding the address `/healthz` is served on.
fn health_key(bin: &str) -> &'static str {
    match bin {
        "replicator" => "metrics",
        _ => "listen",
    }
}

/// Kills what it holds when dropped, so a failed check leaves no process.
struct Guard(Vec<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the installed daemon of `package` and checks it starts, is healthy
/// and stops cleanly. Its stderr goes to `work/<bin>.log`.
pub(crate) fn serve(package: &Package, work: &Path) -> anyhow::Result<String> {
    let daemon = package.daemon.as_ref().context("not a daemon package")?;
    let conffile = package.conffile().unwrap_or_default();
    let config: toml::Table = fs::read_to_string(&conffile)
        .with_context(|| format!("reading {conffile}"))?
        .parse()
        .with_context(|| format!("parsing {conffile}"))?;
    let health = match config.get(health_key(package.bin)) {
        Some(toml::Value::String(addr)) => addr.clone(),
        Some(other) => bail!(
            "{conffile}: {} is {other:?}, not a string",
            health_key(package.bin)
        ),
        None => default_health(package.bin).to_owned(),
    };
    let health_addr = resolve(&health)?;

    let mut guard = Guard(Vec::new());
    let mut started = Vec::new();
    for addr in loopback_addresses(&config, &health) {
        let sock = resolve(&addr)?;
        if memcached_answers(sock) {
            started.push(format!("{addr} (already running)"));
            continue;
        }
        guard.0.push(start_memcached(sock)?);
        wait_for(&format!("memcached on {addr}"), || memcached_answers(sock))?;
        started.push(addr);
    }

    // Something else answering there would pass the health check for it.
    if TcpStream::connect_timeout(&health_addr, Duration::from_secs(2)).is_ok() {
        bail!("{health} (from {conffile}) is already in use: stop what listens there first");
    }

    fs::create_dir_all(work)?;
    let log_path = work.join(format!("{}.log", package.bin));
    let log = fs::File::create(&log_path)?;
    let child = Command::new("setpriv")
        .arg(format!("--reuid={}", daemon.user))
        .arg(format!("--regid={}", daemon.user))
        .arg("--clear-groups")
        .arg("--")
        .arg(format!("/usr/bin/{}", package.bin))
        .args(["--config", &conffile])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("running setpriv (util-linux)")?;
    let pid = child.id();
    // Before the memcacheds in the guard, so it is stopped first.
    guard.0.insert(0, child);
    let tail = || log_tail(&log_path);

    let t0 = Instant::now();
    let healthy = poll(HEALTH_DEADLINE, || {
        if let Some(status) = guard.0[0].try_wait().ok().flatten() {
            return Some(Err(status));
        }
        healthz(health_addr).then_some(Ok(()))
    });
    match healthy {
        Some(Ok(())) => {}
        Some(Err(status)) => bail!("it exited ({status}) before /healthz answered: {}", tail()),
        None => bail!(
            "GET http://{health}/healthz gave no 200 within {HEALTH_DEADLINE:?}: {}",
            tail()
        ),
    }
    let up = t0.elapsed();
    let uid = running_uid(pid)?;
    let want_uid = super::deb::output(Command::new("id").args(["-u", daemon.user]))?;
    let want_uid = String::from_utf8_lossy(&want_uid).trim().to_owned();
    if uid != want_uid {
        bail!("it runs as uid {uid}, not {} ({want_uid})", daemon.user);
    }

    let pid =
        rustix::process::Pid::from_raw(i32::try_from(pid)?).context("the daemon's pid is 0")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).context("sending SIGTERM")?;
    let t1 = Instant::now();
    let exited: Option<ExitStatus> = poll(STOP_DEADLINE, || guard.0[0].try_wait().ok().flatten());
    let Some(status) = exited else {
        bail!("still running {STOP_DEADLINE:?} after SIGTERM: {}", tail());
    };
    if !status.success() {
        bail!("exited {status} after SIGTERM, not 0: {}", tail());
    }
    let down = t1.elapsed();
    let saved = state_saved(&config, daemon.user)?;
    Ok(format!(
        "healthy after {up:.1?} as {} (uid {uid}), exit 0 {down:.1?} after SIGTERM; memcached: {}{saved}",
        daemon.user,
        if started.is_empty() {
            "none named".to_owned()
        } else {
            started.join(", ")
        }
    ))
}

/// Loopback `host:port` addresses the config names (in any string, any
/// table, but not the health address): the memcached servers it uses.
fn loopback_addresses(config: &toml::Table, health: &str) -> Vec<String> {
    let mut strings = Vec::new();
    collect_strings(&toml::Value::Table(config.clone()), &mut strings);
    let mut found: Vec<String> = Vec::new();
    for s in strings {
        for token in s.split([',', ' ', '/', '?', ';']) {
            let token = token.trim_start_matches('@');
            let is_loopback = token.starts_with("127.0.0.1:") || token.starts_with("localhost:");
            let has_port = token
                .rsplit_once(':')
                .is_some_and(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
            if is_loopback && has_port && token != health && !found.iter().any(|f| f == token) {
                found.push(token.to_owned());
            }
        }
    }
    found
}

fn collect_strings(value: &toml::Value, out: &mut Vec<String>) {
    match value {
        toml::Value::String(s) => out.push(s.clone()),
        toml::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        toml::Value::Table(table) => table.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

fn resolve(addr: &str) -> anyhow::Result<SocketAddr> {
    addr.to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to nothing"))
}

/// memcached as an unprivileged user (as root it insists on `-u`).
fn start_memcached(addr: SocketAddr) -> anyhow::Result<Child> {
    Command::new("memcached")
        .args(["-u", "nobody", "-U", "0", "-m", "64", "-l"])
        .arg(addr.ip().to_string())
        .arg("-p")
        .arg(addr.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running memcached (package memcached)")
}

/// One `version` round trip.
fn memcached_answers(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"VERSION "))
}

/// `GET /healthz` answered 200.
fn healthz(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    match poll(HEALTH_DEADLINE, || ready().then_some(())) {
        Some(()) => Ok(()),
        None => bail!("{what} not ready within {HEALTH_DEADLINE:?}"),
    }
}

/// Calls `check` every 100 ms until it gives `Some` or `deadline` passes.
fn poll<T>(deadline: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if start.elapsed() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last lines of the daemon's stderr, for a failure message.
fn log_tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(10)..].join(" | ");
    format!("its stderr ({}): {tail}", path.display())
}

/// The real uid of the running process `pid` (`/proc/<pid>/status`).
fn running_uid(pid: u32) -> anyhow::Result<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|uids| uids.split_whitespace().next())
        .map(str::to_owned)
        .with_context(|| format!("no Uid: line in /proc/{pid}/status"))
}

/// When the config names a `state_file`, the clean stop must have saved
/// it, owned by the service user: the one write the daemon makes.
fn state_saved(config: &toml::Table, user: &str) -> anyhow::Result<String> {
    let Some(toml::Value::String(path)) = config.get("state_file") else {
        return Ok(String::new());
    };
    let stat = super::deb::output(Command::new("stat").args(["-c", "%U", path]))
        .with_context(|| format!("the state file {path} was not saved at the stop"))?;
    let owner = String::from_utf8_lossy(&stat).trim().to_owned();
    if owner != user {
        bail!("the state file {path} belongs to {owner}, not {user}");
    }
    Ok(format!("; state saved to {path}"))
}

/// Bad input, as an operator meets it: the packaged config unreadable (run
/// as `nobody:nogroup`, whom its `0640 root:<user>` mode keeps out) and a config with
/// an unknown key (run as the service user). Each must make the daemon exit
/// non-zero at once with one line on stderr, with `RUST_BACKTRACE=1` set.
pub(crate) fn refuses_bad_config(package: &Package, work: &Path) -> anyhow::Result<String> {
    let daemon = package.daemon.as_ref().context("not a daemon package")?;
    let conffile = package.conffile().unwrap_or_default();
    fs::create_dir_all(work)?;
    let bad = work.join(format!("{}-unknown-key.toml", package.bin));
    let mut text = fs::read_to_string(&conffile)?;
    text.insert_str(0, "no_such_key = 1\n");
    fs::write(&bad, text)?;
    fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    let unreadable = one_line_error(("nobody", "nogroup"), package.bin, &conffile)?;
    if !unreadable.contains(&conffile) || !unreadable.contains("ermission denied") {
        bail!("the unreadable-config error does not say why: {unreadable:?}");
    }
    let bad = bad.display().to_string();
    let unknown = one_line_error((daemon.user, daemon.user), package.bin, &bad)?;
    if !unknown.contains("no_such_key") || !unknown.contains(&bad) {
        bail!("the unknown-key error does not name the key: {unknown:?}");
    }
    Ok(format!(
        "as nobody: {unreadable:?}; unknown key: {unknown:?}"
    ))
}

/// Runs `bin --config <config>` as `(user, group)`; it must exit non-zero within
/// [`HEALTH_DEADLINE`], having printed exactly one line on stderr, which is
/// returned.
fn one_line_error((user, group): (&str, &str), bin: &str, config: &str) -> anyhow::Result<String> {
    let mut child = Command::new("setpriv")
        .arg(format!("--reuid={user}"))
        .arg(format!("--regid={group}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(format!("/usr/bin/{bin}"))
        .args(["--config", config])
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running setpriv (util-linux)")?;
    let Some(status) = poll(HEALTH_DEADLINE, || child.try_wait().ok().flatten()) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("{bin} --config {config} as {user} still runs after {HEALTH_DEADLINE:?}");
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        pipe.read_to_string(&mut stderr)?;
    }
    if status.success() {
        bail!("{bin} --config {config} as {user} exited 0");
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.as_slice() {
        // setpriv's own complaint (no such user) is no answer of the daemon.
        [line] if line.starts_with("setpriv:") => bail!("{line}"),
        [line] => Ok((*line).to_owned()),
        _ => bail!(
            "{bin} --config {config} as {user}: {} lines on stderr, not one: {stderr:?}",
            lines.len()
        ),
    }
}
