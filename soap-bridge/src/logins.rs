//! The admin logins kept in this process ([`AdminState`]), what a handler
//! knows of one (`Admin`), and the one-shot messages a login carries to
//! its next page (`Flash`).
//!
//! A login is a random 256-bit id, kept in memory with its CSRF token and
//! last use, and named by the cookie `mc_admin`. A login unused for the
//! idle timeout is gone; so is every login when the bridge restarts (each
//! bridge process has its own table: behind a load balancer, pin `/admin`
//! to one instance). The form, the cookie's attributes and the credential
//! check are the admin surface's (`surfaces/admin`).
//!
//! A leaf: it imports only `credentials` (for tokens), so that
//! the app state can hold the table and the admin surface can read it
//! without either importing the other.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};

use crate::credentials;

/// Cookie naming an admin's login.
pub(crate) const LOGIN_COOKIE: &str = "mc_admin";
/// Most logins kept at once; the least recently used goes first.
const MAX_LOGINS: usize = 1000;

/// A message shown once on the next page (the outcome of an action).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Flash {
    /// True for success, false for a refusal or failure.
    pub ok: bool,
    /// The text.
    pub text: String,
}

#[derive(Debug)]
struct Login {
    csrf: String,
    last_seen: Instant,
    flash: Option<Flash>,
}

/// What a handler knows of the logged-in admin.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// The login id (the cookie's value).
    pub id: String,
    /// The CSRF token every form of this login carries.
    pub csrf: String,
    /// The message left by the last action, taken.
    pub flash: Option<Flash>,
}

/// The logins of this process.
#[derive(Debug, Default)]
pub struct AdminState {
    logins: Mutex<HashMap<String, Login>>,
}

impl AdminState {
    fn table(&self) -> MutexGuard<'_, HashMap<String, Login>> {
        // A panic while holding the lock cannot leave the map half-updated
        // in a way that matters (each change is one insert or remove).
        self.logins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new login with a fresh id and CSRF token; returns its id. Drops
    /// logins idle for `idle`, and the least recently used one when full.
    pub(crate) fn begin(&self, idle: Duration) -> Result<String, getrandom::Error> {
        let id = credentials::token()?;
        let login = Login {
            csrf: credentials::token()?,
            last_seen: Instant::now(),
            flash: None,
        };
        let mut table = self.table();
        table.retain(|_, l| l.last_seen.elapsed() < idle);
        if table.len() >= MAX_LOGINS
            && let Some(oldest) = table
                .iter()
                .min_by_key(|(_, l)| l.last_seen)
                .map(|(k, _)| k.clone())
        {
            table.remove(&oldest);
        }
        table.insert(id.clone(), login);
        Ok(id)
    }

    /// The admin logged in by the request's cookie, if any and not idle
    /// too long; marks the login used and takes its flash message.
    pub(crate) fn current(&self, headers: &HeaderMap, idle: Duration) -> Option<Admin> {
        let id = cookie(headers, LOGIN_COOKIE)?;
        let mut table = self.table();
        let login = table.get_mut(id)?;
        if login.last_seen.elapsed() >= idle {
            table.remove(id);
            return None;
        }
        login.last_seen = Instant::now();
        Some(Admin {
            id: id.to_owned(),
            csrf: login.csrf.clone(),
            flash: login.flash.take(),
        })
    }

    /// Leaves a message for the login's next page.
    pub(crate) fn flash(&self, admin: &Admin, ok: bool, text: impl Into<String>) {
        if let Some(login) = self.table().get_mut(&admin.id) {
            login.flash = Some(Flash {
                ok,
                text: text.into(),
            });
        }
    }

    /// Ends a login (logout).
    pub(crate) fn end(&self, id: &str) {
        self.table().remove(id);
    }
}

/// A cookie's value from the request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
