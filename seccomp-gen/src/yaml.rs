//! A small YAML writer for the SPO export (see docs/adr/0005-seccomp-export-formats.md).
//!
//! It writes any JSON value as block-style YAML: mappings and sequences indented by two spaces,
//! as `kubectl` shows objects. A string is written plain only when it is an identifier-like word
//! (letters, digits, `_`, `-`, `.`, `/`, starting with a letter or `_`) that YAML 1.1 or 1.2
//! would not read as another type (`no`, `on`, `null`, ...); every other string is double-quoted
//! with JSON's escapes (a double-quoted YAML scalar accepts them), and `\uXXXX` for the
//! characters JSON leaves raw but YAML does not accept (DEL, the C1 controls, U+2028, U+2029).

use serde_json::Value;

/// `value` as a YAML document (starting with `---`).
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::from("---\n");
    match value {
        Value::Object(_) | Value::Array(_) if !is_empty(value) => block(value, 0, &mut out),
        _ => {
            out.push_str(&scalar(value));
            out.push('\n');
        }
    }
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Words YAML 1.1 reads as booleans or null (compared ignoring ASCII case).
const RESERVED: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

fn string(s: &str) -> String {
    if plain_ok(s) {
        return s.to_owned();
    }
    // A JSON string literal is a double-quoted YAML scalar, but for what JSON leaves raw and YAML
    // does not accept there: DEL and the C1 controls (U+0085 is a line break to YAML 1.1), and
    // the line and paragraph separators. Those get YAML's `\uXXXX` escape.
    let json = Value::String(s.to_owned()).to_string();
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if matches!(c, '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}') {
            out.push_str(&format!("\\u{:04X}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Object(_) => "{}".to_owned(),
        Value::Array(_) => "[]".to_owned(),
        Value::String(s) => string(s),
        other => other.to_string(),
    }
}

fn nested(v: &Value) -> bool {
    matches!(v, Value::Object(_) | Value::Array(_)) && !is_empty(v)
}

fn indent(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes a non-empty mapping or sequence at `level` spaces.
fn block(v: &Value, level: usize, out: &mut String) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                indent(level, out);
                out.push_str(&string(key));
                out.push(':');
                if nested(value) {
                    out.push('\n');
                    block(value, level + 2, out);
                } else {
                    out.push(' ');
                    out.push_str(&scalar(value));
                    out.push('\n');
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                if nested(item) {
                    // The item's block, two spaces deeper, with its first indent replaced by
                    // the dash: "- key: value\n  key2: value".
                    let mut inner = String::new();
                    block(item, level + 2, &mut inner);
                    indent(level, out);
                    out.push_str("- ");
                    out.push_str(&inner[level + 2..]);
                } else {
                    indent(level, out);
                    out.push_str("- ");
                    out.push_str(&scalar(item));
                    out.push('\n');
                }
            }
        }
        _ => {
            indent(level, out);
            out.push_str(&scalar(v));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_style_with_quoted_strings() {
        let v = serde_json::json!({
            "a": "no", "b": [1, "x"], "c": {}, "d": [{"e": [], "f": true}, [2]], "g": "q\"\n",
            "h": "SCMP_ACT_ALLOW", "i": "1e3"
        });
        assert_eq!(
            to_yaml(&v),
            "---\na: \"no\"\nb:\n  - 1\n  - x\nc: {}\nd:\n  - e: []\n    f: true\n  - - 2\n\
             g: \"q\\\"\\n\"\nh: SCMP_ACT_ALLOW\ni: \"1e3\"\n"
        );
    }

    /// DEL, a C1 control and U+2028, which JSON leaves raw, are escaped; the result reads back
    /// as the same string.
    #[test]
    fn characters_yaml_does_not_take_raw_are_escaped() {
        let name = "a\u{7f}b\u{85}c\u{2028}d";
        let yaml = to_yaml(&serde_json::json!({ "name": name }));
        assert_eq!(yaml, "---\nname: \"a\\u007Fb\\u0085c\\u2028d\"\n");
        let docs = yaml_rust2::YamlLoader::load_from_str(&yaml).unwrap();
        assert_eq!(docs[0]["name"].as_str(), Some(name));
    }
}
