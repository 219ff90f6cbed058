//! Layout options: defaults from `layouts/*.toml`, overridden by the job's `layout.options`,
//! resolved into typed values. Every error names the option key and what was expected.

use super::filter::{Condition, PARTICIPANT_FIELDS};
use super::values::{self, HAlign, Inset, Rgba, VAlign};
use serde_json::Value;
use std::collections::BTreeMap;

pub type RawOptions = BTreeMap<String, Value>;

/// The layouts a job may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutKind {
    Grid,
    Spotlight,
    SingleParticipant,
    Mobile,
}

impl LayoutKind {
    pub const NAMES: &[&str] = &[
        "grid",
        "spotlight",
        "single-participant",
        "mobile",
        "dominant-speaker",
    ];

    /// Parses a layout name; `dominant-speaker` (used in the seed's custom-action example) is
    /// the single-participant layout, which follows the dominant speaker when nobody is pinned.
    pub fn parse(name: &str) -> Option<LayoutKind> {
        Some(match name {
            "grid" => LayoutKind::Grid,
            "spotlight" => LayoutKind::Spotlight,
            "single-participant" | "single_participant" | "dominant-speaker" => LayoutKind::SingleParticipant,
            "mobile" => LayoutKind::Mobile,
            _ => return None,
        })
    }

    fn defaults_file(self) -> &'static str {
        match self {
            LayoutKind::Grid => include_str!("../../layouts/grid.toml"),
            LayoutKind::Spotlight => include_str!("../../layouts/spotlight.toml"),
            LayoutKind::SingleParticipant => include_str!("../../layouts/single-participant.toml"),
            LayoutKind::Mobile => include_str!("../../layouts/mobile.toml"),
        }
    }

    /// The layout's defaults: `layouts/common.toml` overlaid with the layout's own file.
    pub fn defaults(self) -> RawOptions {
        let mut merged: RawOptions =
            toml::from_str(include_str!("../../layouts/common.toml")).expect("layouts/common.toml is valid");
        let own: RawOptions = toml::from_str(self.defaults_file()).expect("layout defaults file is valid");
        merged.extend(own);
        merged
    }
}

/// Other spellings seen in the seed's examples, mapped to the tables' keys.
const ALIASES: &[(&str, &str)] = &[
    ("layout.background_color", "video.background_color"),
    ("participant.border_radius", "participant.video_border_radius"),
    ("participant.border_color", "participant.video_border_color"),
    ("layout.spotlight.participants_bar_position", "grid.position"),
    (
        "participant_label.border_radius",
        "participant.label_border_radius",
    ),
    (
        "participant_label.background_color",
        "participant.label_background_color",
    ),
    ("participant_label.text_color", "participant.label_text_color"),
    ("participant_label.border_color", "participant.label_border_color"),
    ("participant_label.display", "participant.label_display"),
];

/// Keys with a special meaning that are not plain values.
pub const FILTER_KEY: &str = "participant.filter";
/// The longest `title.text` taken, in characters.
pub const LONGEST_TITLE: usize = 200;
pub const ACTIONS_KEY: &str = "custom_actions";

/// The table key for `key`, after aliases.
pub fn canonical(key: &str) -> &str {
    ALIASES
        .iter()
        .find(|(alias, _)| *alias == key)
        .map_or(key, |(_, k)| k)
}

/// Whether the engine knows `key` (after aliases); unknown keys are warnings.
pub fn is_known(key: &str) -> bool {
    let key = canonical(key);
    key == FILTER_KEY || key == ACTIONS_KEY || LayoutKind::Grid.defaults().contains_key(key)
}

