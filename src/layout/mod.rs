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
