//! Lenient scalar conversions. The provider is inconsistent about numbers
//! (`2`, `2.0` and `"2"` all occur), so integer fields accept all three; anything
//! else is an error naming the field, never a panic or a silent zero.

use serde_json::{Number, Value};

/// The value is present but not of the wanted kind; callers name the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch;

/// An integer from a JSON integer, an integral float or a numeric string.
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// An optional integer: absent or `null` is `Ok(None)`, garbage is `Err`.
pub fn opt_int(v: Option<&Value>) -> Result<Option<i64>, Mismatch> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => int(v).map(Some).ok_or(Mismatch),
    }
}

/// A JSON number from a number or numeric string (stats can be `"55%"`-free decimals).
pub fn opt_number(v: Option<&Value>) -> Result<Option<Number>, Mismatch> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(Some(n.clone())),
        Some(Value::String(s)) => {
            let s = s.trim();
            if let Ok(i) = s.parse::<i64>() {
                return Ok(Some(i.into()));
            }
            s.parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Some)
                .ok_or(Mismatch)
        }
        Some(_) => Err(Mismatch),
    }
}

/// An optional string; numbers are rendered (ids and minutes are sometimes numeric).
pub fn opt_string(v: Option<&Value>) -> Result<Option<String>, Mismatch> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(Mismatch),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ints() {
        assert_eq!(int(&json!(2)), Some(2));
        assert_eq!(int(&json!(2.0)), Some(2));
        assert_eq!(int(&json!(" 7 ")), Some(7));
        assert_eq!(int(&json!(2.5)), None);
        assert_eq!(int(&json!("x")), None);
        assert_eq!(int(&json!([1])), None);
        assert_eq!(opt_int(None), Ok(None));
        assert_eq!(opt_int(Some(&Value::Null)), Ok(None));
        assert_eq!(opt_int(Some(&json!({}))), Err(Mismatch));
    }

    #[test]
    fn numbers_and_strings() {
        assert_eq!(opt_number(Some(&json!("12"))), Ok(Some(12.into())));
        assert!(opt_number(Some(&json!("0.5"))).unwrap().is_some());
        assert_eq!(opt_number(Some(&json!("half"))), Err(Mismatch));
        assert_eq!(opt_string(Some(&json!(45))), Ok(Some("45".into())));
        assert_eq!(opt_string(Some(&json!(true))), Err(Mismatch));
    }
}
