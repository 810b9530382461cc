//! Fuzz target: soap-bridge's TOML configuration (`Config::from_toml`,
//! then `validate`, `codec`, `sessions_config` and the timeouts, as the
//! binary does before serving).
//!
//! Checked: never a panic; a config that validates also yields its codec
//! and `Sessions` settings; the secrets (`[auth]` token or password,
//! `[llng] key`) never show in `Debug`, which reaches the logs. Limit: 256
//! bytes per input byte plus 1 MiB allocated at once.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memorycached_fuzz::within;
use soap_bridge::config::Auth;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    within("bridge config", 256 * data.len() + (1 << 20), || {
        let Ok(config) = soap_bridge::Config::from_toml(text) else {
            return;
        };
        let debug = format!("{config:?}");
        let mut secrets: Vec<&str> = Vec::new();
        let mut user = "";
        match &config.auth {
            Some(Auth::Bearer { token }) => secrets.push(token),
            Some(Auth::Basic { user: u, password }) => {
                secrets.push(password);
                user = u;
            }
            None => {}
        }
        secrets.extend(config.llng.key.as_deref());
        let mut bare = config.clone();
        bare.auth = None;
        bare.llng.key = None;
        let bare_debug = format!("{bare:?}");
        for s in secrets {
            // Only secrets that could not be there for another reason.
            if s.len() >= 6
                && !bare_debug.contains(s)
                && !user.contains(s)
                && !"Bearer(<redacted>)Basic(".contains(s)
            {
                assert!(!debug.contains(s), "Debug shows a secret: {debug}");
            }
        }
        if config.validate().is_ok() {
            assert!(config.codec().is_ok());
            assert!(config.sessions_config().is_ok(), "{config:?}");
            let _ = (
                config.header_timeout(),
                config.body_timeout(),
                config.shutdown_grace(),
            );
        }
    });
});
