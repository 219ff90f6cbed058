//! Reads a job's JSON text into a value, noting what plain parsing lets through: a key given
//! twice in one object (the last would silently win) is a problem named by its path, and a
//! number with no fraction written as `10.0` or `1E+2` is read as the integer it is, so that
//! integer fields take it and every other problem of the job still gets reported.

use super::validate::Problem;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// Parses `text`; duplicate keys are added to `problems`.
pub fn parse(text: &str, problems: &mut Vec<Problem>) -> Result<Value, serde_json::Error> {
    let found = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Reader {
        path: String::new(),
        found: &found,
    }
    .deserialize(&mut deserializer)?;
    deserializer.end()?;
    problems.extend(found.into_inner());
    Ok(value)
}

struct Reader<'a> {
    /// The dotted path of the value being read (`recording.layout`), empty at the top.
    path: String,
    found: &'a RefCell<Vec<Problem>>,
}

impl Reader<'_> {
    fn at(&self, segment: &str) -> Self {
        let path = match (self.path.is_empty(), segment.starts_with('[')) {
            (true, _) | (false, true) => format!("{}{segment}", self.path),
            (false, false) => format!("{}.{segment}", self.path),
        };
        Reader {
            path,
            found: self.found,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Reader<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

/// The integer a float stands for, when it has no fraction and fits.
fn integral(f: f64) -> Option<Number> {
    if !f.is_finite() || f.fract() != 0.0 {
        return None;
    }
    if (0.0..=u64::MAX as f64).contains(&f) {
        Some(Number::from(f as u64))
    } else if (i64::MIN as f64..0.0).contains(&f) {
        Some(Number::from(f as i64))
    } else {
        None
    }
}

impl<'de> Visitor<'de> for Reader<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(integral(v)
            .or_else(|| Number::from_f64(v))
            .map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.at(&format!("[{}]", items.len())))? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(self.at(&key))?;
            if !seen.insert(key.clone()) {
                let path = self.at(&key).path;
                let problem = Problem {
                    path,
                    message: "given twice; expected each field once".into(),
                };
                let mut found = self.found.borrow_mut();
                if !found.contains(&problem) {
                    found.push(problem);
                }
            }
            fields.insert(key, value);
        }
        Ok(Value::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_named_by_path() {
        let mut problems = Vec::new();
        let value = parse(
            r#"{"a": 1, "b": {"c": [{"d": 1, "d": 2}]}, "a": 3}"#,
            &mut problems,
        )
        .unwrap();
        assert_eq!(value["a"], 3);
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["b.c[0].d", "a"]);
    }

    #[test]
    fn integral_numbers_become_integers_and_fractions_stay() {
        let mut problems = Vec::new();
        let value = parse(
            r#"{"a": 10.0, "b": 1E+2, "c": 2.5, "d": -3.0, "e": 1e400}"#,
            &mut problems,
        );
        assert!(
            value.is_err(),
            "an out-of-range number is not valid JSON for serde_json"
        );
        let value = parse(r#"{"a": 10.0, "b": 1E+2, "c": 2.5, "d": -3.0}"#, &mut problems).unwrap();
        assert!(value["a"].is_u64() && value["a"] == 10);
        assert!(value["b"].is_u64() && value["b"] == 100);
        assert_eq!(value["c"], 2.5);
        assert!(value["d"].is_i64() && value["d"] == -3);
        assert!(problems.is_empty());
    }

    #[test]
    fn trailing_text_is_refused() {
        assert!(parse("{} {}", &mut Vec::new()).is_err());
    }
}
