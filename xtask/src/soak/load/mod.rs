//! The load: a seeded, open-loop stream of requests at a steady rate (the
//! i-th starts at i/rate seconds, whatever the answers' times), each
//! appended to the history with its answer.
//!
//! The mix, per 100 requests: 13 logins (create with `uid`, 10 JSON, 3
//! SOAP `setSession`), 27 reads (22 JSON, 5 SOAP `getSession`, half on the
//! session's own node, half on the other), 18 PATCHes of one field (14
//! JSON, 4 SOAP `updateSession`), 4 pairs of concurrent PATCHes of two
//! different fields (JSON and SOAP at once), 16 increments of the counter
//! `n` (JSON `increment`, the update path), 7 logouts (5 JSON `DELETE`, 2
//! SOAP `deleteSession`), and 15 example-app requests (login, which
//! rotates the id of a logged-in browser; `/counter`; logout; "log out
//! everywhere").
//!
//! Each user has a home node (even users A, odd B): its sessions are
//! created, changed and logged out through that node's bridge, and read on
//! both. Writes to one session from both masters at once are resolved by
//! the replicator's rule for concurrent writes (a whole value wins, see its
//! docs), which is not what the merge invariants are about. The app runs on
//! A, with the even users: two browsers per user, so "log out everywhere"
//! from one ends the other's session too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

mod requests;

use requests::{app, create, increment, logout, patch, read};

use super::clients;
use super::fleet::Endpoints;
use super::history::{History, Node};
use super::rng::Rng;

/// Users `u00`..: even ones live on A, odd ones on B.
const USERS: u64 = 40;
/// Browsers of the app: two per user for the first users of A.
const BROWSERS: usize = 6;
/// Fields the PATCHes write (`f0`..`f5`).
const FIELDS: u64 = 6;
/// At most this many requests in flight; past it the schedule waits.
const IN_FLIGHT: usize = 256;
/// Fewer live sessions than this: requests needing one log in instead.
const MIN_LIVE: usize = 20;
/// More than this: logins become logouts.
const MAX_LIVE: usize = 400;

/// A session the load knows to exist (its creation was acknowledged).
#[derive(Debug, Clone)]
struct Live {
    id: String,
    node: Node,
    uid: String,
    /// Created by the app (read through the JSON mirror only).
    app: bool,
}

/// A browser of the app.
#[derive(Debug, Default)]
struct Browser {
    /// Its session (store id), when logged in.
    session: Option<String>,
}

/// What the load's tasks share.
struct Shared {
    live: Mutex<Vec<Live>>,
    /// Every session ever acknowledged, for the final sweep.
    known: Mutex<Vec<(String, Node)>>,
    http: reqwest::Client,
    endpoints: Endpoints,
    history: History,
    /// Requests answered, and those answered with an error.
    pub(crate) done: AtomicU64,
    pub(crate) errors: AtomicU64,
}

/// Counters the progress lines print.
#[derive(Clone)]
pub(crate) struct Progress(Arc<Shared>);

impl Progress {
    /// (requests answered, errors).
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.0.done.load(Ordering::Relaxed),
            self.0.errors.load(Ordering::Relaxed),
        )
    }
}

/// The load generator.
pub(crate) struct Load {
    shared: Arc<Shared>,
    browsers: Vec<(reqwest::Client, Arc<tokio::sync::Mutex<Browser>>)>,
}

fn uid(n: u64) -> String {
    format!("u{n:02}")
}

fn home(uid_n: u64) -> Node {
    if uid_n.is_multiple_of(2) { 'a' } else { 'b' }
}

fn other(node: Node) -> Node {
    if node == 'a' { 'b' } else { 'a' }
}

impl Load {
    /// A load on `endpoints`, writing to `history`.
    pub(crate) fn new(endpoints: Endpoints, history: History) -> anyhow::Result<Load> {
        let mut browsers = Vec::new();
        for _ in 0..BROWSERS {
            browsers.push((
                clients::browser()?,
                Arc::new(tokio::sync::Mutex::new(Browser::default())),
            ));
        }
        Ok(Load {
            shared: Arc::new(Shared {
                live: Mutex::new(Vec::new()),
                known: Mutex::new(Vec::new()),
                http: clients::http()?,
                endpoints,
                history,
                done: AtomicU64::new(0),
                errors: AtomicU64::new(0),
            }),
            browsers,
        })
    }

    /// The progress counters.
    pub(crate) fn progress(&self) -> Progress {
        Progress(self.shared.clone())
    }

