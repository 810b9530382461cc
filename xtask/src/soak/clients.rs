//! The load's three clients, each answer classified the same way: the JSON
//! mirror (reqwest), the original SOAP service (a hand-written SOAP 1.1
//! envelope over HTTP; the answer's flat fields read with a small scanner,
//! enough for the scalar fields the soak writes), and the example app
//! (a cookie jar per simulated browser).
//!
//! Classes of errors: the JSON `code` (`store_error`, `not_found`, ...),
//! `soap:Client` / `soap:Server` for SOAP faults, `app:STATUS` for the
//! app's error pages; `transport:connect` (refused: nothing was sent),
//! `transport:timeout` and `transport:io` when no answer came, and
//! `untyped:HTTP N` for an answer that is no error of the documented form.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::history::Outcome;

/// How long a client waits for any answer: far above the error bound, so
/// a slow answer is measured rather than cut.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A classified answer.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    /// What happened.
    pub(crate) outcome: Outcome,
    /// The HTTP status, when one came.
    pub(crate) status: Option<u16>,
    /// The error class.
    pub(crate) class: Option<String>,
    /// The bridge's `delivery` for store errors.
    pub(crate) delivery: Option<String>,
    /// A JSON answer's body (create's id, a read's fields, an increment's
    /// value), or the fields of a SOAP read.
    pub(crate) body: Option<Value>,
    /// Set-Cookie `id=` of an app answer (`Some("")` when removed).
    pub(crate) cookie: Option<String>,
}

impl Answer {
    fn transport(e: &reqwest::Error) -> Answer {
        let class = if e.is_connect() {
            "transport:connect"
        } else if e.is_timeout() {
            "transport:timeout"
        } else {
            "transport:io"
        };
        Answer {
            outcome: Outcome::Error,
            status: None,
            class: Some(class.to_owned()),
            delivery: None,
            body: None,
            cookie: None,
        }
    }

    fn plain(outcome: Outcome, status: u16) -> Answer {
        Answer {
            outcome,
            status: Some(status),
            class: None,
            delivery: None,
            body: None,
            cookie: None,
        }
    }
}

/// The HTTP client of the JSON and SOAP load: no connection reuse, so a
/// restarted bridge never meets a stale pooled connection (the soak
/// measures the bridge, not a client's pool).
pub(crate) fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .build()?)
}

/// A browser of the app: its own cookie jar, redirects not followed.
pub(crate) fn browser() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(CLIENT_TIMEOUT)
        .pool_max_idle_per_host(0)
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Sends a JSON request; `body` `None` sends none.
pub(crate) async fn json(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Answer {
    let mut request = http.request(method, url);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Answer::transport(&e),
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return Answer::transport(&e),
    };
    let parsed: Option<Value> = serde_json::from_str(&text).ok();
    if (200..300).contains(&status) {
        let mut a = Answer::plain(Outcome::Ok, status);
        a.body = parsed;
        return a;
    }
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    match code {
        Some(code) if status == 404 && code == "not_found" => {
            Answer::plain(Outcome::NotFound, status)
        }
        Some(code) => Answer {
            outcome: Outcome::Error,
            status: Some(status),
            class: Some(code),
            delivery: parsed
                .as_ref()
                .and_then(|v| v.get("delivery"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            body: parsed,
            cookie: None,
        },
        None => Answer {
            outcome: Outcome::Error,
            status: Some(status),
            class: Some(format!("untyped:HTTP {status}")),
            delivery: None,
            body: None,
            cookie: None,
        },
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A SOAP parameter element.
pub(crate) fn soap_scalar(name: &str, value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_i64() => format!("<{name} xsi:type=\"xsd:int\">{n}</{name}>"),
        Value::String(s) => format!("<{name} xsi:type=\"xsd:string\">{}</{name}>", xml_escape(s)),
        other => format!(
            "<{name} xsi:type=\"xsd:string\">{}</{name}>",
            xml_escape(&other.to_string())
        ),
    }
}

/// A SOAP struct parameter holding `fields`.
pub(crate) fn soap_struct(name: &str, fields: &Map<String, Value>) -> String {
    let inner: String = fields.iter().map(|(k, v)| soap_scalar(k, v)).collect();
    format!("<{name}>{inner}</{name}>")
}

/// Calls `method` on the bridge at `base` with encoded `params`. A
/// result is returned as the text inside the response element.
pub(crate) async fn soap(http: &reqwest::Client, base: &str, method: &str, params: &str) -> Answer {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body><{method} xmlns=\"urn:MemcachedSOAPClass\">{params}</{method}></soap:Body></soap:Envelope>"
    );
    let response = match http
        .post(format!("{base}/"))
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", format!("\"urn:MemcachedSOAPClass#{method}\""))
        .body(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Answer::transport(&e),
    };
    let status = response.status().as_u16();
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return Answer::transport(&e),
    };
    if status == 200 {
        let open = format!("<{method}Response");
        let close = format!("</{method}Response>");
        let inner = text
            .find(&open)
            .and_then(|i| text[i..].find('>').map(|j| i + j + 1))
            .and_then(|start| {
                text[start..]
                    .find(&close)
                    .map(|end| &text[start..start + end])
            });
        if let Some(inner) = inner {
            let mut a = Answer::plain(Outcome::Ok, status);
            a.body = Some(Value::String(inner.to_owned()));
            return a;
        }
    }
    for code in ["soap:Client", "soap:Server"] {
        if status == 500 && text.contains(&format!("<faultcode>{code}</faultcode>")) {
            let mut a = Answer::plain(Outcome::Error, status);
            a.class = Some(code.to_owned());
            return a;
        }
    }
    let mut a = Answer::plain(Outcome::Error, status);
    a.class = Some(format!("untyped:HTTP {status}"));
    a
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// The flat fields of a SOAP `getSession` result (`<result>` or a struct
/// element holding `<name xsi:type=...>text</name>` children); `None` for
/// the empty result of an unknown id. Nested values are skipped.
pub(crate) fn soap_fields(inner: &str) -> Option<BTreeMap<String, Value>> {
    let inner = inner.trim();
    // The result element: `<result .../>` (empty) or `<result ...>...</result>`.
    let head_end = inner.find('>')?;
    if inner[..head_end].ends_with('/') {
        return None;
    }
    let mut rest = &inner[head_end + 1..];
    let mut out = BTreeMap::new();
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        if rest.starts_with('/') {
            break; // the result's own end tag
        }
        let Some(tag_end) = rest.find('>') else { break };
        let tag = &rest[..tag_end];
        let name = tag.split_whitespace().next().unwrap_or("").to_owned();
        if tag.ends_with('/') {
            out.insert(
                name.trim_end_matches('/').to_owned(),
                Value::String(String::new()),
            );
            rest = &rest[tag_end + 1..];
            continue;
        }
        let close = format!("</{name}>");
        let body_start = tag_end + 1;
        let Some(end) = rest[body_start..].find(&close) else {
            break;
        };
        let text = &rest[body_start..body_start + end];
        if !text.contains('<') {
            let value = if tag.contains("xsd:int") || tag.contains("xsd:long") {
                text.parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(unescape(text)))
            } else {
                Value::String(unescape(text))
            };
            out.insert(name, value);
        }
        rest = &rest[body_start + end + close.len()..];
    }
    Some(out)
}

