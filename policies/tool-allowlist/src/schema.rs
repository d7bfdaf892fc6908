//! A JSON Schema subset for tool-call arguments.
//!
//! Supported keywords: `type` (a name or an array of names: `object`, `array`,
//! `string`, `number`, `integer`, `boolean`, `null`), `properties`, `required`,
//! `additionalProperties` (boolean or schema), `enum`, `const`, `minLength`,
//! `maxLength` (in characters), `minimum`, `maximum`, `exclusiveMinimum`,
//! `exclusiveMaximum` (numbers, or draft-4 booleans), `items` (one schema, or an array
//! of schemas for tuples), `minItems`, `maxItems`, `pattern` (Rust `regex` dialect,
//! unanchored, evaluated by the host), `allOf`, `anyOf`, `oneOf`, and the boolean
//! schemas `true` / `false`. Every other keyword (`$ref`, `$defs`, `format`,
//! `patternProperties`, `if`/`then`, `uniqueItems`, ...) is ignored, which accepts
//! what it would have constrained.

use portcullis_sdk::Matcher;
use serde_json::{Map, Value};

/// Violations reported per call, at most.
pub const MAX_ERRORS: usize = 8;

/// The `pattern` keywords of one schema, compiled on first use as one host pattern
/// list (so a tool's patterns always make the same, cached list).
pub struct Patterns {
    list: Vec<String>,
    matcher: Option<Result<Matcher, String>>,
}

impl Patterns {
    /// Collect every `pattern` the validator can reach in `schema`.
    pub fn of(schema: &Value) -> Self {
        let mut list = Vec::new();
        collect_patterns(schema, &mut list);
        Patterns {
            list,
            matcher: None,
        }
    }

    /// Whether `pattern` matches somewhere in `text`; an error when the host cannot
    /// compile the schema's patterns (unsupported syntax or limits).
    fn is_match(&mut self, pattern: &str, text: &str) -> Result<bool, String> {
        let index = self
            .list
            .iter()
            .position(|p| p == pattern)
            .ok_or("pattern not collected")?;
        let list = &self.list;
        match self.matcher.get_or_insert_with(|| Matcher::new(list)) {
            Ok(m) => Ok(m.find_all(text).iter().any(|hit| hit.pattern == index)),
            Err(e) => Err(e.clone()),
        }
    }
}

fn collect_patterns(schema: &Value, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else { return };
    if let Some(p) = s.get("pattern").and_then(Value::as_str)
        && !out.iter().any(|q| q == p)
    {
        out.push(p.to_string());
    }
    for sub in subschemas(s) {
        collect_patterns(sub, out);
    }
}

/// The subschemas the validator descends into.
fn subschemas(s: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    let props = s
        .get("properties")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values());
    let additional = s.get("additionalProperties").filter(|v| v.is_object());
    let items = s.get("items").into_iter().flat_map(|i| match i {
        Value::Array(a) => a.iter().collect::<Vec<_>>(),
        other => vec![other],
    });
    let combined = ["allOf", "anyOf", "oneOf"]
        .into_iter()
        .filter_map(|k| s.get(k).and_then(Value::as_array))
        .flatten();
    props.chain(additional).chain(items).chain(combined)
}

/// Validate `value` against `schema`; returns at most [`MAX_ERRORS`] violations, each
/// naming the JSON path and the keyword, never the offending value.
pub fn validate(schema: &Value, value: &Value, patterns: &mut Patterns) -> Vec<String> {
    let mut v = Validator {
        patterns,
        errors: Vec::new(),
    };
    v.check(schema, value, "$");
    v.errors
}

struct Validator<'a> {
    patterns: &'a mut Patterns,
    errors: Vec<String>,
}

