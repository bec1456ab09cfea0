//! A JSON Schema (draft-04) validator for the keywords tasks.schema.json
//! uses: `type`, `properties`, `additionalProperties`, `required`,
//! `pattern` (ECMA-262 patterns, all within what the `regex` crate reads),
//! `enum`, `anyOf`, `items` and local `$ref`s. An unknown
//! keyword panics, so the check cannot silently pass a schema it does not
//! understand.

use regex::Regex;
use serde_json::Value;

const ANNOTATIONS: &[&str] = &[
    "$schema",
    "id",
    "title",
    "description",
    "default",
    "definitions",
];

/// Every violation of `schema` by `instance`, as `path: problem`.
pub fn validate(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, instance, "$", &mut errors);
    errors
}

fn check(root: &Value, schema: &Value, instance: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(keywords) = schema.as_object() else {
        panic!("schema at {path} is not an object");
    };
    for (keyword, value) in keywords {
        match keyword.as_str() {
            "$ref" => {
                let target = value
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/"))
                    .expect("only local $refs");
                let resolved = target.split('/').fold(root, |node, part| &node[part]);
                check(root, resolved, instance, path, errors);
            }
            "type" => {
                let allowed: Vec<&str> = match value {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("bad type keyword at {path}"),
                };
                if !allowed.iter().any(|t| has_type(instance, t)) {
                    errors.push(format!(
                        "{path}: expected {}, found {instance}",
                        allowed.join(" or ")
                    ));
                }
            }
            "enum" => {
                if !value
                    .as_array()
                    .expect("enum is an array")
                    .contains(instance)
                {
                    errors.push(format!("{path}: {instance} is not one of {value}"));
                }
            }
            "pattern" => {
                if let Some(text) = instance.as_str() {
                    let pattern = Regex::new(value.as_str().expect("pattern is a string"))
                        .expect("a pattern the regex crate reads");
                    if !pattern.is_match(text) {
                        errors.push(format!("{path}: {text:?} does not match {value}"));
                    }
                }
            }
            "anyOf" => {
                let branches = value.as_array().expect("anyOf is an array");
                if !branches.iter().any(|b| {
                    let mut sub = Vec::new();
                    check(root, b, instance, path, &mut sub);
                    sub.is_empty()
                }) {
                    errors.push(format!("{path}: {instance} matches none of anyOf"));
                }
            }
            "required" => {
                if let Some(object) = instance.as_object() {
                    for name in value
                        .as_array()
                        .expect("required is an array")
                        .iter()
                        .filter_map(Value::as_str)
                    {
                        if !object.contains_key(name) {
                            errors.push(format!("{path}: missing required property {name}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(object) = instance.as_object() {
                    for (name, sub) in value.as_object().expect("properties is an object") {
                        if let Some(v) = object.get(name) {
                            check(root, sub, v, &format!("{path}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                let Some(object) = instance.as_object() else {
                    continue;
                };
                let declared = keywords.get("properties").and_then(Value::as_object);
                for (name, v) in object {
                    if declared.is_some_and(|d| d.contains_key(name)) {
                        continue;
                    }
                    match value {
                        Value::Bool(true) => {}
                        Value::Bool(false) => {
                            errors.push(format!("{path}: property {name} is not allowed"))
                        }
                        sub => check(root, sub, v, &format!("{path}.{name}"), errors),
                    }
                }
            }
            "items" => {
                if let Some(array) = instance.as_array() {
                    for (i, v) in array.iter().enumerate() {
                        check(root, value, v, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            k if ANNOTATIONS.contains(&k) => {}
            other => panic!("schema keyword {other} at {path} is not supported by this validator"),
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}
