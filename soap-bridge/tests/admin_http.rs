//! The `/admin` explorer over plain HTTP, where a browser would not let a
//! test misbehave: forms without (or with a wrong) CSRF token are refused
//! and change nothing, actions are POST only, the login wants the bridge's
//! credentials, the cookies and security headers are as documented, and
//! the explorer is off unless enabled (and refused without `[auth]`).

// Test helpers panic on failure: that panic is the test report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;

use common::{Bridge, Reply, request};
use serde_json::json;
use soap_bridge::Config;
use soap_bridge::config::{AdminConfig, Auth};

const AUTH: (&str, &str) = ("Authorization", "Bearer http-test-token");
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn config(admin: bool) -> Config {
    Config {
        principal: Some("uid".into()),
        principal_index: true,
        auth: Some(Auth::Bearer {
            token: "http-test-token".into(),
        }),
        admin: AdminConfig {
            enabled: admin,
            ..AdminConfig::default()
        },
        ..Config::default()
    }
}

/// The value of `name="NAME" value="..."` in a page.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..].split('"').next().unwrap().to_owned()
}

/// `name=value` of the response's Set-Cookie for `name`.
fn set_cookie<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.as_str())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", r.headers))
}

fn cookie_pair(set: &str) -> String {
    set.split(';').next().unwrap().to_owned()
}

/// Logs in; returns the login cookie (`mc_admin=...`).
async fn login(a: SocketAddr) -> String {
    let form = request(a, "GET", "/admin/login", &[], b"").await;
    assert_eq!(form.status, 200);
    let pre = set_cookie(&form, "mc_admin_form");
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );
    let token = hidden(&form.body, "csrf");
    let cookie = cookie_pair(pre);
    let body = format!("csrf={token}&token=http-test-token");
    let r = request(
        a,
        "POST",
        "/admin/login",
        &[FORM, ("Cookie", &cookie)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/admin/"));
    let set = set_cookie(&r, "mc_admin");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/admin"),
        "{set}"
    );
    cookie_pair(set)
}

