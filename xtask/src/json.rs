//! `--json` output: one document on stdout, built with a few lines instead of a crate.
//!
//! The documents are small and flat (a `models` array and a `summary` object), so a tiny
//! writer with correct string escaping does the job; the tests parse every document
//! with a real JSON parser to keep it honest. The schema is in the README.

use std::fmt::Write;

#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
}

impl Json {
    pub fn str(text: impl Into<String>) -> Json {
        Json::Str(text.into())
    }

    pub fn opt_str(text: Option<impl Into<String>>) -> Json {
        text.map_or(Json::Null, |t| Json::Str(t.into()))
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Float(x) if x.is_finite() => {
                let _ = write!(out, "{x:.3}");
            }
            Json::Float(_) => out.push_str("null"),
            Json::Str(s) => write_string(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Object(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(key, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// The fields every model record starts with.
pub fn model_fields(model: &crate::manifest::Model) -> Vec<(&'static str, Json)> {
    vec![
        ("name", Json::str(&model.name)),
        ("path", Json::str(model.path.as_str())),
        ("group", Json::opt_str(model.group.as_deref())),
        ("size", Json::Int(model.size)),
        ("sha256", Json::str(&model.sha256)),
    ]
}

fn write_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_render_as_json() {
        let doc = Json::Object(vec![
            ("s", Json::str("a\"b\\c\nd\u{1}é")),
            ("n", Json::Int(u64::MAX)),
            ("f", Json::Float(1.5)),
            ("nan", Json::Float(f64::NAN)),
            ("a", Json::Array(vec![Json::Null, Json::Bool(true)])),
            ("e", Json::Array(vec![])),
        ]);
        assert_eq!(
            doc.render(),
            r#"{"s":"a\"b\\c\nd\u0001é","n":18446744073709551615,"f":1.500,"nan":null,"a":[null,true],"e":[]}"#
        );
    }
}
