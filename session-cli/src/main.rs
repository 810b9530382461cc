//! `sessionctl`: read, write, delete and find sessions on any memorycached
//! store from a shell — the successor of the original's `memd.pl`.
//!
//! ```text
//! sessionctl set --servers 127.0.0.1:11211 --principal uid uid=jdoe 'groups:=["admins"]'
//! sessionctl get --servers 127.0.0.1:11211 0123456789abcdef0123456789abcdef
//! sessionctl set --servers 127.0.0.1:11211 --id 0123... theme=dark   # changes only `theme`
//! sessionctl delete --servers 127.0.0.1:11211 0123... [KEY...]
//! sessionctl find-principal --servers 127.0.0.1:11211 --principal uid jdoe
//! sessionctl stats --servers 127.0.0.1:11211,127.0.0.1:11212
//! sessionctl reseal --servers 127.0.0.1:11211 --seal-keys-file /etc/memorycached/seal.keys
//! ```
//!
//! Sealed sessions (see `session_core::seal`): `--seal-keys-file FILE` or
//! `--seal-keys-env VAR` (the *name* of a variable holding the keys; keys
//! are never taken on the command line, where `ps` would show them) seal
//! what a command writes and require the seal on what it reads; a value
//! that does not open is reported like an unknown id (exit 1).
//! `--accept-unsealed` reads plain values during a move to sealing;
//! `--seal-allow-storable` allows `--codec storable` inside the seal (Perl
//! nodes cannot read sealed values). `reseal` rewrites every session of
//! `--key-prefix` under the current (first) key, each write conditional on
//! the version read, with a progress line per page on stderr and a JSON
//! summary on stdout; exit 3 if some values were refused.
//!
//! Every command goes through `session_core::Sessions`, so what it writes is
//! what the library writes (conflict-safe saves, reverse keys, the chosen
//! codec — `--codec storable` for values a Perl node reads). Unlike
//! `memd.pl`, `set --id` changes only the keys it names: another writer's
//! fields survive.
//!
//! Exit codes: 0 done, 1 not found, 2 usage, 3 server or data error. Errors
//! are one line on stderr.
//!
//! For packaging: `sessionctl completions bash` (or zsh, fish, elvish,
//! powershell) prints a completion script, and the hidden
//! `sessionctl --print-man-page` the roff man page.

mod fields;
mod reseal;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use session_core::{Codec, Keyring, Patch, SealConfig, Sessions, SessionsConfig, Ttl};
use std::process::ExitCode;

/// Many small allocations from many threads: glibc's malloc serialises
/// them on its arena locks (see the workspace manifest).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `--version`: the version and the commit built (`cli-support/build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MEMORYCACHED_COMMIT_ID"),
    ")"
);

