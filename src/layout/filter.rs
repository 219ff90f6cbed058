//! The condition language shared by `participant.filter` and the conditions of custom actions:
//! field comparisons (`$eq`, `$neq`, `$in`, `$contains`, `$gt`, `$gte`, `$lt`, `$lte`) combined
//! with `$and`, `$or` and `$not`. Several keys in one object must all hold.

use serde_json::{Map, Value};

/// The type of a field a condition may test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Bool,
    TextList,
    Number,
}

/// The value of a field on the thing tested.
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'a> {
    Text(&'a str),
    Bool(bool),
    TextList(&'a [String]),
    Number(f64),
}

/// Anything a condition can be evaluated on.
pub trait Subject {
    fn field(&self, name: &str) -> Option<FieldValue<'_>>;
}

/// The fields of a participant filter, by the names the seed gives.
pub const PARTICIPANT_FIELDS: &[(&str, FieldType)] = &[
    ("userId", FieldType::Text),
    ("name", FieldType::Text),
    ("roles", FieldType::TextList),
    ("isSpeaking", FieldType::Bool),
    ("isDominantSpeaker", FieldType::Bool),
    ("isPinned", FieldType::Bool),
    ("hasVideo", FieldType::Bool),
    ("hasAudio", FieldType::Bool),
    ("hasScreenShare", FieldType::Bool),
];

/// The fields custom-action conditions may test.
pub const CALL_FIELDS: &[(&str, FieldType)] = &[
    ("participant_count", FieldType::Number),
    ("pinned_participant_count", FieldType::Number),
];

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Test { field: String, test: Test },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Eq(Value),
    Neq(Value),
    In(Vec<Value>),
    Contains(String),
    Gt(f64),
    Gte(f64),
    Lt(f64),
    Lte(f64),
}

/// A problem in a condition, at a path relative to the condition's root.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionError {
    pub path: String,
    pub message: String,
}

impl Condition {
    /// Parses a condition over `fields`; every problem is reported with its path.
    pub fn parse(value: &Value, fields: &[(&str, FieldType)]) -> Result<Condition, Vec<ConditionError>> {
        let mut errors = Vec::new();
        let condition = parse_node(value, fields, "", &mut errors);
        if errors.is_empty() {
            Ok(condition)
        } else {
            Err(errors)
        }
    }

    pub fn matches(&self, subject: &dyn Subject) -> bool {
        match self {
            Condition::All(all) => all.iter().all(|c| c.matches(subject)),
            Condition::Any(any) => any.iter().any(|c| c.matches(subject)),
            Condition::Not(c) => !c.matches(subject),
            Condition::Test { field, test } => subject.field(field).is_some_and(|v| test.holds(v)),
        }
    }
}

impl Test {
    fn holds(&self, value: FieldValue) -> bool {
        match self {
            Test::Eq(expected) => equals(value, expected),
            Test::Neq(expected) => !equals(value, expected),
            Test::In(options) => match value {
                FieldValue::TextList(list) => options
                    .iter()
                    .any(|o| list.iter().any(|v| Some(v.as_str()) == o.as_str())),
                _ => options.iter().any(|o| equals(value, o)),
            },
            Test::Contains(item) => match value {
                FieldValue::TextList(list) => list.iter().any(|v| v == item),
                FieldValue::Text(text) => text.contains(item.as_str()),
                _ => false,
            },
            Test::Gt(n) => number(value).is_some_and(|v| v > *n),
            Test::Gte(n) => number(value).is_some_and(|v| v >= *n),
            Test::Lt(n) => number(value).is_some_and(|v| v < *n),
            Test::Lte(n) => number(value).is_some_and(|v| v <= *n),
        }
    }
}

fn number(value: FieldValue) -> Option<f64> {
    match value {
        FieldValue::Number(n) => Some(n),
        _ => None,
    }
}