impl Validator<'_> {
    fn fail(&mut self, path: &str, problem: impl std::fmt::Display) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(format!("{path}: {problem}"));
        }
    }

    fn full(&self) -> bool {
        self.errors.len() >= MAX_ERRORS
    }

    fn check(&mut self, schema: &Value, value: &Value, path: &str) {
        let s = match schema {
            Value::Bool(false) => return self.fail(path, "not allowed by the schema"),
            Value::Object(s) => s,
            _ => return,
        };
        if let Some(t) = s.get("type")
            && !type_allows(t, value)
        {
            return self.fail(
                path,
                format!("expected {}, got {}", type_list(t), type_name(value)),
            );
        }
        if let Some(options) = s.get("enum").and_then(Value::as_array)
            && !options.iter().any(|o| json_equal(o, value))
        {
            self.fail(path, "value is not one of the allowed values (enum)");
        }
        if let Some(c) = s.get("const")
            && !json_equal(c, value)
        {
            self.fail(path, "value differs from the required constant (const)");
        }
        match value {
            Value::String(text) => self.check_string(s, text, path),
            Value::Number(n) => self.check_number(s, n.as_f64().unwrap_or(f64::NAN), path),
            Value::Array(items) => self.check_array(s, items, path),
            Value::Object(map) => self.check_object(s, map, path),
            _ => {}
        }
        self.check_combinators(s, value, path);
    }

    fn check_string(&mut self, s: &Map<String, Value>, text: &str, path: &str) {
        let len = text.chars().count() as f64;
        if let Some(min) = number(s, "minLength").filter(|m| len < *m) {
            self.fail(path, format!("shorter than minLength {min}"));
        }
        if let Some(max) = number(s, "maxLength").filter(|m| len > *m) {
            self.fail(path, format!("longer than maxLength {max}"));
        }
        if let Some(pattern) = s.get("pattern").and_then(Value::as_str) {
            match self.patterns.is_match(pattern, text) {
                Ok(true) => {}
                Ok(false) => self.fail(path, "does not match the schema pattern"),
                Err(_) => self.fail(
                    path,
                    "schema pattern cannot be evaluated (unsupported syntax or limits)",
                ),
            }
        }
    }

    fn check_number(&mut self, s: &Map<String, Value>, n: f64, path: &str) {
        // Draft 4 spells exclusive bounds as booleans next to minimum/maximum.
        let draft4_exclusive = |key: &str| s.get(key).and_then(Value::as_bool).unwrap_or(false);
        if let Some(min) = number(s, "minimum")
            && (n < min || (draft4_exclusive("exclusiveMinimum") && n <= min))
        {
            self.fail(path, format!("below minimum {min}"));
        }
        if let Some(max) = number(s, "maximum")
            && (n > max || (draft4_exclusive("exclusiveMaximum") && n >= max))
        {
            self.fail(path, format!("above maximum {max}"));
        }
        if let Some(min) = number(s, "exclusiveMinimum").filter(|m| n <= *m) {
            self.fail(path, format!("not above exclusiveMinimum {min}"));
        }
        if let Some(max) = number(s, "exclusiveMaximum").filter(|m| n >= *m) {
            self.fail(path, format!("not below exclusiveMaximum {max}"));
        }
    }

    fn check_array(&mut self, s: &Map<String, Value>, items: &[Value], path: &str) {
        let len = items.len() as f64;
        if let Some(min) = number(s, "minItems").filter(|m| len < *m) {
            self.fail(path, format!("fewer than minItems {min}"));
        }
        if let Some(max) = number(s, "maxItems").filter(|m| len > *m) {
            self.fail(path, format!("more than maxItems {max}"));
        }
        match s.get("items") {
            Some(Value::Array(tuple)) => {
                for (i, (schema, item)) in tuple.iter().zip(items).enumerate() {
                    self.check(schema, item, &format!("{path}[{i}]"));
                }
            }
            Some(schema) => {
                for (i, item) in items.iter().enumerate() {
                    if self.full() {
                        return;
                    }
                    self.check(schema, item, &format!("{path}[{i}]"));
                }
            }
            None => {}
        }
    }

    fn check_object(&mut self, s: &Map<String, Value>, map: &Map<String, Value>, path: &str) {
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str().filter(|n| !map.contains_key(*n)) {
                self.fail(path, format!("missing required property {}", quoted(name)));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        for (key, item) in map {
            if self.full() {
                return;
            }
            let child = child_path(path, key);
            match (props.and_then(|p| p.get(key)), additional) {
                (Some(schema), _) => self.check(schema, item, &child),
                (None, Some(Value::Bool(false))) => {
                    self.fail(path, format!("unexpected property {}", quoted(key)));
                }
                (None, Some(schema)) => self.check(schema, item, &child),
                (None, None) => {}
            }
        }
    }

    fn check_combinators(&mut self, s: &Map<String, Value>, value: &Value, path: &str) {
        for schema in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check(schema, value, path);
        }
        if let Some(options) = s.get("anyOf").and_then(Value::as_array)
            && !options.iter().any(|o| self.passes(o, value, path))
        {
            self.fail(path, "matches none of the anyOf schemas");
        }
        if let Some(options) = s.get("oneOf").and_then(Value::as_array) {
            let passing = options
                .iter()
                .filter(|o| self.passes(o, value, path))
                .count();
            if passing != 1 {
                self.fail(
                    path,
                    format!("matches {passing} of the oneOf schemas (exactly 1 required)"),
                );
            }
        }
    }

    /// Whether `value` satisfies `schema`, without recording the violations.
    fn passes(&mut self, schema: &Value, value: &Value, path: &str) -> bool {
        let mut trial = Validator {
            patterns: &mut *self.patterns,
            errors: Vec::new(),
        };
        trial.check(schema, value, path);
        trial.errors.is_empty()
    }
}

