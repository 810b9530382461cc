//! The process provider: local `memcached` / `redis-server` binaries on free loopback ports.
//!
//! Ports are found by binding port 0 and releasing it; the binary is started
//! on that port and, when another process grabbed the port in between (the
//! log says "Address already in use"), started again on a new one.
//! Children are started through `setpriv --pdeathsig KILL` where util-linux
//! has it, from one long-lived thread, so they die with the test process even
//! when it is killed before any `Drop` runs.

use std::{
    env,
    fs::File,
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, OnceLock, PoisonError, mpsc},
    time::Duration,
};

use rustix::process::{Pid, Signal};

use crate::{Error, binary::Binary, kind::ServerKind, ready};

/// How long a freshly started binary may take to answer its ping.
const READY_BUDGET: Duration = Duration::from_secs(10);
/// Attempts when the probed port is taken before the server binds it.
const PORT_ATTEMPTS: usize = 5;

/// One server process slot; empty while stopped.
pub(crate) struct ProcessServer {
    inner: Arc<Inner>,
}

struct Inner {
    kind: ServerKind,
    binary: PathBuf,
    args: Vec<String>,
    running: Mutex<Option<Running>>,
}

struct Running {
    child: Child,
    log: PathBuf,
}

impl ProcessServer {
    /// Starts `kind` with the provider-independent `args` and waits until it answers.
    pub(crate) async fn launch(
        kind: ServerKind,
        args: Vec<String>,
    ) -> Result<(ProcessServer, SocketAddr), Error> {
        ProcessServer::launch_binary(kind, Binary::of(kind), args).await
    }

    /// [`ProcessServer::launch`] with another binary of the same kind (a
    /// second memcached version).
    pub(crate) async fn launch_binary(
        kind: ServerKind,
        binary: Binary,
        args: Vec<String>,
    ) -> Result<(ProcessServer, SocketAddr), Error> {
        let binary = binary.locate()?;
        let server = ProcessServer {
            inner: Arc::new(Inner {
                kind,
                binary,
                args,
                running: Mutex::new(None),
            }),
        };
        let addr = server.start().await?;
        Ok((server, addr))
    }

    pub(crate) async fn start(&self) -> Result<SocketAddr, Error> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match self.inner.start_once().await {
                Ok(addr) => return Ok(addr),
                Err(Attempt::PortTaken(e)) => last = Some(e),
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Io {
            context: "starting a server process".to_owned(),
            source: std::io::Error::other("no attempt made"),
        }))
    }

    /// The running process's id; `None` while stopped.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.inner.lock().as_ref().map(|running| running.child.id())
    }

    pub(crate) async fn stop(&self) -> Result<(), Error> {
        self.kill();
        Ok(())
    }

    pub(crate) async fn pause(&self, pause: bool) -> Result<(), Error> {
        let pid = {
            let running = self.inner.lock();
            let Some(running) = running.as_ref() else {
                return Ok(());
            };
            Pid::from_child(&running.child)
        };
        let signal = if pause { Signal::STOP } else { Signal::CONT };
        rustix::process::kill_process(pid, signal).map_err(|e| Error::Io {
            context: format!("sending {signal:?} to {}", self.inner.binary.display()),
            source: e.into(),
        })?;
        if pause {
            // SIGSTOP is asynchronous: the server's threads stop a few
            // milliseconds later (far more under CPU load) and keep answering
            // meanwhile. "Paused" must mean "answers nothing", so wait until
            // every thread reports the stopped state.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while !all_threads_stopped(pid.as_raw_nonzero().get()) {
                if std::time::Instant::now() > deadline {
                    return Err(Error::Io {
                        context: format!("pausing {}", self.inner.binary.display()),
                        source: std::io::Error::other("threads still running 5 s after SIGSTOP"),
                    });
                }
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        Ok(())
    }

    /// Kills the process (SIGKILL: no chance to save anything) and reaps it.
    fn kill(&self) {
        if let Some(mut running) = self.inner.lock().take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
            let _ = std::fs::remove_file(&running.log);
        }
    }
}

impl Drop for ProcessServer {
    fn drop(&mut self) {
        self.kill();
    }
}