/// Job options with aliases replaced by table keys.
pub fn normalize(options: &RawOptions) -> RawOptions {
    options
        .iter()
        .map(|(k, v)| (canonical(k).to_owned(), v.clone()))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleMode {
    /// The whole video is visible, padded to the box.
    Fit,
    /// The box is filled; the video is cropped to its aspect.
    Fill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Top,
    Bottom,
    Left,
    Right,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LabelStyle {
    pub display: bool,
    pub text: Rgba,
    pub background: Rgba,
    pub border: Option<Rgba>,
    /// Corner radius in pixels at 720 lines; zero when not rounded.
    pub radius: f64,
    pub horizontal: HAlign,
    pub vertical: VAlign,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BorderStyle {
    /// Stroke width in pixels at 720 lines (0: none).
    pub width: f64,
    pub colour: Rgba,
    pub highlight: Rgba,
    /// Corner radius in pixels at 720 lines; zero when not rounded.
    pub radius: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GridParams {
    pub position: Side,
    pub columns: u32,
    pub rows: u32,
    pub size_percentage: f64,
    /// Pixels at 720 lines.
    pub margin: f64,
    pub cell_padding: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Corner {
    pub horizontal: HAlign,
    pub vertical: VAlign,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TitleStyle {
    pub text: String,
    pub colour: Rgba,
    pub place: Corner,
}

/// Every option of a layout, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct LayoutOptions {
    pub background: Rgba,
    pub scale_mode: ScaleMode,
    pub screenshare_scale_mode: ScaleMode,
    pub border: BorderStyle,
    pub label: LabelStyle,
    pub placeholder: Rgba,
    pub aspect_ratio: Option<f64>,
    pub logo_url: Option<String>,
    pub logo_place: Corner,
    pub title: Option<TitleStyle>,
    pub presenter_visible: bool,
    pub screenshare_layout: LayoutKind,
    pub padding_inline: Inset,
    pub grid: GridParams,
    pub filter: Option<Condition>,
}

/// One bad option: its key (relative to `layout.options`) and what was expected.
pub type OptionError = (String, String);

impl LayoutOptions {
    /// Resolves `options` (job options, already merged with any overrides) over the defaults of
    /// `kind`. All bad options are reported, each with its key.
    pub fn resolve(kind: LayoutKind, options: &RawOptions) -> Result<LayoutOptions, Vec<OptionError>> {
        let mut merged = kind.defaults();
        merged.extend(normalize(options));
        let mut r = Reader {
            options: &merged,
            errors: Vec::new(),
        };
        let rounded = |r: &mut Reader, flag: &str, radius: &str| {
            let rounded = r.get(flag, values::boolean, true);
            let radius = r.get(radius, values::radius, 0.0);
            if rounded { radius } else { 0.0 }
        };
        let border_width = r.get(
            "participant.video_border_width",
            |v| match v {
                Value::Bool(b) => Ok(if *b { 2.0 } else { 0.0 }),
                _ => values::pixels(v, 50.0)
                    .map_err(|_| values::expected("true, false or a width in pixels from 0 to 50", v)),
            },
            0.0,
        );
        let border = BorderStyle {
            width: border_width,
            colour: r.get(
                "participant.video_border_color",
                values::colour,
                Rgba::TRANSPARENT,
            ),
            highlight: r.get(
                "participant.video_highlight_border_color",
                values::colour,
                Rgba::TRANSPARENT,
            ),
            radius: rounded(
                &mut r,
                "participant.video_border_rounded",
                "participant.video_border_radius",
            ),
        };
        let label_border = r.get(
            "participant.label_border_color",
            values::colour,
            Rgba::TRANSPARENT,
        );
        let label = LabelStyle {
            display: r.get("participant.label_display", values::boolean, true),
            text: r.get("participant.label_text_color", values::colour, Rgba::opaque(0)),
            background: r.get(
                "participant.label_background_color",
                values::colour,
                Rgba::TRANSPARENT,
            ),
            border: r
                .get("participant.label_display_border", values::boolean, true)
                .then_some(label_border),
            radius: rounded(
                &mut r,
                "participant.label_border_rounded",
                "participant.label_border_radius",
            ),
            horizontal: r.get(
                "participant.label_horizontal_position",
                values::h_align,
                HAlign::Left,
            ),
            vertical: r.get(
                "participant.label_vertical_position",
                values::v_align,
                VAlign::Bottom,
            ),
        };
        let text = |v: &Value| {
            v.as_str()
                .map(|s| s.trim().to_owned())
                .ok_or_else(|| values::expected("a string", v))
        };
        let logo_url = r.get("logo.image_url", text, String::new());
        let title_text = r.get(
            "title.text",
            |v: &Value| {
                let title = text(v)?;
                match title.chars().count() {
                    n if n > LONGEST_TITLE => Err(format!(
                        "expected a title of at most {LONGEST_TITLE} characters; got {n}"
                    )),
                    _ => Ok(title),
                }
            },
            String::new(),
        );
        let title = TitleStyle {
            text: title_text,
            colour: r.get("title.color", values::colour, Rgba::opaque(0xffffff)),
            place: Corner {
                horizontal: r.get("title.horizontal_position", values::h_align, HAlign::Center),
                vertical: r.get("title.vertical_position", values::v_align, VAlign::Top),
            },
        };
        let side = |v: &Value| {
            Ok(match values::one_of(v, &["top", "bottom", "left", "right"])? {
                "top" => Side::Top,
                "bottom" => Side::Bottom,
                "left" => Side::Left,
                _ => Side::Right,
            })
        };
        let options = LayoutOptions {
            background: r.get("video.background_color", values::colour, Rgba::opaque(0)),
            scale_mode: r.get("video.scale_mode", scale_mode, ScaleMode::Fill),
            screenshare_scale_mode: r.get("video.screenshare_scale_mode", scale_mode, ScaleMode::Fit),
            border,
            label,
            placeholder: r.get(
                "participant.placeholder_background_color",
                values::colour,
                Rgba::opaque(0),
            ),
            aspect_ratio: r.get("participant.aspect_ratio", values::aspect_ratio, None),
            logo_place: Corner {
                horizontal: r.get("logo.horizontal_position", values::h_align, HAlign::Center),
                vertical: r.get("logo.vertical_position", values::v_align, VAlign::Top),
            },
            logo_url: Some(logo_url).filter(|u| !u.is_empty()),
            title: Some(title).filter(|t| !t.text.is_empty()),
            presenter_visible: r.get("presenter_visible", values::boolean, true),
            screenshare_layout: r.get(
                "screenshare_layout",
                |v| {
                    values::one_of(v, &["grid", "spotlight", "single-participant"])
                        .map(|name| LayoutKind::parse(name).unwrap_or(LayoutKind::Spotlight))
                },
                LayoutKind::Spotlight,
            ),
            padding_inline: r.get(
                "layout.single-participant.padding_inline",
                values::inset,
                Inset::Pixels(0.0),
            ),
            grid: GridParams {
                position: r.get("grid.position", side, Side::Bottom),
                columns: r.get("grid.columns", |v| values::count(v, 1, 10), 5),
                rows: r.get("grid.rows", |v| values::count(v, 1, 10), 1),
                size_percentage: r.get("grid.size_percentage", |v| values::number(v, 5.0, 100.0), 20.0),
                margin: r.get("grid.margin", |v| values::pixels(v, 200.0), 10.0),
                cell_padding: r.get("grid.cell_padding", |v| values::pixels(v, 200.0), 10.0),
            },
            filter: match merged.get(FILTER_KEY) {
                None | Some(Value::Null) => None,
                Some(value) => match Condition::parse(value, PARTICIPANT_FIELDS) {
                    Ok(c) => Some(c),
                    Err(errors) => {
                        for e in errors {
                            let key = if e.path.is_empty() {
                                FILTER_KEY.to_owned()
                            } else {
                                format!("{FILTER_KEY}.{}", e.path)
                            };
                            r.errors.push((key, e.message));
                        }
                        None
                    }
                },
            },
        };
        if r.errors.is_empty() {
            Ok(options)
        } else {
            Err(r.errors)
        }
    }
}

fn scale_mode(value: &Value) -> Result<ScaleMode, String> {
    Ok(match values::one_of(value, &["fit", "fill"])? {
        "fit" => ScaleMode::Fit,
        _ => ScaleMode::Fill,
    })
}

/// Reads typed values, collecting errors instead of stopping at the first.
struct Reader<'a> {
    options: &'a RawOptions,
    errors: Vec<OptionError>,
}

impl Reader<'_> {
    fn get<T>(&mut self, key: &str, parse: impl Fn(&Value) -> Result<T, String>, fallback: T) -> T {
        let value = self.options.get(key).unwrap_or(&Value::Null);
        match parse(value) {
            Ok(v) => v,
            Err(message) => {
                self.errors.push((key.to_owned(), message));
                fallback
            }
        }
    }
}

/// Scales a length given in pixels at 720 lines to an output `height` lines high.
pub fn scaled(px720: f64, height: u32) -> f64 {
    px720 * f64::from(height) / 720.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(pairs: &[(&str, Value)]) -> RawOptions {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn defaults_follow_the_seed_tables() {
        let grid = LayoutOptions::resolve(LayoutKind::Grid, &RawOptions::new()).unwrap();
        assert_eq!(grid.background, Rgba::opaque(0));
        assert_eq!(grid.scale_mode, ScaleMode::Fill);
        assert_eq!(grid.screenshare_scale_mode, ScaleMode::Fit);
        assert_eq!(
            (grid.grid.columns, grid.grid.rows, grid.grid.size_percentage),
            (5, 4, 90.0)
        );
        assert_eq!(grid.border.colour, Rgba::opaque(0xcccccc));
        assert_eq!(grid.border.highlight, Rgba::opaque(0x7cfc00));
        assert_eq!(grid.border.width, 2.0);
        assert_eq!(grid.label.text, Rgba::opaque(0));
        assert_eq!(grid.label.background, Rgba::TRANSPARENT);
        assert_eq!(grid.label.border, Some(Rgba::opaque(0xcccccc)));
        assert_eq!(
            (grid.label.horizontal, grid.label.vertical),
            (HAlign::Left, VAlign::Bottom)
        );
        assert_eq!(grid.screenshare_layout, LayoutKind::Spotlight);
        assert!(grid.presenter_visible && grid.logo_url.is_none() && grid.title.is_none());
        let spotlight = LayoutOptions::resolve(LayoutKind::Spotlight, &RawOptions::new()).unwrap();
        assert_eq!((spotlight.grid.rows, spotlight.grid.size_percentage), (1, 20.0));
        assert_eq!(spotlight.grid.position, Side::Bottom);
    }

    #[test]
    fn the_seed_example_options_resolve() {
        let o = LayoutOptions::resolve(
            LayoutKind::Spotlight,
            &options(&[
                ("logo.image_url", json!("https://example.com/logo.png")),
                ("logo.horizontal_position", json!("center")),
                ("title.text", json!("Building Stream Video Q&A")),
                ("title.horizontal_position", json!("center")),
                ("title.color", json!("black")),
                ("participant_label.border_radius", json!("0px")),
                ("participant.border_radius", json!("0px")),
                ("layout.spotlight.participants_bar_position", json!("top")),
                ("layout.background_color", json!("#f2f2f2")),
                ("participant.placeholder_background_color", json!("#1f1f1f")),
                ("layout.single-participant.padding_inline", json!("20%")),
                ("participant_label.background_color", json!("transparent")),
            ]),
        )
        .unwrap();
        assert_eq!(o.grid.position, Side::Top);
        assert_eq!(o.background, Rgba::opaque(0xf2f2f2));
        assert_eq!((o.border.radius, o.label.radius), (0.0, 0.0));
        assert_eq!(o.title.unwrap().colour, Rgba::opaque(0));
        assert_eq!(o.padding_inline, Inset::Percent(20.0));
        assert_eq!(o.placeholder, Rgba::opaque(0x1f1f1f));
    }

    #[test]
    fn bad_values_name_their_keys() {
        let errors = LayoutOptions::resolve(
            LayoutKind::Grid,
            &options(&[
                ("video.background_color", json!("blue-ish")),
                ("grid.cell_padding", json!(-3)),
                ("video.scale_mode", json!("stretch")),
                ("grid.columns", json!(0)),
                ("participant.filter", json!({"isPinned": "yes"})),
                ("layout.background_color", json!(7)),
            ]),
        )
        .unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.contains(&"video.background_color"), "{keys:?}");
        for key in [
            "grid.cell_padding",
            "video.scale_mode",
            "grid.columns",
            "participant.filter.isPinned.$eq",
        ] {
            assert!(keys.contains(&key), "{key} in {keys:?}");
        }
        let scale = errors.iter().find(|(k, _)| k == "video.scale_mode").unwrap();
        assert!(scale.1.contains("one of fit, fill"));
    }

    #[test]
    fn unrounded_corners_have_no_radius() {
        let o = LayoutOptions::resolve(
            LayoutKind::Grid,
            &options(&[
                ("participant.video_border_rounded", json!(false)),
                ("participant.video_border_width", json!(false)),
            ]),
        )
        .unwrap();
        assert_eq!((o.border.radius, o.border.width), (0.0, 0.0));
        assert!(is_known("participant_label.border_radius") && !is_known("participant.shadow"));
    }
}