/// The `id` cookie set (or removed: `""`) by an app answer.
fn set_cookie_id(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::SET_COOKIE) {
        let Ok(text) = value.to_str() else { continue };
        let Some(pair) = text.split(';').next() else {
            continue;
        };
        if let Some(v) = pair.trim().strip_prefix("id=") {
            let removed = text.to_ascii_lowercase().contains("max-age=0");
            return Some(if removed { String::new() } else { v.to_owned() });
        }
    }
    None
}

/// An app request: a GET, or a POST of `form`.
pub(crate) async fn app(
    browser: &reqwest::Client,
    url: String,
    form: Option<&[(&str, &str)]>,
) -> Answer {
    let request = match form {
        Some(form) => browser.post(url).form(form),
        None => browser.get(url),
    };
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => return Answer::transport(&e),
    };
    let status = response.status().as_u16();
    let cookie = set_cookie_id(response.headers());
    let text = match response.text().await {
        Ok(t) => t,
        Err(e) => return Answer::transport(&e),
    };
    let mut a = if (200..400).contains(&status) {
        Answer::plain(Outcome::Ok, status)
    } else {
        let mut a = Answer::plain(Outcome::Error, status);
        a.class = Some(format!("app:{status}"));
        a
    };
    a.body = Some(json!(text));
    a.cookie = cookie;
    a
}

/// The store id (32 hex) of the app's `id` cookie: the hex of the 16
/// bytes its URL-safe base64 holds (tower-sessions-memorycached's `id.rs`).
pub(crate) fn app_session_id(cookie: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie)
        .ok()?;
    (bytes.len() == 16).then(|| bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The text of a scalar SOAP result (`<result ...>TEXT</result>`).
pub(crate) fn soap_text(inner: &str) -> Option<String> {
    let inner = inner.trim();
    let start = inner.find('>')? + 1;
    let end = inner[start..].find('<')? + start;
    Some(unescape(&inner[start..end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soap_results_and_cookie_ids() {
        let inner = "<result xmlns=\"\"><f0 xsi:type=\"xsd:string\">v1&amp;2</f0><n xsi:type=\"xsd:int\">7</n><e xsi:type=\"xsd:string\" /><l soapenc:arrayType=\"x\"><item>1</item></l></result>";
        let fields = soap_fields(inner).unwrap_or_default();
        assert_eq!(fields.get("f0"), Some(&json!("v1&2")));
        assert_eq!(fields.get("n"), Some(&json!(7)));
        assert_eq!(fields.get("e"), Some(&json!("")));
        assert!(!fields.contains_key("l"));
        assert_eq!(soap_fields("<result xmlns=\"\" />"), None);
        // The example of tower-sessions-memorycached's id.rs.
        assert_eq!(
            app_session_id("AAECAwQFBgcICQoLDA0ODw").as_deref(),
            Some("000102030405060708090a0b0c0d0e0f")
        );
        assert_eq!(app_session_id("short"), None);
    }
}
