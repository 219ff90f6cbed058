//! Layout engine: turns the participants of a call into a scene (tiles, labels, logo, title).
//! Pure: no media types here.

mod actions;
mod engine;
pub mod filter;
mod grid;
mod options;
mod scene;
pub mod values;

pub use actions::CustomAction;
pub use engine::{LayoutPlan, ParticipantView, fit, initials};
pub use grid::{CAMERA_ASPECT, bar, grid, tiles_in};
pub use options::{Corner, LabelStyle, LayoutKind, LayoutOptions, RawOptions, ScaleMode, Side, is_known};
pub use scene::{Chrome, Logo, Scene, Stroke, Tile, TileContent};
pub use values::{HAlign, Rgba, VAlign};

/// Every `logo.image_url` value in the options, custom actions included.
pub fn collect_logo_urls(value: &serde_json::Value, urls: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v.as_str()) {
                    ("logo.image_url", Some(url))
                        if !url.trim().is_empty() && !urls.iter().any(|u| u == url.trim()) =>
                    {
                        urls.push(url.trim().to_owned())
                    }
                    _ => collect_logo_urls(v, urls),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_logo_urls(v, urls)),
        _ => {}
    }
}

/// A rectangle on the output canvas, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub fn center(&self) -> (i32, i32) {
        (self.x + self.w as i32 / 2, self.y + self.h as i32 / 2)
    }

    pub fn right(&self) -> i32 {
        self.x + self.w as i32
    }

    pub fn bottom(&self) -> i32 {
        self.y + self.h as i32
    }

    pub fn intersects(&self, other: &Rect) -> bool {
        self.x < other.right() && other.x < self.right() && self.y < other.bottom() && other.y < self.bottom()
    }

    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }
}
