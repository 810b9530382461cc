//! Each kind of request the load sends: the request, its answer, its
//! history record, and what the load learns from it (a new session, one
//! that is gone).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{AppAction, Browser, Live, Shared};
use crate::soak::clients::{self, Answer};
use crate::soak::history::{Node, Op, Outcome, Record};

/// A new op record, started now.
fn begin(shared: &Shared, client: &str, op: &str, node: Node) -> Op {
    Op {
        id: shared.history.next_id(),
        client: client.to_owned(),
        op: op.to_owned(),
        node,
        start_ms: shared.history.now_ms(),
        ..Op::default()
    }
}

/// Completes `op` with `answer` and appends it.
fn finish(shared: &Shared, mut op: Op, answer: &Answer) -> Op {
    op.end_ms = shared.history.now_ms();
    op.outcome = answer.outcome;
    op.status = answer.status;
    op.class = answer.class.clone();
    op.delivery = answer.delivery.clone();
    shared.done.fetch_add(1, Ordering::Relaxed);
    if op.outcome == Outcome::Error {
        shared.errors.fetch_add(1, Ordering::Relaxed);
    }
    shared.history.append(&Record::Op(Box::new(op.clone())));
    op
}

fn forget(shared: &Shared, pred: impl Fn(&Live) -> bool) {
    shared
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|s| !pred(s));
}

fn remember(shared: &Shared, s: Live) {
    shared
        .known
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((s.id.clone(), s.node));
    shared
        .live
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(s);
}

pub(super) async fn create(shared: &Shared, uid: String, node: Node, soap: bool) {
    let mut op = begin(shared, if soap { "soap" } else { "json" }, "create", node);
    let value = format!("v{}", op.id);
    let mut fields = Map::new();
    fields.insert("uid".into(), json!(uid));
    fields.insert("f0".into(), json!(value));
    if !soap {
        fields.insert("n".into(), json!(0));
    }
    op.uid = Some(uid.clone());
    op.wrote = fields.clone().into_iter().collect();
    let base = shared.endpoints.bridge(node).to_owned();
    let mut answer = if soap {
        let params: String = fields
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                clients::soap_scalar(&format!("k{i}"), &json!(k))
                    + &clients::soap_scalar(&format!("v{i}"), v)
            })
            .collect();
        clients::soap(&shared.http, &base, "setSession", &params).await
    } else {
        clients::json(
            &shared.http,
            Method::POST,
            format!("{base}/sessions"),
            Some(Value::Object(fields)),
        )
        .await
    };
    let id = match (&answer.outcome, &answer.body) {
        (Outcome::Ok, Some(Value::String(inner))) if soap => clients::soap_text(inner),
        (Outcome::Ok, Some(body)) => body.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    if answer.outcome == Outcome::Ok && id.is_none() {
        answer.outcome = Outcome::Error;
        answer.class = Some("untyped:no id in the answer".into());
    }
    op.session = id.clone();
    finish(shared, op, &answer);
    if let Some(id) = id {
        remember(
            shared,
            Live {
                id,
                node,
                uid,
                app: false,
            },
        );
    }
}

pub(super) async fn read(shared: &Shared, s: &Live, node: Node, soap: bool, client: &str) {
    let client = if client.is_empty() {
        if soap { "soap" } else { "json" }
    } else {
        client
    };
    let mut op = begin(shared, client, "read", node);
    op.session = Some(s.id.clone());
    let base = shared.endpoints.bridge(node).to_owned();
    let mut answer = if soap {
        let params = clients::soap_scalar("id", &json!(s.id));
        let mut a = clients::soap(&shared.http, &base, "getSession", &params).await;
        if a.outcome == Outcome::Ok {
            match a
                .body
                .as_ref()
                .and_then(Value::as_str)
                .map(clients::soap_fields)
            {
                Some(Some(fields)) => op.read = Some(fields),
                _ => a.outcome = Outcome::NotFound,
            }
        }
        a
    } else {
        clients::json(
            &shared.http,
            Method::GET,
            format!("{base}/sessions/{}", s.id),
            None,
        )
        .await
    };
    if !soap && answer.outcome == Outcome::Ok {
        match answer.body.take() {
            Some(Value::Object(map)) => op.read = Some(map.into_iter().collect::<BTreeMap<_, _>>()),
            _ => {
                answer.outcome = Outcome::Error;
                answer.class = Some("untyped:read answer is no object".into());
            }
        }
    }
    finish(shared, op, &answer);
}

pub(super) async fn patch(shared: &Shared, s: &Live, field: String, soap: bool, pair: Option<u64>) {
    let mut op = begin(shared, if soap { "soap" } else { "json" }, "patch", s.node);
    op.session = Some(s.id.clone());
    op.pair = pair;
    let value = json!(format!("v{}", op.id));
    op.wrote.insert(field.clone(), value.clone());
    let base = shared.endpoints.bridge(s.node).to_owned();
    let mut fields = Map::new();
    fields.insert(field, value);
    let mut answer = if soap {
        let params =
            clients::soap_scalar("id", &json!(s.id)) + &clients::soap_struct("fields", &fields);
        soap_found(shared, &base, "updateSession", &params).await
    } else {
        clients::json(
            &shared.http,
            Method::PATCH,
            format!("{base}/sessions/{}", s.id),
            Some(Value::Object(fields)),
        )
        .await
    };
    answer.body = None;
    finish(shared, op, &answer);
}