fn assert_protected(r: &Reply) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part}");
    }
    assert!(
        !csp.contains("script-src"),
        "no script is ever allowed: {csp}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_csrf_token_are_refused() {
    let bridge = Bridge::start(config(true)).await;
    let a = bridge.addr;
    let r = request(
        a,
        "POST",
        "/sessions",
        &[AUTH, ("Content-Type", "application/json")],
        json!({"uid": "carol"}).to_string().as_bytes(),
    )
    .await;
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let cookie = login(a).await;
    let page = request(
        a,
        "GET",
        &format!("/admin/session?id={id}"),
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_protected(&page);
    let csrf = hidden(&page.body, "csrf");
    let version = hidden(&page.body, "version");
    let exists = || async {
        request(a, "GET", &format!("/sessions/{id}"), &[AUTH], b"")
            .await
            .status
            == 200
    };

    // The right token but for its first digit.
    let flip = if csrf.starts_with('0') { "1" } else { "0" };
    let wrong = format!("{flip}{}", &csrf[1..]);
    for body in [
        format!("id={id}&version={version}"),
        format!("id={id}&version={version}&csrf="),
        format!("id={id}&version={version}&csrf={wrong}"),
    ] {
        let r = request(
            a,
            "POST",
            "/admin/session/delete",
            &[FORM, ("Cookie", &cookie)],
            body.as_bytes(),
        )
        .await;
        assert_eq!(r.status, 403, "{body}: {}", r.body);
        assert!(r.body.contains("CSRF token"), "{}", r.body);
        assert_protected(&r);
        assert!(exists().await, "a refused form deleted the session");
    }
    // The right token without the login cookie: refused too.
    let with_token = format!("id={id}&version={version}&csrf={csrf}");
    let r = request(
        a,
        "POST",
        "/admin/session/delete",
        &[FORM],
        with_token.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(exists().await);
    // Actions are POST only.
    let r = request(
        a,
        "GET",
        &format!("/admin/session/delete?{with_token}"),
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(r.status, 405);
    assert!(exists().await);
    // With both, the delete happens.
    let r = request(
        a,
        "POST",
        "/admin/session/delete",
        &[FORM, ("Cookie", &cookie)],
        with_token.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(!exists().await, "the session survived its delete");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_wants_the_bridge_credentials_and_its_form_token() {
    let bridge = Bridge::start(config(true)).await;
    let a = bridge.addr;
    // Pages without a login lead to the form; a bearer header is not a login.
    for path in ["/admin/", "/admin/sessions", "/admin/session?id=x"] {
        let r = request(a, "GET", path, &[AUTH], b"").await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/admin/login"));
        assert_protected(&r);
    }
    let form = request(a, "GET", "/admin/login", &[], b"").await;
    assert_protected(&form);
    assert!(!form.body.contains("<script"), "{}", form.body);
    let token = hidden(&form.body, "csrf");
    let cookie = cookie_pair(set_cookie(&form, "mc_admin_form"));
    // The right credentials without the form's token (a cross-site post).
    let r = request(a, "POST", "/admin/login", &[FORM], b"token=http-test-token").await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The form's token with wrong credentials.
    let body = format!("csrf={token}&token=nope");
    let r = request(
        a,
        "POST",
        "/admin/login",
        &[FORM, ("Cookie", &cookie)],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("Wrong credentials"));
    // Logged in: the pages answer; logged out: they do not.
    let login_cookie = login(a).await;
    let home = request(a, "GET", "/admin/", &[("Cookie", &login_cookie)], b"").await;
    assert_eq!(home.status, 200, "{}", home.body);
    let csrf = hidden(&home.body, "csrf");
    let list = request(
        a,
        "GET",
        "/admin/sessions",
        &[("Cookie", &login_cookie)],
        b"",
    )
    .await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("page-count"), "{}", list.body);
    let css = request(a, "GET", "/admin/admin.css", &[], b"").await;
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let out = format!("csrf={csrf}");
    let r = request(
        a,
        "POST",
        "/admin/logout",
        &[FORM, ("Cookie", &login_cookie)],
        out.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 303);
    let r = request(a, "GET", "/admin/", &[("Cookie", &login_cookie)], b"").await;
    assert_eq!(r.status, 303, "the login survived its logout");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explorer_is_off_unless_enabled_and_needs_auth() {
    let bridge = Bridge::start(config(false)).await;
    for path in ["/admin/", "/admin/login"] {
        let r = request(bridge.addr, "GET", path, &[AUTH], b"").await;
        assert_eq!(r.status, 404, "{path} served while disabled");
    }
    bridge.stop().await;
    let open = Config {
        auth: None,
        ..config(true)
    };
    let e = soap_bridge::app_state(open).unwrap_err();
    assert!(e.to_string().contains("[auth]"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_through_every_live_session_and_counts_them() {
    let bridge = Bridge::start(config(true)).await;
    let a = bridge.addr;
    let mut created = std::collections::BTreeSet::new();
    for n in 0..40 {
        let r = request(
            a,
            "POST",
            "/sessions",
            &[AUTH, ("Content-Type", "application/json")],
            json!({"uid": format!("user{}", n % 7), "n": n})
                .to_string()
                .as_bytes(),
        )
        .await;
        created.insert(r.json()["id"].as_str().unwrap().to_owned());
    }
    let cookie = login(a).await;
    let mut listed = std::collections::BTreeSet::new();
    let mut path = "/admin/sessions".to_owned();
    let mut pages = 0;
    loop {
        let page = request(a, "GET", &path, &[("Cookie", &cookie)], b"").await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        for chunk in page.body.split("/admin/session?id=").skip(1) {
            listed.insert(chunk[..32].to_owned());
        }
        let Some(at) = page.body.find("id=\"next\" href=\"") else {
            break;
        };
        let rest = &page.body[at + "id=\"next\" href=\"".len()..];
        path = rest[..rest.find('"').unwrap()].replace("&amp;", "&");
        assert!(pages < 20, "the pages never end");
    }
    assert!(pages >= 2, "40 sessions fit on one page of 25?");
    assert_eq!(
        listed, created,
        "every live session listed exactly as created"
    );
    let count = request(
        a,
        "GET",
        "/admin/sessions?count=1",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert!(
        count
            .body
            .contains("Whole store: <strong>40</strong> live session(s)"),
        "{}",
        count.body
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_user_index_a_user_shows_their_reverse_key_session() {
    let bridge = Bridge::start(Config {
        principal_index: false,
        ..config(true)
    })
    .await;
    let a = bridge.addr;
    let mut last = String::new();
    for n in 0..2 {
        let r = request(
            a,
            "POST",
            "/sessions",
            &[AUTH, ("Content-Type", "application/json")],
            json!({"uid": "dave", "n": n}).to_string().as_bytes(),
        )
        .await;
        last = r.json()["id"].as_str().unwrap().to_owned();
    }
    let cookie = login(a).await;
    let page = request(
        a,
        "GET",
        "/admin/user?uid=dave",
        &[("Cookie", &cookie)],
        b"",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("id=\"no-index\""), "{}", page.body);
    assert_eq!(page.body.matches("<section class=\"session\"").count(), 1);
    assert!(
        page.body.contains(&last),
        "the last login's session: {}",
        page.body
    );
    assert!(!page.body.contains("/admin/user/revoke"), "{}", page.body);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_basic_auth_the_login_asks_for_user_and_password() {
    let bridge = Bridge::start(Config {
        auth: Some(Auth::Basic {
            user: "ops".into(),
            password: "pa ss&word".into(),
        }),
        ..config(true)
    })
    .await;
    let a = bridge.addr;
    let mut outcomes = Vec::new();
    for (user, password) in [("ops", "wrong"), ("ops", "pa+ss%26word")] {
        let form = request(a, "GET", "/admin/login", &[], b"").await;
        assert!(form.body.contains("name=\"user\""), "{}", form.body);
        assert!(form.body.contains("name=\"password\""));
        let token = hidden(&form.body, "csrf");
        let cookie = cookie_pair(set_cookie(&form, "mc_admin_form"));
        let body = format!("csrf={token}&user={user}&password={password}");
        let r = request(
            a,
            "POST",
            "/admin/login",
            &[FORM, ("Cookie", &cookie)],
            body.as_bytes(),
        )
        .await;
        outcomes.push(r.status);
    }
    assert_eq!(outcomes, [401, 303]);
    bridge.stop().await;
}
