//! A scene: everything one output frame shows, in output pixels. The engine makes scenes; the
//! media graph and the reference renderer only draw them.

use super::Rect;
use super::options::{Corner, LabelStyle, LayoutKind, ScaleMode, TitleStyle};
use super::values::Rgba;

#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    pub width: u32,
    pub height: u32,
    /// The layout in effect after custom actions and screen sharing.
    pub layout: LayoutKind,
    pub background: Rgba,
    /// Bottom to top.
    pub tiles: Vec<Tile>,
    pub label_style: LabelStyle,
    pub logo: Option<Logo>,
    pub title: Option<TitleStyle>,
}

impl Scene {
    /// Output pixels for a length given at 720 lines.
    pub fn px(&self, px720: f64) -> f64 {
        px720 * f64::from(self.height) / 720.0
    }

    /// The tile showing `input`, if it is on screen.
    pub fn tile_of(&self, input: &str) -> Option<&Tile> {
        self.tiles
            .iter()
            .find(|t| matches!(&t.content, TileContent::Video { input: i, .. } if i == input))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tile {
    pub user_id: String,
    pub content: TileContent,
    pub rect: Rect,
    pub z: u32,
    /// Stroke drawn inside the tile's edge; `None` for no border.
    pub border: Option<Stroke>,
    /// Corner radius in output pixels (0: square corners).
    pub radius: u32,
    /// The participant is speaking; the border uses the highlight colour.
    pub highlighted: bool,
    /// Text of the name label, when labels are shown.
    pub label: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TileContent {
    /// A track of the call, by input id.
    Video { input: String, scale: ScaleMode },
    /// A participant without video: a coloured tile with their initials.
    Placeholder { colour: Rgba, initials: String },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stroke {
    pub width: u32,
    pub colour: Rgba,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Logo {
    pub url: String,
    pub place: Corner,
}

/// Sizes of the logo and title, shared by the engine (which keeps their band free of tiles)
/// and the overlay (which draws them).
#[derive(Debug, Clone, Copy)]
pub struct Chrome {
    /// Distance from the output's edge.
    pub margin: u32,
    /// The logo is scaled to this height (and at most 30% of the width).
    pub logo_height: u32,
    /// Text size of the title, in pixels.
    pub title_size: u32,
    /// Height of the title's line box.
    pub title_height: u32,
}

impl Chrome {
    pub fn of(height: u32) -> Chrome {
        let px = |v: f64| (v * f64::from(height) / 720.0).round() as u32;
        let title_size = px(28.0);
        Chrome {
            margin: px(16.0),
            logo_height: height / 10,
            title_size,
            title_height: title_size * 5 / 4 + 2,
        }
    }
}