/// Read, write, delete and find sessions on memcached, Redis or an in-process store.
#[derive(Parser)]
#[command(name = "sessionctl", version = VERSION, long_about = None)]
struct Cli {
    /// Write the man page (roff) to stdout and exit (packaging); needs no
    /// command.
    #[arg(long, hide = true)]
    print_man_page: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print a session as one JSON object (all fields, `_session_id` included).
    /// Exit 1 when the id is unknown.
    Get {
        #[command(flatten)]
        store: StoreArgs,
        /// The session id (hex).
        id: String,
    },
    /// Create a session from KEY=VALUE (string) and KEY:=JSON (typed) arguments
    /// and print its id as the last line; with --id, change only those keys of
    /// an existing session (a conflict-safe save).
    Set {
        #[command(flatten)]
        store: StoreArgs,
        /// Change this existing session instead of creating one (exit 1 if unknown).
        #[arg(long)]
        id: Option<String>,
        /// Fields: `KEY=VALUE` sets a string, `KEY:=JSON` a number, null, list or object.
        #[arg(value_name = "ARG", required = true)]
        fields: Vec<String>,
    },
    /// Delete a session, or only the given keys of it. Exit 1 if unknown.
    Delete {
        #[command(flatten)]
        store: StoreArgs,
        /// The session id (hex).
        id: String,
        /// Keys to remove; without any, the whole session is deleted.
        keys: Vec<String>,
    },
    /// Print the id of a user's session, through the reverse key
    /// md5_hex(UID) (needs --principal). Exit 1 if none.
    FindPrincipal {
        #[command(flatten)]
        store: StoreArgs,
        /// The user, as stored in the principal field.
        uid: String,
    },
    /// Print each memcached server's own counters (`stats`), one JSON object per server.
    Stats {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Rewrite every session (keys under --key-prefix, through a scan) sealed under
    /// the current key (the first of the keyring); each write is conditional, so a
    /// concurrent save is never overwritten. Needs seal keys; plain values only with
    /// --accept-unsealed. Exit 3 if some values were refused.
    Reseal {
        #[command(flatten)]
        store: StoreArgs,
        /// Keys per scan page (a progress line per page on stderr).
        #[arg(long, value_name = "N", default_value_t = 1000)]
        page_size: usize,
    },
    /// Print a completion script for SHELL to stdout, e.g.
    /// `sessionctl completions bash > /etc/bash_completion.d/sessionctl`.
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Which store, and the session settings a command writes with.
#[derive(Args)]
#[command(group = clap::ArgGroup::new("seal").args(["seal_keys_file", "seal_keys_env"]))]
struct StoreArgs {
    /// The store as a URL: memory:// (this process only), memcached://H:P[,H:P...][?options],
    /// redis://[USER:PASSWORD@]H:P[/DB][?options].
    #[arg(long, value_name = "URL", conflicts_with = "servers")]
    store: Option<String>,
    /// The original's server list, H:P[,H:P...]: the same as --store memcached://H:P,...
    #[arg(long, value_name = "H:P,...")]
    servers: Option<String>,
    /// A read-first local cache (H:P, or a store URL), as the original's `local`.
    #[arg(long, value_name = "H:P")]
    local: Option<String>,
    /// Encoding of what this command writes: json, msgpack, or storable (what Perl nodes
    /// write). Reads decode whatever the stored flags say.
    #[arg(long, default_value = "json")]
    codec: String,
    /// The field naming the session's user (e.g. uid): writes keep the reverse key
    /// md5_hex(user) -> id, as the original does; needed by find-principal.
    #[arg(long, value_name = "FIELD")]
    principal: Option<String>,
    /// Session lifetime in seconds, set by every write (0 = never expires).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    timeout: u32,
    /// Prepended to every key (the library's key_prefix); empty, as Perl nodes use.
    #[arg(long, value_name = "PREFIX", default_value = "")]
    key_prefix: String,
    /// Seal keys from this file (ID:HEX entries, the current key first; see
    /// session_core::seal). Writes are sealed; reads require the seal.
    #[arg(long, value_name = "FILE", conflicts_with = "seal_keys_env")]
    seal_keys_file: Option<std::path::PathBuf>,
    /// Seal keys from the environment variable named VAR (its value in the same form).
    #[arg(long, value_name = "VAR")]
    seal_keys_env: Option<String>,
    /// Transition setting: read plain (unsealed) sessions instead of refusing them.
    #[arg(long, requires = "seal")]
    accept_unsealed: bool,
    /// Allow --codec storable with seal keys (Perl nodes cannot read sealed values).
    #[arg(long, requires = "seal")]
    seal_allow_storable: bool,
}

impl StoreArgs {
    fn url(&self) -> anyhow::Result<String> {
        match (&self.store, &self.servers) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(list)) => Ok(format!("memcached://{list}")),
            (None, None) => anyhow::bail!(Usage(
                "name a store with --servers H:P[,H:P...] or --store URL".into()
            )),
        }
    }

    fn sessions(&self) -> anyhow::Result<Sessions> {
        let codec = Codec::from_name(&self.codec).map_err(|e| Usage(e.to_string()))?;
        let (servers, local) = store_url::open(&self.url()?, self.local.as_deref())
            .map_err(|e| Usage(e.to_string()))?;
        let config = SessionsConfig {
            codec,
            principal: self.principal.clone(),
            timeout: Ttl::seconds(self.timeout),
            key_prefix: self.key_prefix.clone(),
            seal: self.seal()?,
            ..Default::default()
        };
        let sessions = Sessions::new(servers, config).map_err(|e| Usage(e.to_string()))?;
        Ok(match local {
            Some(local) => sessions.with_local(local),
            None => sessions,
        })
    }
}

impl StoreArgs {
    /// The seal setting, from a key file or an environment variable.
    fn seal(&self) -> anyhow::Result<Option<SealConfig>> {
        let keyring = match (&self.seal_keys_file, &self.seal_keys_env) {
            (Some(path), _) => Keyring::from_file(path),
            (None, Some(var)) => Keyring::from_env(var),
            (None, None) => return Ok(None),
        }
        .map_err(|e| Usage(e.to_string()))?;
        let mut seal = SealConfig::new(keyring);
        seal.accept_unsealed = self.accept_unsealed;
        seal.allow_storable = self.seal_allow_storable;
        Ok(Some(seal))
    }
}

