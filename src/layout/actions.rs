//! Custom actions: a layout or options override that applies while its condition holds.

use super::filter::{CALL_FIELDS, Condition, FieldValue, Subject};
use super::options::{ACTIONS_KEY, LayoutKind, LayoutOptions, OptionError, RawOptions, normalize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum CustomAction {
    /// The first matching layout override wins.
    LayoutOverride {
        layout: LayoutKind,
        ignore_screenshare: bool,
        condition: Condition,
    },
    /// All matching options overrides apply, in order; later ones win per key.
    OptionsOverride {
        options: RawOptions,
        condition: Condition,
    },
}

/// What the call looks like to a custom action's condition.
#[derive(Debug, Clone, Copy)]
pub struct CallState {
    pub participant_count: usize,
    pub pinned_participant_count: usize,
}

impl Subject for CallState {
    fn field(&self, name: &str) -> Option<FieldValue<'_>> {
        match name {
            "participant_count" => Some(FieldValue::Number(self.participant_count as f64)),
            "pinned_participant_count" => Some(FieldValue::Number(self.pinned_participant_count as f64)),
            _ => None,
        }
    }
}

/// The outcome of the actions for one call state.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub layout: Option<(LayoutKind, bool)>,
    pub options: RawOptions,
}

pub fn apply(actions: &[CustomAction], state: CallState) -> Applied {
    let mut applied = Applied {
        layout: None,
        options: RawOptions::new(),
    };
    for action in actions {
        match action {
            CustomAction::LayoutOverride {
                layout,
                ignore_screenshare,
                condition,
            } if applied.layout.is_none() && condition.matches(&state) => {
                applied.layout = Some((*layout, *ignore_screenshare));
            }
            CustomAction::OptionsOverride { options, condition } if condition.matches(&state) => {
                applied.options.extend(options.clone());
            }
            _ => {}
        }
    }
    applied
}

