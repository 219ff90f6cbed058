//! A whole frame drawn from a scene without the media graph, with each video tile painted a
//! flat colour: the reference pictures of the layouts.

use super::overlay::Sprite;
use crate::layout::{CAMERA_ASPECT, Rgba, ScaleMode, Scene, TileContent, fit};
use image::RgbaImage;

/// Draws `scene`: background, video tiles in `colour_of(input)` (a 16:9 source is assumed for
/// `fit` tiles), then the sprites.
pub fn picture(scene: &Scene, sprites: &[Sprite], colour_of: impl Fn(&str) -> Rgba) -> RgbaImage {
    let bg = scene.background;
    let mut image = RgbaImage::from_pixel(scene.width, scene.height, image::Rgba([bg.r, bg.g, bg.b, 255]));
    let mut tiles: Vec<_> = scene.tiles.iter().collect();
    tiles.sort_by_key(|t| t.z);
    for tile in tiles {
        let TileContent::Video { input, scale } = &tile.content else {
            continue;
        };
        let rect = match scale {
            ScaleMode::Fill => tile.rect,
            ScaleMode::Fit => fit(tile.rect, CAMERA_ASPECT),
        };
        let c = colour_of(input);
        for y in rect.y.max(0)..rect.bottom().min(scene.height as i32) {
            for x in rect.x.max(0)..rect.right().min(scene.width as i32) {
                image.put_pixel(x as u32, y as u32, image::Rgba([c.r, c.g, c.b, 255]));
            }
        }
    }
    for sprite in sprites {
        image::imageops::overlay(
            &mut image,
            &sprite.image,
            i64::from(sprite.x),
            i64::from(sprite.y),
        );
    }
    image
}