    /// Runs `rate` requests a second until `until_ms`, then waits for
    /// those in flight.
    pub(crate) async fn run(&self, rng: &mut Rng, rate: u32, until_ms: f64) {
        let limit = Arc::new(Semaphore::new(IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        let interval_ms = 1000.0 / f64::from(rate.max(1));
        let mut i: u64 = 0;
        loop {
            let at = i as f64 * interval_ms;
            if at >= until_ms {
                break;
            }
            let wait = at - self.shared.history.now_ms();
            if wait > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(wait / 1000.0)).await;
            }
            let Ok(permit) = limit.clone().acquire_owned().await else {
                break;
            };
            let job = self.pick(rng);
            let shared = self.shared.clone();
            tasks.spawn(async move {
                job.run(&shared).await;
                drop(permit);
            });
            // Reap finished tasks so the set stays small.
            while tasks.try_join_next().is_some() {}
            i += 1;
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Decides the next request from the seed and the sessions known now.
    fn pick(&self, rng: &mut Rng) -> Job {
        let roll = rng.below(100);
        let live = self.shared.live.lock().unwrap_or_else(|p| p.into_inner());
        let n_live = live.len();
        // Sessions made by the bridges (the app's are read through JSON only).
        let choose = |rng: &mut Rng, bridge_only: bool| -> Option<Live> {
            let pool: Vec<&Live> = live.iter().filter(|s| !(bridge_only && s.app)).collect();
            if pool.is_empty() {
                None
            } else {
                Some(pool[rng.index(pool.len())].clone())
            }
        };
        let login = |rng: &mut Rng, soap: bool| {
            let u = rng.below(USERS);
            Job::Create {
                uid: uid(u),
                node: home(u),
                soap,
            }
        };
        let needs_session = (13..85).contains(&roll);
        if needs_session && n_live < MIN_LIVE {
            return login(rng, false);
        }
        if roll < 13 && n_live > MAX_LIVE {
            return match choose(rng, true) {
                Some(s) => Job::Logout { s, soap: false },
                None => login(rng, false),
            };
        }
        let field = |rng: &mut Rng| format!("f{}", rng.below(FIELDS));
        match roll {
            0..=9 => login(rng, false),
            10..=12 => login(rng, true),
            13..=39 => {
                let soap = roll >= 35;
                match choose(rng, soap) {
                    Some(s) => {
                        let node = if rng.below(2) == 0 {
                            s.node
                        } else {
                            other(s.node)
                        };
                        Job::Read { s, node, soap }
                    }
                    None => login(rng, false),
                }
            }
            40..=57 => match choose(rng, roll >= 54) {
                Some(s) => Job::Patch {
                    s,
                    field: field(rng),
                    soap: roll >= 54,
                },
                None => login(rng, false),
            },
            58..=61 => match choose(rng, true) {
                Some(s) => {
                    let first = rng.below(FIELDS);
                    let second = (first + 1 + rng.below(FIELDS - 1)) % FIELDS;
                    Job::Pair {
                        s,
                        fields: (format!("f{first}"), format!("f{second}")),
                    }
                }
                None => login(rng, false),
            },
            62..=77 => match choose(rng, true) {
                Some(s) => Job::Increment { s },
                None => login(rng, false),
            },
            78..=84 => match choose(rng, true) {
                Some(s) => Job::Logout {
                    s,
                    soap: roll >= 83,
                },
                None => login(rng, false),
            },
            _ => {
                let b = rng.index(self.browsers.len());
                let (client, state) = &self.browsers[b];
                let action = match roll {
                    85..=89 => AppAction::Login,
                    90..=94 => AppAction::Counter,
                    95..=96 => AppAction::Logout,
                    _ => AppAction::LogoutEverywhere,
                };
                Job::App {
                    browser: b,
                    client: client.clone(),
                    state: state.clone(),
                    // Browsers 0,1 are u00; 2,3 u02; 4,5 u04 (all on A).
                    uid: uid((b as u64 / 2) * 2),
                    action,
                }
            }
        }
    }

    /// After the load: every session ever acknowledged, on its node and
    /// the other.
    pub(crate) async fn sweep(&self) {
        let known = self
            .shared
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let limit = Arc::new(Semaphore::new(16));
        let mut tasks = tokio::task::JoinSet::new();
        for (id, node) in known {
            for at in [node, other(node)] {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    break;
                };
                let shared = self.shared.clone();
                let id = id.clone();
                tasks.spawn(async move {
                    let s = Live {
                        id,
                        node,
                        uid: String::new(),
                        app: false,
                    };
                    read(&shared, &s, at, false, "sweep").await;
                    drop(permit);
                });
            }
        }
        while tasks.join_next().await.is_some() {}
    }
}

/// What an app browser does.
#[derive(Debug, Clone, Copy)]
enum AppAction {
    Login,
    Counter,
    Logout,
    LogoutEverywhere,
}

/// One request (or a pair) decided by [`Load::pick`].
enum Job {
    Create {
        uid: String,
        node: Node,
        soap: bool,
    },
    Read {
        s: Live,
        node: Node,
        soap: bool,
    },
    Patch {
        s: Live,
        field: String,
        soap: bool,
    },
    Pair {
        s: Live,
        fields: (String, String),
    },
    Increment {
        s: Live,
    },
    Logout {
        s: Live,
        soap: bool,
    },
    App {
        browser: usize,
        client: reqwest::Client,
        state: Arc<tokio::sync::Mutex<Browser>>,
        uid: String,
        action: AppAction,
    },
}

impl Job {
    async fn run(self, shared: &Shared) {
        match self {
            Job::Create { uid, node, soap } => create(shared, uid, node, soap).await,
            Job::Read { s, node, soap } => read(shared, &s, node, soap, "").await,
            Job::Patch { s, field, soap } => patch(shared, &s, field, soap, None).await,
            Job::Pair { s, fields } => {
                let pair = shared.history.next_id();
                tokio::join!(
                    patch(shared, &s, fields.0, false, Some(pair)),
                    patch(shared, &s, fields.1, true, Some(pair)),
                );
            }
            Job::Increment { s } => increment(shared, &s).await,
            Job::Logout { s, soap } => logout(shared, &s, soap).await,
            Job::App {
                browser,
                client,
                state,
                uid,
                action,
            } => {
                // One request at a time per browser; a busy one is skipped.
                let Ok(mut state) = state.try_lock() else {
                    return;
                };
                app(shared, browser, &client, &mut state, &uid, action).await;
            }
        }
    }
}