fn equals(value: FieldValue, expected: &Value) -> bool {
    match (value, expected) {
        (FieldValue::Text(a), Value::String(b)) => a == b,
        (FieldValue::Bool(a), Value::Bool(b)) => a == *b,
        (FieldValue::Number(a), Value::Number(b)) => b.as_f64() == Some(a),
        (FieldValue::TextList(list), Value::Array(items)) => {
            list.len() == items.len()
                && list
                    .iter()
                    .zip(items)
                    .all(|(a, b)| b.as_str() == Some(a.as_str()))
        }
        _ => false,
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn parse_node(
    value: &Value,
    fields: &[(&str, FieldType)],
    path: &str,
    errors: &mut Vec<ConditionError>,
) -> Condition {
    let Some(object) = value.as_object() else {
        errors.push(error(
            path,
            format!("expected an object of conditions; got {value}"),
        ));
        return Condition::All(vec![]);
    };
    let mut all = Vec::new();
    for (key, inner) in object {
        let here = join(path, key);
        match key.as_str() {
            "$and" | "$or" => {
                let Some(items) = inner.as_array().filter(|a| !a.is_empty()) else {
                    errors.push(error(
                        &here,
                        format!("expected a non-empty array of conditions; got {inner}"),
                    ));
                    continue;
                };
                let parsed = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| parse_node(item, fields, &format!("{here}[{i}]"), errors))
                    .collect();
                all.push(if key == "$and" {
                    Condition::All(parsed)
                } else {
                    Condition::Any(parsed)
                });
            }
            "$not" => all.push(Condition::Not(Box::new(parse_node(inner, fields, &here, errors)))),
            name if name.starts_with('$') => {
                errors.push(error(
                    &here,
                    "unknown operator here; expected $and, $or, $not or a field name".into(),
                ));
            }
            name => match fields.iter().find(|(f, _)| *f == name) {
                Some(&(_, kind)) => all.extend(parse_field(name, kind, inner, &here, errors)),
                None => {
                    let names: Vec<&str> = fields.iter().map(|(f, _)| *f).collect();
                    errors.push(error(
                        &here,
                        format!("unknown field; expected one of {}", names.join(", ")),
                    ));
                }
            },
        }
    }
    if all.len() == 1 {
        all.pop().unwrap_or(Condition::All(vec![]))
    } else {
        Condition::All(all)
    }
}

fn parse_field(
    name: &str,
    kind: FieldType,
    value: &Value,
    path: &str,
    errors: &mut Vec<ConditionError>,
) -> Vec<Condition> {
    let test = |test| Condition::Test {
        field: name.to_owned(),
        test,
    };
    let operators = match value.as_object() {
        Some(ops) if ops.keys().any(|k| k.starts_with('$')) => ops.clone(),
        // A bare value means `$eq`.
        _ => Map::from_iter([("$eq".to_owned(), value.clone())]),
    };
    let mut tests = Vec::new();
    for (op, operand) in &operators {
        let here = join(path, op);
        let parsed = match op.as_str() {
            "$eq" => typed(kind, operand).map(|v| Test::Eq(v.clone())),
            "$neq" => typed(kind, operand).map(|v| Test::Neq(v.clone())),
            "$in" => match operand.as_array() {
                Some(items) => {
                    let element = if kind == FieldType::TextList {
                        FieldType::Text
                    } else {
                        kind
                    };
                    items
                        .iter()
                        .map(|i| typed(element, i).cloned())
                        .collect::<Result<Vec<_>, _>>()
                        .map(Test::In)
                }
                None => Err(format!("expected an array of values; got {operand}")),
            },
            "$contains" => match (kind, operand.as_str()) {
                (FieldType::TextList | FieldType::Text, Some(s)) => Ok(Test::Contains(s.to_owned())),
                (FieldType::TextList | FieldType::Text, None) => {
                    Err(format!("expected a string; got {operand}"))
                }
                _ => Err(format!(
                    "$contains applies to roles and text fields, not to {name}"
                )),
            },
            "$gt" | "$gte" | "$lt" | "$lte" => match (kind, operand.as_f64()) {
                (FieldType::Number, Some(n)) => Ok(match op.as_str() {
                    "$gt" => Test::Gt(n),
                    "$gte" => Test::Gte(n),
                    "$lt" => Test::Lt(n),
                    _ => Test::Lte(n),
                }),
                (FieldType::Number, None) => Err(format!("expected a number; got {operand}")),
                _ => Err(format!("{op} applies to numbers, not to {name}")),
            },
            _ => Err("unknown operator; expected $eq, $neq, $in, $contains, $gt, $gte, $lt or $lte".into()),
        };
        match parsed {
            Ok(t) => tests.push(test(t)),
            Err(message) => errors.push(error(&here, message)),
        }
    }
    tests
}

fn typed(kind: FieldType, value: &Value) -> Result<&Value, String> {
    let ok = match kind {
        FieldType::Text => value.is_string(),
        FieldType::Bool => value.is_boolean(),
        FieldType::Number => value.is_number(),
        FieldType::TextList => value.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
    };
    let what = match kind {
        FieldType::Text => "a string",
        FieldType::Bool => "true or false",
        FieldType::Number => "a number",
        FieldType::TextList => "an array of strings (use $contains to test one role)",
    };
    if ok {
        Ok(value)
    } else {
        Err(format!("expected {what}; got {value}"))
    }
}

fn error(path: &str, message: String) -> ConditionError {
    ConditionError {
        path: path.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Person {
        id: &'static str,
        roles: Vec<String>,
        pinned: bool,
        video: bool,
    }

    impl Subject for Person {
        fn field(&self, name: &str) -> Option<FieldValue<'_>> {
            Some(match name {
                "userId" | "name" => FieldValue::Text(self.id),
                "roles" => FieldValue::TextList(&self.roles),
                "isPinned" => FieldValue::Bool(self.pinned),
                "hasVideo" => FieldValue::Bool(self.video),
                "hasScreenShare" | "isSpeaking" | "isDominantSpeaker" | "hasAudio" => FieldValue::Bool(false),
                _ => return None,
            })
        }
    }

    struct Counts(f64, f64);

    impl Subject for Counts {
        fn field(&self, name: &str) -> Option<FieldValue<'_>> {
            match name {
                "participant_count" => Some(FieldValue::Number(self.0)),
                "pinned_participant_count" => Some(FieldValue::Number(self.1)),
                _ => None,
            }
        }
    }

    fn people() -> Vec<Person> {
        vec![
            Person {
                id: "moe",
                roles: vec!["admin".into(), "host".into()],
                pinned: false,
                video: true,
            },
            Person {
                id: "larry",
                roles: vec!["guest".into()],
                pinned: true,
                video: false,
            },
            Person {
                id: "curly",
                roles: vec!["guest".into()],
                pinned: false,
                video: true,
            },
            Person {
                id: "shemp",
                roles: vec![],
                pinned: false,
                video: false,
            },
        ]
    }

    fn who(filter: Value) -> Vec<&'static str> {
        let condition = Condition::parse(&filter, PARTICIPANT_FIELDS).unwrap();
        people()
            .into_iter()
            .filter(|p| condition.matches(p))
            .map(|p| p.id)
            .collect()
    }

    #[test]
    fn every_participant_operator() {
        let table: Vec<(Value, Vec<&str>)> = vec![
            (json!({"isPinned": true}), vec!["larry"]),
            (json!({"userId": {"$eq": "moe"}}), vec!["moe"]),
            (
                json!({"userId": {"$neq": "moe"}}),
                vec!["larry", "curly", "shemp"],
            ),
            (
                json!({"name": {"$in": ["Moe", "larry", "curly"]}}),
                vec!["larry", "curly"],
            ),
            (json!({"roles": {"$contains": "admin"}}), vec!["moe"]),
            (
                json!({"roles": {"$in": ["host", "guest"]}}),
                vec!["moe", "larry", "curly"],
            ),
            (json!({"roles": []}), vec!["shemp"]),
            (
                json!({"hasVideo": true, "roles": {"$contains": "guest"}}),
                vec!["curly"],
            ),
            (
                json!({"$and": [{"hasVideo": true}, {"isPinned": false}]}),
                vec!["moe", "curly"],
            ),
            (
                json!({"$or": [{"hasVideo": true}, {"hasScreenShare": true}]}),
                vec!["moe", "curly"],
            ),
            (json!({"$not": {"hasVideo": true}}), vec!["larry", "shemp"]),
            (
                json!({"$or": [{"$not": {"roles": {"$contains": "guest"}}}, {"isPinned": true}]}),
                vec!["moe", "larry", "shemp"],
            ),
            (
                json!({"$and": [{"$or": [{"userId": "moe"}, {"userId": "curly"}]}, {"$not": {"$and": [{"roles": {"$contains": "admin"}}]}}]}),
                vec!["curly"],
            ),
            (
                json!({"userId": {"$neq": "moe", "$in": ["moe", "curly"]}}),
                vec!["curly"],
            ),
        ];
        for (filter, expected) in table {
            assert_eq!(who(filter.clone()), expected, "filter {filter}");
        }
    }

    #[test]
    fn every_number_operator() {
        let cases: Vec<(Value, [bool; 3])> = vec![
            (json!({"participant_count": {"$gt": 1}}), [false, false, true]),
            (json!({"participant_count": {"$gte": 1}}), [false, true, true]),
            (json!({"participant_count": {"$lt": 1}}), [true, false, false]),
            (json!({"participant_count": {"$lte": 1}}), [true, true, false]),
            (json!({"participant_count": 1}), [false, true, false]),
            (json!({"participant_count": {"$neq": 1}}), [true, false, true]),
            (json!({"participant_count": {"$in": [0, 2]}}), [true, false, true]),
            (
                json!({"$not": {"pinned_participant_count": {"$gte": 1}}}),
                [true, true, false],
            ),
            (
                json!({"$or": [{"participant_count": 0}, {"pinned_participant_count": 1}]}),
                [true, false, true],
            ),
        ];
        let subjects = [Counts(0.0, 0.0), Counts(1.0, 0.0), Counts(2.0, 1.0)];
        for (condition, expected) in cases {
            let c = Condition::parse(&condition, CALL_FIELDS).unwrap();
            let got: Vec<bool> = subjects.iter().map(|s| c.matches(s)).collect();
            assert_eq!(got, expected, "condition {condition}");
        }
    }

    #[test]
    fn malformed_conditions_name_the_place() {
        let cases = [
            (
                json!({"roles": {"$contains": 3}}),
                "roles.$contains",
                "expected a string",
            ),
            (
                json!({"isPinned": "yes"}),
                "isPinned.$eq",
                "expected true or false",
            ),
            (json!({"age": 3}), "age", "unknown field"),
            (json!({"$or": {"isPinned": true}}), "$or", "non-empty array"),
            (
                json!({"$and": [{"hasVideo": 1}]}),
                "$and[0].hasVideo.$eq",
                "true or false",
            ),
            (
                json!({"userId": {"$like": "m%"}}),
                "userId.$like",
                "unknown operator",
            ),
            (json!({"userId": {"$gt": 3}}), "userId.$gt", "applies to numbers"),
            (json!({"$xor": []}), "$xor", "unknown operator"),
            (json!("pinned"), "", "expected an object"),
            (json!({"name": {"$in": "moe"}}), "name.$in", "array of values"),
        ];
        for (value, path, message) in cases {
            let errors = Condition::parse(&value, PARTICIPANT_FIELDS).unwrap_err();
            assert_eq!(errors[0].path, path, "{value}");
            assert!(
                errors[0].message.contains(message),
                "{value}: {}",
                errors[0].message
            );
        }
        let errors =
            Condition::parse(&json!({"participant_count": {"$gt": "two"}}), CALL_FIELDS).unwrap_err();
        assert_eq!(errors[0].path, "participant_count.$gt");
    }
}