/// Parses `custom_actions` from the job's options. Each options override is checked against
/// every layout it could meet, so a bad value fails the job at start, not mid-call.
pub fn parse(options: &RawOptions) -> Result<Vec<CustomAction>, Vec<OptionError>> {
    let Some(value) = options.get(ACTIONS_KEY).filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let mut errors = Vec::new();
    let Some(items) = value.as_array() else {
        return Err(vec![(
            ACTIONS_KEY.into(),
            format!("expected an array of actions; got {value}"),
        )]);
    };
    let mut actions = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = |key: &str| format!("{ACTIONS_KEY}[{i}].{key}");
        let Some(object) = item.as_object() else {
            errors.push((
                format!("{ACTIONS_KEY}[{i}]"),
                format!("expected an object; got {item}"),
            ));
            continue;
        };
        let condition = match object.get("condition") {
            None => Condition::All(vec![]),
            Some(c) => Condition::parse(c, CALL_FIELDS).unwrap_or_else(|es| {
                for e in es {
                    let path = if e.path.is_empty() {
                        at("condition")
                    } else {
                        at(&format!("condition.{}", e.path))
                    };
                    errors.push((path, e.message));
                }
                Condition::All(vec![])
            }),
        };
        let allowed: &[&str] = match object.get("action_type").and_then(Value::as_str) {
            Some("layout_override") => &["action_type", "layout", "ignore_screenshare", "condition"],
            Some("options_override") => &["action_type", "options", "condition"],
            _ => {
                errors.push((
                    at("action_type"),
                    format!(
                        "expected layout_override or options_override; got {}",
                        object.get("action_type").unwrap_or(&Value::Null)
                    ),
                ));
                continue;
            }
        };
        for key in object.keys().filter(|k| !allowed.contains(&k.as_str())) {
            errors.push((
                at(key),
                format!("unknown field; expected one of {}", allowed.join(", ")),
            ));
        }
        if object["action_type"] == "layout_override" {
            let layout = object
                .get("layout")
                .and_then(Value::as_str)
                .and_then(LayoutKind::parse);
            let ignore_screenshare = match object.get("ignore_screenshare") {
                None => Some(false),
                Some(v) => v.as_bool(),
            };
            match (layout, ignore_screenshare) {
                (Some(layout), Some(ignore_screenshare)) => actions.push(CustomAction::LayoutOverride {
                    layout,
                    ignore_screenshare,
                    condition,
                }),
                (None, _) => errors.push((
                    at("layout"),
                    format!(
                        "expected one of {}; got {}",
                        LayoutKind::NAMES.join(", "),
                        object.get("layout").unwrap_or(&Value::Null)
                    ),
                )),
                (_, None) => errors.push((at("ignore_screenshare"), "expected true or false".into())),
            }
        } else {
            let Some(overrides) = object.get("options").and_then(Value::as_object) else {
                errors.push((at("options"), "expected an object of layout options".into()));
                continue;
            };
            let overrides: RawOptions = normalize(&overrides.clone().into_iter().collect());
            if overrides.contains_key(ACTIONS_KEY) {
                errors.push((
                    at("options.custom_actions"),
                    "custom actions cannot be overridden".into(),
                ));
                continue;
            }
            let mut merged = normalize(options);
            merged.remove(ACTIONS_KEY);
            merged.extend(overrides.clone());
            if let Err(es) = LayoutOptions::resolve(LayoutKind::Grid, &merged) {
                for (key, message) in es
                    .into_iter()
                    .filter(|(k, _)| overrides.contains_key(k.split(".$").next().unwrap_or(k)))
                {
                    errors.push((at(&format!("options.{key}")), message));
                }
            }
            actions.push(CustomAction::OptionsOverride {
                options: overrides,
                condition,
            });
        }
    }
    if errors.is_empty() {
        Ok(actions)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actions(value: Value) -> Vec<CustomAction> {
        parse(&RawOptions::from([(ACTIONS_KEY.to_owned(), value)])).unwrap()
    }

    fn state(participants: usize, pinned: usize) -> CallState {
        CallState {
            participant_count: participants,
            pinned_participant_count: pinned,
        }
    }

    #[test]
    fn first_layout_override_wins_and_options_merge_in_order() {
        let list = actions(json!([
            {"action_type": "layout_override", "condition": {"pinned_participant_count": {"$gte": 1}}, "layout": "dominant-speaker"},
            {"action_type": "layout_override", "condition": {"participant_count": {"$gt": 1}}, "layout": "spotlight", "ignore_screenshare": true},
            {"action_type": "options_override", "condition": {"participant_count": {"$gt": 1}}, "options": {"layout.background_color": "hotpink", "grid.columns": 3}},
            {"action_type": "options_override", "condition": {"participant_count": {"$gt": 2}}, "options": {"video.background_color": "#00ff00"}},
        ]));
        let one = apply(&list, state(1, 0));
        assert_eq!(one.layout, None);
        assert!(one.options.is_empty());

        let two = apply(&list, state(2, 0));
        assert_eq!(two.layout, Some((LayoutKind::Spotlight, true)));
        assert_eq!(two.options["video.background_color"], json!("hotpink"));
        assert_eq!(two.options["grid.columns"], json!(3));

        let three_pinned = apply(&list, state(3, 1));
        assert_eq!(three_pinned.layout, Some((LayoutKind::SingleParticipant, false)));
        assert_eq!(three_pinned.options["video.background_color"], json!("#00ff00"));
        assert_eq!(three_pinned.options["grid.columns"], json!(3));
    }

    #[test]
    fn an_action_without_condition_always_applies() {
        let list = actions(json!([{"action_type": "layout_override", "layout": "grid"}]));
        assert_eq!(apply(&list, state(0, 0)).layout, Some((LayoutKind::Grid, false)));
    }

    #[test]
    fn malformed_actions_name_the_place() {
        let cases = [
            (json!({}), "custom_actions", "expected an array"),
            (
                json!([{"action_type": "mute"}]),
                "custom_actions[0].action_type",
                "layout_override or options_override",
            ),
            (
                json!([{"action_type": "layout_override", "layout": "carousel"}]),
                "custom_actions[0].layout",
                "expected one of grid",
            ),
            (
                json!([{"action_type": "layout_override", "layout": "grid", "when": 1}]),
                "custom_actions[0].when",
                "unknown field",
            ),
            (
                json!([{"action_type": "layout_override", "layout": "grid", "condition": {"participant_count": {"$gt": "x"}}}]),
                "custom_actions[0].condition.participant_count.$gt",
                "expected a number",
            ),
            (
                json!([{"action_type": "options_override", "options": {"video.background_color": "nope"}}]),
                "custom_actions[0].options.video.background_color",
                "CSS colour",
            ),
            (
                json!([{"action_type": "options_override"}]),
                "custom_actions[0].options",
                "expected an object",
            ),
        ];
        for (value, path, message) in cases {
            let errors = parse(&RawOptions::from([(ACTIONS_KEY.to_owned(), value.clone())])).unwrap_err();
            assert_eq!(errors[0].0, path, "{value}");
            assert!(errors[0].1.contains(message), "{value}: {}", errors[0].1);
        }
    }
}