/// A usage error found after parsing (bad URL, codec, argument): exit 2.
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// What a command found, for the exit code.
enum Found {
    Yes,
    No(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        _ if cli.print_man_page => return print_man_page(),
        Some(Command::Completions { shell }) => return print_completions(shell),
        Some(command) => command,
        // What clap says for a missing required command: usage, exit 2.
        None => Cli::command()
            .error(
                clap::error::ErrorKind::MissingSubcommand,
                "a command is required (sessionctl --help lists them)",
            )
            .exit(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessionctl: cannot start the runtime: {e}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(run(command)) {
        Ok(Found::Yes) => ExitCode::SUCCESS,
        Ok(Found::No(what)) => {
            eprintln!("sessionctl: {what}");
            ExitCode::from(1)
        }
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("sessionctl: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("sessionctl: {e:#}");
            ExitCode::from(3)
        }
    }
}

/// `completions SHELL`: the script, made in memory (clap_complete panics
/// on a failed write) then written out.
fn print_completions(shell: clap_complete::Shell) -> ExitCode {
    use std::io::Write as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sessionctl", &mut script);
    let mut out = std::io::stdout().lock();
    match out.write_all(&script).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessionctl: writing the completion script: {e}");
            ExitCode::from(3)
        }
    }
}

/// `--print-man-page`: the roff page of the whole command on stdout.
fn print_man_page() -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .and_then(|()| out.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sessionctl: writing the man page: {e}");
            ExitCode::from(3)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<Found> {
    match command {
        // Answered in main, before a runtime starts.
        Command::Completions { .. } => Ok(Found::Yes),
        Command::Get { store, id } => {
            let sessions = store.sessions()?;
            match sessions.load(&id).await.map_err(input_is_usage)? {
                Some(session) => {
                    println!("{}", serde_json::Value::Object(session.data().clone()));
                    Ok(Found::Yes)
                }
                None => Ok(Found::No(format!("no session {id}"))),
            }
        }
        Command::Set { store, id, fields } => {
            let sessions = store.sessions()?;
            let data = fields::parse(&fields).map_err(Usage)?;
            match id {
                None => {
                    let session = sessions
                        .create_with(data, None)
                        .await
                        .map_err(input_is_usage)?;
                    println!("{}", session.id());
                    Ok(Found::Yes)
                }
                Some(id) => {
                    let patch = Patch {
                        set: data,
                        remove: Vec::new(),
                    };
                    match sessions
                        .patch(&id, &patch, None)
                        .await
                        .map_err(input_is_usage)?
                    {
                        Some(session) => {
                            println!("{}", session.id());
                            Ok(Found::Yes)
                        }
                        None => Ok(Found::No(format!("no session {id}"))),
                    }
                }
            }
        }
        Command::Delete { store, id, keys } => {
            let sessions = store.sessions()?;
            let found = if keys.is_empty() {
                sessions.delete_id(&id).await.map_err(input_is_usage)?
            } else {
                let patch = Patch {
                    set: Default::default(),
                    remove: keys,
                };
                sessions
                    .patch(&id, &patch, None)
                    .await
                    .map_err(input_is_usage)?
                    .is_some()
            };
            Ok(if found {
                Found::Yes
            } else {
                Found::No(format!("no session {id}"))
            })
        }
        Command::FindPrincipal { store, uid } => {
            if store.principal.is_none() {
                anyhow::bail!(Usage(
                    "find-principal needs --principal FIELD (the field holding the user)".into()
                ));
            }
            let sessions = store.sessions()?;
            match sessions.find_by_principal(&uid).await? {
                Some(session) => {
                    println!("{}", session.id());
                    Ok(Found::Yes)
                }
                None => Ok(Found::No(format!("no session of {uid:?}"))),
            }
        }
        Command::Stats { store } => stats(&store).await,
        Command::Reseal { store, page_size } => {
            if store.seal_keys_file.is_none() && store.seal_keys_env.is_none() {
                anyhow::bail!(Usage(
                    "reseal needs the keys: --seal-keys-file FILE or --seal-keys-env VAR".into()
                ));
            }
            reseal::run(&store.sessions()?, page_size).await
        }
    }
}

/// Per-server `stats` of a memcached store; other stores have none to show.
async fn stats(store: &StoreArgs) -> anyhow::Result<Found> {
    let url = store.url()?;
    if !url.starts_with("memcached://") {
        anyhow::bail!(Usage(format!(
            "stats reads memcached servers' own counters; {url:?} is not a memcached store"
        )));
    }
    let memcached =
        backend_memcached::MemcachedStore::from_url(&url).map_err(|e| Usage(e.to_string()))?;
    let mut failed = 0;
    for (server, result) in memcached.server_stats().await {
        match result {
            Ok(counters) => {
                let map: serde_json::Map<String, serde_json::Value> = counters
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect();
                println!("{}", serde_json::json!({ "server": server, "stats": map }));
            }
            Err(e) => {
                failed += 1;
                eprintln!("sessionctl: {server}: {e}");
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} server(s) did not answer");
    Ok(Found::Yes)
}

/// Input errors of the session layer (a malformed id, a forbidden field)
/// are the caller's: exit 2, like any usage error.
fn input_is_usage(e: session_core::Error) -> anyhow::Error {
    if e.is_invalid_input() {
        Usage(e.to_string()).into()
    } else {
        anyhow::Error::new(e).context("store")
    }
}
