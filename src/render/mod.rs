//! Drawing what the layout engine decides: overlay sprites for the media graph and whole
//! reference pictures for tests. Pure Rust, no GStreamer.

mod assets;
mod overlay;
mod paint;
mod picture;
mod still;

pub use assets::{FONT_PATHS, load_font, load_logo};
pub use overlay::{Assets, Sprite, sprites};
pub use picture::picture;
pub use still::{fitted, jpeg_fitting};