fn number(s: &Map<String, Value>, key: &str) -> Option<f64> {
    s.get(key).and_then(Value::as_f64)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// Whether `value` is of the type named by `t`; unknown type names allow anything.
fn type_allows(t: &Value, value: &Value) -> bool {
    let one = |name: &str| match name {
        "integer" => matches!(value, Value::Number(n) if is_integer(n)),
        "number" => value.is_number(),
        "object" | "array" | "string" | "boolean" | "null" => type_name(value) == name,
        _ => true,
    };
    match t {
        Value::String(name) => one(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(one),
        _ => true,
    }
}

fn type_list(t: &Value) -> String {
    match t {
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        Value::String(name) => name.clone(),
        _ => "a valid type".into(),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`).
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// A property name for messages: quoted, and cut to 64 characters.
fn quoted(name: &str) -> String {
    let short: String = name.chars().take(64).collect();
    format!("{short:?}")
}

/// `$.name` for identifier-like names, `$["odd name"]` otherwise.
pub fn child_path(path: &str, key: &str) -> String {
    let simple = !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if simple {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", quoted(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(schema: Value, value: Value) -> Vec<String> {
        let mut p = Patterns::of(&schema);
        validate(&schema, &value, &mut p)
    }

    #[test]
    fn types_including_arrays_of_types() {
        assert!(errors(json!({"type": "string"}), json!("x")).is_empty());
        assert_eq!(
            errors(json!({"type": "string"}), json!(1)),
            ["$: expected string, got integer"]
        );
        assert!(errors(json!({"type": "integer"}), json!(3.0)).is_empty());
        assert!(!errors(json!({"type": "integer"}), json!(3.5)).is_empty());
        assert!(errors(json!({"type": "number"}), json!(3)).is_empty());
        assert!(errors(json!({"type": ["string", "null"]}), json!(null)).is_empty());
        assert!(!errors(json!({"type": ["string", "null"]}), json!(false)).is_empty());
        assert!(errors(json!({"type": "custom-type"}), json!(1)).is_empty());
    }

    #[test]
    fn objects_required_and_additional_properties() {
        let schema = json!({
            "type": "object",
            "properties": {"path": {"type": "string"}, "n": {"type": "integer", "minimum": 1}},
            "required": ["path"],
            "additionalProperties": false
        });
        assert!(errors(schema.clone(), json!({"path": "a", "n": 2})).is_empty());
        assert_eq!(
            errors(schema.clone(), json!({"n": 2})),
            [r#"$: missing required property "path""#]
        );
        assert_eq!(
            errors(schema.clone(), json!({"path": "a", "x": 1})),
            [r#"$: unexpected property "x""#]
        );
        assert_eq!(
            errors(schema.clone(), json!({"path": "a", "n": 0})),
            ["$.n: below minimum 1"]
        );
        let typed_extra = json!({"additionalProperties": {"type": "string"}});
        assert_eq!(
            errors(typed_extra, json!({"odd key": 1})),
            [r#"$["odd key"]: expected string, got integer"#]
        );
    }

    #[test]
    fn strings_numbers_and_arrays() {
        assert!(!errors(json!({"maxLength": 3}), json!("abcd")).is_empty());
        assert!(errors(json!({"maxLength": 3}), json!("éèà")).is_empty());
        assert!(!errors(json!({"minLength": 2}), json!("a")).is_empty());
        assert!(!errors(json!({"exclusiveMaximum": 10}), json!(10)).is_empty());
        assert!(!errors(json!({"maximum": 10, "exclusiveMaximum": true}), json!(10)).is_empty());
        assert!(errors(json!({"maximum": 10}), json!(10)).is_empty());
        assert!(!errors(json!({"exclusiveMinimum": 0}), json!(0)).is_empty());
        let arr =
            json!({"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2});
        assert!(errors(arr.clone(), json!(["a"])).is_empty());
        assert_eq!(
            errors(arr.clone(), json!(["a", 2])),
            ["$[1]: expected string, got integer"]
        );
        assert!(!errors(arr.clone(), json!([])).is_empty());
        assert!(!errors(arr, json!(["a", "b", "c"])).is_empty());
        let tuple = json!({"items": [{"type": "string"}, {"type": "integer"}]});
        assert!(errors(tuple.clone(), json!(["a", 1, true])).is_empty());
        assert!(!errors(tuple, json!([1, 1])).is_empty());
    }

    #[test]
    fn enum_const_and_combinators() {
        assert!(errors(json!({"enum": ["a", 1]}), json!(1.0)).is_empty());
        assert_eq!(
            errors(json!({"enum": ["a", "b"]}), json!("c")),
            ["$: value is not one of the allowed values (enum)"]
        );
        assert!(!errors(json!({"const": "x"}), json!("y")).is_empty());
        let any = json!({"anyOf": [{"type": "string"}, {"type": "null"}]});
        assert!(errors(any.clone(), json!(null)).is_empty());
        assert!(!errors(any, json!(1)).is_empty());
        let one = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert!(!errors(one.clone(), json!(1)).is_empty());
        assert!(errors(one, json!(1.5)).is_empty());
        assert!(
            !errors(
                json!({"allOf": [{"minLength": 2}, {"maxLength": 3}]}),
                json!("abcd")
            )
            .is_empty()
        );
        assert!(!errors(json!(false), json!(1)).is_empty());
        assert!(errors(json!(true), json!(1)).is_empty());
    }

    #[test]
    fn patterns_are_unanchored_and_bad_ones_fail_closed() {
        let schema =
            json!({"properties": {"id": {"pattern": "^[a-z]+-[0-9]+$"}, "t": {"pattern": "ab"}}});
        assert!(errors(schema.clone(), json!({"id": "abc-12", "t": "xaby"})).is_empty());
        assert_eq!(
            errors(schema, json!({"id": "abc-x"})),
            ["$.id: does not match the schema pattern"]
        );
        let lookahead = json!({"pattern": "^(?=a)"});
        assert!(errors(lookahead, json!("a"))[0].contains("cannot be evaluated"));
    }

    #[test]
    fn errors_are_capped_and_never_repeat_values() {
        let schema = json!({"items": {"type": "integer"}});
        let many: Vec<Value> = (0..50).map(|i| json!(format!("secret-{i}"))).collect();
        let errs = errors(schema, Value::Array(many));
        assert_eq!(errs.len(), MAX_ERRORS);
        assert!(errs.iter().all(|e| !e.contains("secret")));
    }
}
