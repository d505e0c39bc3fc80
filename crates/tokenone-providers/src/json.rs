//! Helpers for reading loosely typed vendor JSON (`serde_json::Value`) without panicking.

use serde_json::Value;

use crate::TranslateError;

/// A non-negative whole number; negative, fractional, non-numeric or absent values are `None`.
pub(crate) fn count(v: Option<&Value>) -> Option<u64> {
    let v = v?;
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    match v.as_f64() {
        Some(f) if f.is_finite() && f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => Some(f as u64),
        _ => None,
    }
}

/// A field under its camelCase name or, failing that, its snake_case name (Gemini accepts both);
/// JSON `null` counts as absent.
pub(crate) fn field<'a>(obj: &'a Value, camel: &str, snake: &str) -> Option<&'a Value> {
    obj.get(camel)
        .filter(|v| !v.is_null())
        .or_else(|| obj.get(snake).filter(|v| !v.is_null()))
}

/// A present, non-null field.
pub(crate) fn get<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// A string field.
pub(crate) fn str_at<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

pub(crate) fn invalid(msg: impl Into<String>) -> TranslateError {
    TranslateError::Invalid(msg.into())
}

/// An optional token count parameter: absent/null is `None`, anything but a non-negative integer is invalid.
pub(crate) fn count_param(v: Option<&Value>, name: &str) -> Result<Option<u64>, TranslateError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(x) => count(Some(x))
            .map(Some)
            .ok_or_else(|| invalid(format!("{name}: must be a non-negative integer"))),
    }
}

/// An optional numeric sampling parameter, kept as the client's JSON number.
pub(crate) fn number_param(v: Option<&Value>, name: &str) -> Result<Option<Value>, TranslateError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(x @ Value::Number(_)) => Ok(Some(x.clone())),
        Some(_) => Err(invalid(format!("{name}: must be a number"))),
    }
}

/// A string or an array of strings (stop sequences).
pub(crate) fn string_list(v: Option<&Value>, name: &str) -> Result<Vec<String>, TranslateError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid(format!("{name}: must be strings")))
            })
            .collect(),
        Some(_) => Err(invalid(format!("{name}: must be a string or an array of strings"))),
    }
}

/// The number of Unicode scalar values of a string.
pub(crate) fn chars(s: &str) -> usize {
    s.chars().count()
}