/// A SOAP operation on one session that answers `false` when the session
/// is unknown: recorded as not found, as the JSON mirror's 404 is.
async fn soap_found(shared: &Shared, base: &str, operation: &str, params: &str) -> clients::Answer {
    let mut a = clients::soap(&shared.http, base, operation, params).await;
    if a.outcome == Outcome::Ok
        && a.body
            .as_ref()
            .and_then(Value::as_str)
            .and_then(clients::soap_text)
            .as_deref()
            == Some("false")
    {
        a.outcome = Outcome::NotFound;
    }
    a
}

pub(super) async fn increment(shared: &Shared, s: &Live) {
    let mut op = begin(shared, "json", "increment", s.node);
    op.session = Some(s.id.clone());
    op.counter = Some(("n".into(), 1));
    let base = shared.endpoints.bridge(s.node).to_owned();
    let answer = clients::json(
        &shared.http,
        Method::POST,
        format!("{base}/sessions/{}/increment", s.id),
        Some(json!({"field": "n", "by": 1})),
    )
    .await;
    op.value = answer
        .body
        .as_ref()
        .and_then(|b| b.get("value"))
        .and_then(Value::as_i64);
    finish(shared, op, &answer);
}

pub(super) async fn logout(shared: &Shared, s: &Live, soap: bool) {
    // No new request names it from now on.
    forget(shared, |x| x.id == s.id);
    let mut op = begin(shared, if soap { "soap" } else { "json" }, "logout", s.node);
    op.session = Some(s.id.clone());
    let base = shared.endpoints.bridge(s.node).to_owned();
    let answer = if soap {
        let params = clients::soap_scalar("id", &json!(s.id));
        soap_found(shared, &base, "deleteSession", &params).await
    } else {
        clients::json(
            &shared.http,
            Method::DELETE,
            format!("{base}/sessions/{}", s.id),
            None,
        )
        .await
    };
    finish(shared, op, &answer);
}

pub(super) async fn app(
    shared: &Shared,
    browser: usize,
    client: &reqwest::Client,
    state: &mut Browser,
    uid: &str,
    action: AppAction,
) {
    let base = shared.endpoints.app.clone();
    let name = format!("app-{browser}");
    let (op_name, path, form): (&str, &str, Option<Vec<(&str, &str)>>) = match action {
        AppAction::Login => ("app_login", "/login", Some(vec![("uid", uid)])),
        AppAction::Counter => ("app_counter", "/counter", None),
        AppAction::Logout => ("app_logout", "/logout", Some(vec![])),
        AppAction::LogoutEverywhere => {
            ("app_logout_everywhere", "/logout-everywhere", Some(vec![]))
        }
    };
    let mut op = begin(shared, &name, op_name, 'a');
    op.session = state.session.clone();
    if matches!(action, AppAction::Login | AppAction::LogoutEverywhere) {
        op.uid = Some(uid.to_owned());
    }
    if matches!(action, AppAction::Logout | AppAction::LogoutEverywhere)
        && let Some(id) = &state.session
    {
        forget(shared, |x| &x.id == id);
    }
    if matches!(action, AppAction::LogoutEverywhere) {
        forget(shared, |x| x.uid == uid);
    }
    let answer = clients::app(client, format!("{base}{path}"), form.as_deref()).await;
    let new_id = answer.cookie.as_deref().map(clients::app_session_id);
    match action {
        AppAction::Login => {
            op.old_session = state.session.clone();
            if let Some(old) = &state.session {
                forget(shared, |x| &x.id == old);
            }
            if answer.outcome == Outcome::Ok {
                op.wrote.insert("uid".into(), json!(uid));
                op.session = new_id.clone().flatten();
            }
        }
        AppAction::Counter => {
            op.value = answer
                .body
                .as_ref()
                .and_then(Value::as_str)
                .and_then(|t| t.strip_prefix("count="))
                .and_then(|n| n.trim().parse().ok());
        }
        AppAction::Logout | AppAction::LogoutEverywhere => {}
    }
    let op = finish(
        shared,
        op,
        &Answer {
            body: None,
            ..answer.clone()
        },
    );
    // The browser's session as its cookie now says.
    if let Some(new_id) = new_id {
        state.session = new_id;
    }
    if op.outcome == Outcome::Ok
        && let (AppAction::Login, Some(id)) = (action, &op.session)
    {
        remember(
            shared,
            Live {
                id: id.clone(),
                node: 'a',
                uid: uid.to_owned(),
                app: true,
            },
        );
    }
}