enum Attempt {
    PortTaken(Error),
    Failed(Error),
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn start_once(&self) -> Result<SocketAddr, Attempt> {
        let port = free_port().map_err(Attempt::Failed)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let log = log_path(self.kind, port);
        let mut child = self.spawn(port, &log).map_err(Attempt::Failed)?;

        let plaintext = ready::answers_plaintext(self.kind, &self.args);
        let ready = ready::wait_ready(self.kind, addr, plaintext, READY_BUDGET, || {
            match child.try_wait() {
                Ok(None) => Ok(()),
                Ok(Some(status)) => Err(format!("the process exited ({status})")),
                Err(e) => Err(format!("waiting for the process: {e}")),
            }
        })
        .await;
        match ready {
            Ok(()) => {
                *self.lock() = Some(Running { child, log });
                Ok(addr)
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let tail = log_tail(&log);
                let _ = std::fs::remove_file(&log);
                let port_taken = tail.contains("Address already in use");
                let e = match e {
                    Error::NotReady {
                        server,
                        addr,
                        waited,
                        detail,
                    } => Error::NotReady {
                        server,
                        addr,
                        waited,
                        detail: format!(
                            "{detail}; command: {}; log: {tail}",
                            self.command_line(port)
                        ),
                    },
                    other => other,
                };
                Err(if port_taken {
                    Attempt::PortTaken(e)
                } else {
                    Attempt::Failed(e)
                })
            }
        }
    }

    fn listen_args(&self, port: u16) -> Vec<String> {
        let port = port.to_string();
        match self.kind {
            ServerKind::Memcached => {
                let mut args = vec!["-l".into(), "127.0.0.1".into(), "-p".into(), port];
                // memcached refuses to run as root unless told which user to be.
                if rustix::process::geteuid().is_root() {
                    args.extend(["-u".into(), "root".into()]);
                }
                args
            }
            ServerKind::Redis | ServerKind::Valkey => vec![
                "--bind".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port,
                "--daemonize".into(),
                "no".into(),
            ],
        }
    }

    fn command_line(&self, port: u16) -> String {
        let mut line = self.binary.display().to_string();
        for arg in self.listen_args(port).iter().chain(&self.args) {
            if arg.is_empty() {
                line.push_str(" ''");
            } else {
                line.push(' ');
                line.push_str(arg);
            }
        }
        line
    }

    fn spawn(&self, port: u16, log: &Path) -> Result<Child, Error> {
        let context = || format!("starting `{}`", self.command_line(port));
        let out = File::create(log).map_err(Error::io(format!("creating {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("opening {}", log.display())))?;
        let mut cmd = match setpriv() {
            Some(setpriv) => {
                let mut cmd = Command::new(setpriv);
                cmd.args(["--pdeathsig", "KILL", "--"]).arg(&self.binary);
                cmd
            }
            None => Command::new(&self.binary),
        };
        cmd.args(self.listen_args(port))
            .args(&self.args)
            .current_dir(env::temp_dir())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        spawn_from_spawner(cmd).map_err(Error::io(context()))
    }
}

/// A loopback port that was free a moment ago.
pub(crate) fn free_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(Error::io("probing for a free loopback port"))
}

fn log_path(kind: ServerKind, port: u16) -> PathBuf {
    env::temp_dir().join(format!(
        "memorycached-test-{}-{}-{port}.log",
        kind.name(),
        std::process::id()
    ))
}

/// The last lines of a server log, on one line, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail
    }
}

fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            ["/usr/bin/setpriv", "/bin/setpriv"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        })
        .as_deref()
}

type SpawnRequest = (Command, mpsc::SyncSender<std::io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the process.
///
/// The parent-death signal fires when the *thread* that forked the child
/// exits, not the process; test threads and runtime worker threads come and
/// go, so children are forked from this thread only.
fn spawn_from_spawner(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // If the thread cannot be started, `rx` is dropped with the closure,
        // every send below fails and the caller spawns from its own thread.
        let _ = std::thread::Builder::new()
            .name("test-support-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    let sent = sender
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send((cmd, reply_tx));
    match sent {
        Ok(()) => reply_rx
            .recv()
            .unwrap_or_else(|_| Err(std::io::Error::other("the spawner thread is gone"))),
        // The spawner thread could not be started: spawn from this thread.
        Err(mpsc::SendError((mut cmd, _))) => cmd.spawn(),
    }
}

/// True when every thread of `pid` is in the stopped state (`T`), read from
/// `/proc/<pid>/task/*/stat`. A process that cannot be read counts as stopped
/// only if it is gone.
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return true;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            // The state follows the command name, which is in parentheses and
            // may itself contain spaces or parentheses: split at the last ')'.
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().to_owned())
            })
            .is_none_or(|rest| rest.starts_with('T') || rest.starts_with('t'))
    })
}
