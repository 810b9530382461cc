//! The `KEY=VALUE` / `KEY:=JSON` arguments of `sessionctl set`.
//!
//! HTTPie's convention, because it is the one people already type: `=` sets
//! a string (split at the first `=`, so the value may contain more), `:=`
//! sets any JSON value (a number, `null`, a list, an object). A key is
//! whatever stands before the first `=` (or `:=`); an empty key or an
//! argument with neither is a usage error that names the argument.

use serde_json::Value;
use session_core::SessionData;

/// Parses every `ARG` into one field map; later arguments win.
pub fn parse(args: &[String]) -> Result<SessionData, String> {
    let mut data = SessionData::new();
    for arg in args {
        let (key, value) = parse_one(arg)?;
        data.insert(key, value);
    }
    Ok(data)
}

fn parse_one(arg: &str) -> Result<(String, Value), String> {
    let Some(eq) = arg.find('=') else {
        return Err(format!(
            "argument {arg:?} is neither KEY=VALUE (a string) nor KEY:=JSON (a typed value)"
        ));
    };
    let (key, value, typed) = match arg[..eq].strip_suffix(':') {
        Some(key) => (key, &arg[eq + 1..], true),
        None => (&arg[..eq], &arg[eq + 1..], false),
    };
    if key.is_empty() {
        return Err(format!("argument {arg:?} has an empty key"));
    }
    let value = if typed {
        serde_json::from_str(value)
            .map_err(|e| format!("argument {arg:?}: {value:?} is not JSON ({e})"))?
    } else {
        Value::String(value.to_owned())
    };
    Ok((key.to_owned(), value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn strings_and_typed_values() {
        let data = parse(&args(&[
            "uid=jdoe",
            "expr=a=b",
            "empty=",
            "n:=42",
            "zip=00042",
            "groups:=[\"a\",\"b\"]",
            "nothing:=null",
            "url:=\"x:=y\"",
        ]))
        .unwrap();
        assert_eq!(
            Value::Object(data),
            json!({
                "uid": "jdoe", "expr": "a=b", "empty": "", "n": 42, "zip": "00042",
                "groups": ["a", "b"], "nothing": null, "url": "x:=y"
            })
        );
    }

    #[test]
    fn bad_arguments_are_named() {
        for bad in ["novalue", "=x", ":=1", "n:=not json"] {
            let err = parse(&args(&[bad])).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
