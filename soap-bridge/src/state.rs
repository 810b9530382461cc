//! [`AppState`]: what every request handler of every surface is given.
//!
//! Built by the server's `app_state`; read by the handlers of every
//! surface. It imports only what it holds (the service, the
//! counters, the settings, the admin logins) and never a surface, so any
//! surface can import it.

use std::sync::Arc;

use crate::config::Config;
use crate::logins::AdminState;
use crate::metrics::Metrics;
use crate::service::Service;

/// Everything a request handler needs.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The operations.
    pub service: Service,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// The settings (auth, limits).
    pub config: Arc<Config>,
    /// The logins of the `/admin` pages.
    pub admin: Arc<AdminState>,
}
