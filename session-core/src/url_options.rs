//! The query options of a store URL (`scheme://hosts?key=value&...`), for
//! backend authors: one table of keys per backend, parsed the same way by
//! every backend.
//!
//! A backend lists its query keys once, as a slice of [`UrlOption`]s; that
//! one list drives parsing ([`apply_query`]), the unknown-key message (which
//! names every known key) and, in the backend's own tests, the check that
//! its docs' table lists exactly those keys. The rules are the same for
//! every backend, so a URL means the same thing whichever store it names:
//!
//! - `key=value` pairs separated by `&`; an empty pair (`a=1&&b=2`) is
//!   skipped;
//! - an unknown key, a repeated key or a pair without `=` is an error, never
//!   ignored: a typo must not silently fall back to a default;
//! - values are taken as written; an option that wants percent-decoding does
//!   it in its own setter.
//!
//! ```
//! use std::time::Duration;
//! use session_core::url_options::{apply_query, millis, UrlOption};
//!
//! #[derive(Default)]
//! struct MyConfig { timeout: Duration, verbose: bool }
//!
//! const OPTIONS: &[UrlOption<MyConfig>] = &[
//!     UrlOption { key: "timeout_ms", set: |c, v| { c.timeout = millis(v)?; Ok(()) } },
//!     UrlOption { key: "verbose", set: |c, v| {
//!         c.verbose = v.parse().map_err(|_| "true or false")?;
//!         Ok(())
//!     } },
//! ];
//!
//! let mut config = MyConfig::default();
//! apply_query(OPTIONS, &mut config, Some("timeout_ms=250&verbose=true")).unwrap();
//! assert_eq!(config.timeout, Duration::from_millis(250));
//! let err = apply_query(OPTIONS, &mut config, Some("timeuot_ms=5")).unwrap_err();
//! assert!(err.contains("timeuot_ms") && err.contains("known: timeout_ms, verbose"));
//! ```

use std::time::Duration;

/// One query key of a store URL: its name and how it is applied to a
/// configuration of type `C`.
pub struct UrlOption<C> {
    /// The key as written in the URL (`timeout_ms`).
    pub key: &'static str,
    /// Applies the value to the configuration, or says what was expected
    /// instead (`"milliseconds"`, `"meta or classic"`): the error message
    /// reads `key="value": expected <that>`.
    pub set: fn(&mut C, &str) -> Result<(), &'static str>,
}

/// Parses a whole number of milliseconds (`timeout_ms=500`), the unit of
/// every duration in a store URL; what was expected otherwise, for a
/// [`UrlOption::set`].
pub fn millis(value: &str) -> Result<Duration, &'static str> {
    value
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| "milliseconds")
}

/// Applies the query part of a URL (what follows `?`, if anything) to
/// `config`, key by key, with the rules in the [module docs](self).
///
/// # Errors
///
/// The message of a configuration error, for the caller to wrap in its own
/// error type: a pair without `=`, a key given twice, an unknown key (the
/// message lists the known ones), or a value its option refused.
pub fn apply_query<C>(
    options: &[UrlOption<C>],
    config: &mut C,
    query: Option<&str>,
) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("query item {pair:?} is not key=value"))?;
        if seen.contains(&key) {
            return Err(format!("query key {key:?} given twice"));
        }
        seen.push(key);
        let option = options.iter().find(|o| o.key == key).ok_or_else(|| {
            let known: Vec<&str> = options.iter().map(|o| o.key).collect();
            format!("unknown query key {key:?} (known: {})", known.join(", "))
        })?;
        (option.set)(config, value)
            .map_err(|expected| format!("{key}={value:?}: expected {expected}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Config {
        timeout: Duration,
        name: String,
    }

    const OPTIONS: &[UrlOption<Config>] = &[
        UrlOption {
            key: "timeout_ms",
            set: |c, v| {
                c.timeout = millis(v)?;
                Ok(())
            },
        },
        UrlOption {
            key: "name",
            set: |c, v| {
                if v.is_empty() {
                    return Err("a name");
                }
                c.name = v.to_owned();
                Ok(())
            },
        },
    ];

    fn parse(query: Option<&str>) -> Result<Config, String> {
        let mut config = Config::default();
        apply_query(OPTIONS, &mut config, query)?;
        Ok(config)
    }

    #[test]
    fn millis_reads_whole_milliseconds_only() {
        assert_eq!(millis("0"), Ok(Duration::ZERO));
        assert_eq!(millis("1500"), Ok(Duration::from_millis(1500)));
        for bad in ["", "-1", "1.5", "1s", " 1", "99999999999999999999"] {
            assert_eq!(millis(bad), Err("milliseconds"), "{bad:?}");
        }
    }

    #[test]
    fn every_key_is_applied_and_none_is_required() {
        assert_eq!(parse(None), Ok(Config::default()));
        assert_eq!(parse(Some("")), Ok(Config::default()));
        let c = parse(Some("timeout_ms=20&&name=x&")).unwrap();
        assert_eq!(
            c,
            Config {
                timeout: Duration::from_millis(20),
                name: "x".into()
            }
        );
    }

    #[test]
    fn values_are_taken_as_written() {
        // '=' after the first belongs to the value; no percent-decoding.
        assert_eq!(parse(Some("name=a=b%20")).unwrap().name, "a=b%20");
    }

    #[test]
    fn errors_name_the_offending_part() {
        let cases = [
            ("timeout_ms", "query item \"timeout_ms\" is not key=value"),
            ("name=a&name=b", "query key \"name\" given twice"),
            (
                "timeuot_ms=5",
                "unknown query key \"timeuot_ms\" (known: timeout_ms, name)",
            ),
            ("timeout_ms=5s", "timeout_ms=\"5s\": expected milliseconds"),
            ("name=", "name=\"\": expected a name"),
        ];
        for (query, message) in cases {
            assert_eq!(parse(Some(query)), Err(message.to_owned()), "{query}");
        }
    }

    #[test]
    fn a_refused_value_stops_before_later_keys() {
        let mut config = Config::default();
        assert!(apply_query(OPTIONS, &mut config, Some("timeout_ms=x&name=y")).is_err());
        assert_eq!(config.name, "");
    }
}
