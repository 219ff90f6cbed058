//! Layout options: defaults from `layouts/*.toml`, overridden by the job's `layout.options`.

use serde_json::Value;
use std::collections::BTreeMap;

/// Keys the grid layout applies; any other key in `layout.options` is a warning.
pub const SUPPORTED_OPTIONS: &[&str] = &["video.background_color", "grid.cell_padding"];

/// The grid's resolved options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridOptions {
    /// Canvas colour where no tile is drawn, as 0xRRGGBB.
    pub background_rgb: u32,
    /// Padding between cells at 720 lines.
    pub cell_padding: u32,
}

impl GridOptions {
    /// Resolves the options of a job; errors name the option key and what was expected.
    pub fn resolve(options: &BTreeMap<String, Value>) -> Result<GridOptions, Vec<(String, String)>> {
        let defaults: BTreeMap<String, Value> =
            toml::from_str(include_str!("../../layouts/grid.toml")).expect("layouts/grid.toml is valid");
        let get = |key: &str| {
            options
                .get(key)
                .or_else(|| defaults.get(key))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let mut errors = Vec::new();
        let background_rgb = parse_colour(&get("video.background_color")).unwrap_or_else(|| {
            errors.push((
                "video.background_color".into(),
                format!(
                    "expected a colour like \"#1f1f1f\"; got {}",
                    get("video.background_color")
                ),
            ));
            0
        });
        let cell_padding = parse_size(&get("grid.cell_padding")).unwrap_or_else(|| {
            errors.push((
                "grid.cell_padding".into(),
                format!(
                    "expected a size in pixels from 0 to 200 (10 or \"10px\"); got {}",
                    get("grid.cell_padding")
                ),
            ));
            0
        });
        if errors.is_empty() {
            Ok(GridOptions {
                background_rgb,
                cell_padding,
            })
        } else {
            Err(errors)
        }
    }

    /// Padding in pixels on a canvas `height` lines high (even, so chroma planes stay aligned).
    pub fn padding_px(&self, height: u32) -> u32 {
        (self.cell_padding * height / 720) & !1
    }
}

fn parse_colour(value: &Value) -> Option<u32> {
    let hex = value.as_str()?.strip_prefix('#')?;
    match hex.len() {
        6 => u32::from_str_radix(hex, 16).ok(),
        // #rrggbbaa: the canvas is opaque, so alpha is dropped.
        8 => u32::from_str_radix(&hex[..6], 16).ok(),
        _ => None,
    }
}

fn parse_size(value: &Value) -> Option<u32> {
    let n = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().trim_end_matches("px").trim().parse().ok()?,
        _ => return None,
    };
    (0.0..=200.0).contains(&n).then_some(n.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn defaults_come_from_the_data_file() {
        let o = GridOptions::resolve(&BTreeMap::new()).unwrap();
        assert_eq!(
            o,
            GridOptions {
                background_rgb: 0x000000,
                cell_padding: 10
            }
        );
        assert_eq!(o.padding_px(720), 10);
        assert_eq!(o.padding_px(1080), 14);
    }

    #[test]
    fn job_options_override_defaults() {
        let o = GridOptions::resolve(&options(&[
            ("video.background_color", json!("#f2f2f2")),
            ("grid.cell_padding", json!("4px")),
        ]))
        .unwrap();
        assert_eq!(
            o,
            GridOptions {
                background_rgb: 0xf2f2f2,
                cell_padding: 4
            }
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        let errors = GridOptions::resolve(&options(&[
            ("video.background_color", json!("blue")),
            ("grid.cell_padding", json!(-3)),
        ]))
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["video.background_color", "grid.cell_padding"]);
        assert!(errors[0].1.contains("got \"blue\""));
    }
}
