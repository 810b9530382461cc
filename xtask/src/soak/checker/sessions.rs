//! What happened to each session, gathered from the requests: its node,
//! its user, every write of a field (acknowledged or of unknown fate),
//! every logout (acknowledged, or only attempted), its increments.

use std::collections::HashMap;

use serde_json::Value;

use crate::soak::history::{Node, Op, Outcome};

/// A write of one field.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    /// The request.
    pub(crate) op: u64,
    /// The value written (unique per request).
    pub(crate) value: Value,
    /// Sent, answered.
    pub(crate) start: f64,
    /// Answered.
    pub(crate) end: f64,
    /// Acknowledged; otherwise it may or may not have been applied.
    pub(crate) acked: bool,
}

/// A logout of the session (a delete, an app logout or rotation, or a "log
/// out everywhere" of its user).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logout {
    /// The request.
    pub(crate) op: u64,
    /// Sent.
    pub(crate) start: f64,
    /// Answered.
    pub(crate) end: f64,
    /// Acknowledged (or answered "no such session": gone either way).
    pub(crate) acked: bool,
    /// A "log out everywhere", which finds the session through the user's
    /// index rather than by its id.
    pub(crate) by_user: bool,
}

/// One session's facts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Facts {
    /// Its node (the bridge or app that created it).
    pub(crate) home: Node,
    /// Its user.
    pub(crate) uid: String,
    /// Writes by field (the create's fields included).
    pub(crate) writes: HashMap<String, Vec<Write>>,
    /// Logouts.
    pub(crate) logouts: Vec<Logout>,
    /// Increment requests (ids into the op list).
    pub(crate) increments: Vec<u64>,
    /// When its creation was answered.
    pub(crate) created: f64,
}

impl Facts {
    /// When the first logout of any fate was sent.
    pub(crate) fn first_logout(&self) -> Option<f64> {
        self.logouts.iter().map(|l| l.start).reduce(f64::min)
    }
}

/// Facts of every session whose creation was acknowledged.
pub(crate) fn gather(ops: &[Op]) -> HashMap<String, Facts> {
    let mut out: HashMap<String, Facts> = HashMap::new();
    let logout = |out: &mut HashMap<String, Facts>, id: &str, op: &Op, acked: bool| {
        if let Some(f) = out.get_mut(id) {
            f.logouts.push(Logout {
                op: op.id,
                start: op.start_ms,
                end: op.end_ms,
                acked,
                by_user: op.op == "app_logout_everywhere",
            });
        }
    };
    for op in ops {
        if op.client == "sweep" {
            continue;
        }
        let ok = op.outcome == Outcome::Ok;
        let gone_or_ok = op.outcome != Outcome::Error;
        match op.op.as_str() {
            "create" | "app_login" => {
                if let Some(old) = &op.old_session {
                    logout(&mut out, old, op, ok);
                }
                if let (true, Some(id)) = (ok, &op.session) {
                    let mut facts = Facts {
                        home: op.node,
                        uid: op.uid.clone().unwrap_or_default(),
                        created: op.end_ms,
                        ..Facts::default()
                    };
                    for (field, value) in &op.wrote {
                        facts.writes.entry(field.clone()).or_default().push(Write {
                            op: op.id,
                            value: value.clone(),
                            start: op.start_ms,
                            end: op.end_ms,
                            acked: true,
                        });
                    }
                    out.insert(id.clone(), facts);
                }
            }
            "patch" => {
                let Some(f) = op.session.as_ref().and_then(|id| out.get_mut(id)) else {
                    continue;
                };
                if op.outcome == Outcome::NotFound {
                    continue;
                }
                for (field, value) in &op.wrote {
                    f.writes.entry(field.clone()).or_default().push(Write {
                        op: op.id,
                        value: value.clone(),
                        start: op.start_ms,
                        end: op.end_ms,
                        acked: ok,
                    });
                }
            }
            "increment" => {
                if let Some(f) = op.session.as_ref().and_then(|id| out.get_mut(id)) {
                    f.increments.push(op.id);
                }
            }
            "logout" | "app_logout" => {
                if let Some(id) = &op.session {
                    logout(&mut out, id, op, gone_or_ok);
                }
            }
            "app_logout_everywhere" => {
                let Some(uid) = &op.uid else { continue };
                // The app revokes only for a browser still logged in: one
                // whose session an earlier logout (its own "log out
                // everywhere", say) already ended is redirected the same
                // way without revoking anything, so its request promises
                // nothing about the user's other sessions.
                let logged_in = op
                    .session
                    .as_ref()
                    .and_then(|id| out.get(id))
                    .is_some_and(|f| !f.logouts.iter().any(|l| l.acked && l.end < op.start_ms));
                // Sessions of the user whose creation was answered before
                // this request was sent must go; those created meanwhile
                // may or may not.
                let ids: Vec<(String, bool)> = out
                    .iter()
                    .filter(|(_, f)| &f.uid == uid && f.created < op.end_ms)
                    .map(|(id, f)| (id.clone(), f.created < op.start_ms))
                    .collect();
                for (id, before) in ids.into_iter().filter(|_| logged_in) {
                    logout(&mut out, &id, op, ok && before);
                }
                // The browser's own session, whatever its user.
                if let Some(id) = &op.session {
                    logout(&mut out, id, op, ok);
                }
            }
            _ => {}
        }
    }
    out
}
