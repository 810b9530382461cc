//! Session values as a collapsible tree: nested objects and lists become
//! `<details>`/`<summary>` elements (no JavaScript needed to open and
//! close them), scalars are shown with their JSON type. Every text goes
//! through maud's escaping.
//!
//! A leaf: imports no module of the crate.

use maud::{Markup, html};
use serde_json::Value;

/// Nesting shown as a tree; deeper values are shown as JSON text.
const MAX_DEPTH: usize = 32;

/// The short type label of a value ("string", "object · 3").
pub(crate) fn type_label(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "boolean".into(),
        Value::Number(_) => "number".into(),
        Value::String(s) => format!("string · {} chars", s.chars().count()),
        Value::Array(a) => format!("list · {} items", a.len()),
        Value::Object(m) => format!("object · {} fields", m.len()),
    }
}

/// A value as a tree node; objects and lists at `depth` < 2 start open.
pub(crate) fn node(v: &Value, depth: usize) -> Markup {
    if depth >= MAX_DEPTH {
        return html! { code.json { (v.to_string()) } };
    }
    match v {
        Value::Object(m) if !m.is_empty() => html! {
            details open[depth < 2] {
                summary.type { (type_label(v)) }
                ul.tree {
                    @for (k, child) in m {
                        li { span.key { (k) } ": " (node(child, depth + 1)) }
                    }
                }
            }
        },
        Value::Array(a) if !a.is_empty() => html! {
            details open[depth < 2] {
                summary.type { (type_label(v)) }
                ol.tree start="0" {
                    @for child in a {
                        li { (node(child, depth + 1)) }
                    }
                }
            }
        },
        Value::Object(_) => html! { span.empty { "{} (empty object)" } },
        Value::Array(_) => html! { span.empty { "[] (empty list)" } },
        Value::String(s) => html! { span.str { (s) } },
        Value::Number(n) => html! { span.num { (n.to_string()) } },
        Value::Bool(b) => html! { span.bool { (b.to_string()) } },
        Value::Null => html! { span.null { "null" } },
    }
}

/// The edit form's starting text and type for a value.
pub(crate) fn edit_text(v: &Value) -> (&'static str, String) {
    match v {
        Value::String(s) => ("string", s.clone()),
        Value::Number(n) => ("number", n.to_string()),
        other => (
            "json",
            serde_json::to_string_pretty(other).unwrap_or_default(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_nests() {
        let v = serde_json::json!({"a": ["<script>alert(1)</script>", {"b": null}], "e": {}});
        let html = node(&v, 0).into_string();
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("<details open>"));
        assert!(html.contains("null"));
        let mut deep = Value::Null;
        for _ in 0..100 {
            deep = Value::Array(vec![deep]);
        }
        assert!(node(&deep, 0).into_string().contains("code class=\"json\""));
    }
}
