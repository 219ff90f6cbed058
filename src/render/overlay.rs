//! Everything of a scene that is not participant video, as small RGBA pictures ("sprites")
//! placed on the output: placeholder tiles, borders with rounded corners, name labels, logo
//! and title. The media graph blends them over the composite; reference pictures use them too.

use super::paint::{self, TextStyle};
use crate::layout::{Chrome, HAlign, Rect, Rgba, Scene, Tile, TileContent, VAlign};
use ab_glyph::FontArc;
use image::RgbaImage;

/// A picture at a place on the output.
#[derive(Debug, Clone, PartialEq)]
pub struct Sprite {
    pub x: i32,
    pub y: i32,
    pub image: RgbaImage,
}

/// What the overlay needs besides the scene.
pub struct Assets<'a> {
    pub font: Option<&'a FontArc>,
    pub logo: Option<&'a RgbaImage>,
}

/// The sprites of `scene`, bottom to top.
pub fn sprites(scene: &Scene, assets: &Assets) -> Vec<Sprite> {
    let mut out = Vec::new();
    let mut tiles: Vec<&Tile> = scene.tiles.iter().collect();
    tiles.sort_by_key(|t| t.z);
    for tile in tiles {
        if let TileContent::Placeholder { colour, initials } = &tile.content {
            out.push(placeholder(tile.rect, *colour, initials, assets.font));
        }
        out.extend(edges(tile, scene.background));
        if let (Some(text), Some(font)) = (&tile.label, assets.font) {
            out.extend(label(scene, tile.rect, text, font));
        }
    }
    let chrome = Chrome::of(scene.height);
    let margin = chrome.margin as i32;
    let mut logo_box: Option<(Rect, VAlign, HAlign)> = None;
    if let (Some(logo), Some(image)) = (&scene.logo, assets.logo) {
        let max_h = chrome.logo_height;
        let max_w = scene.width * 3 / 10;
        let scale =
            (f64::from(max_h) / f64::from(image.height())).min(f64::from(max_w) / f64::from(image.width()));
        let (w, h) = (
            ((f64::from(image.width()) * scale).round() as u32).max(1),
            ((f64::from(image.height()) * scale).round() as u32).max(1),
        );
        let resized = image::imageops::resize(image, w, h, image::imageops::FilterType::Triangle);
        let (x, y) = place(scene, w, h, logo.place.horizontal, logo.place.vertical, margin);
        logo_box = Some((Rect { x, y, w, h }, logo.place.vertical, logo.place.horizontal));
        out.push(Sprite { x, y, image: resized });
    }
    if let (Some(title), Some(font)) = (&scene.title, assets.font) {
        let style = TextStyle {
            font,
            size: scene.px(28.0) as f32,
            colour: title.colour,
        };
        let text = style.fit(&title.text, f64::from(scene.width) - 2.0 * f64::from(margin));
        let (w, h) = (
            style.width(&text).ceil() as u32 + 2,
            style.height().ceil() as u32 + 2,
        );
        let (x, mut y) = place(scene, w, h, title.place.horizontal, title.place.vertical, margin);
        // Beside a logo in the same spot, the title goes below it (above it at the bottom).
        if let Some((logo, v, hz)) = logo_box
            && v == title.place.vertical
            && hz == title.place.horizontal
        {
            y = match v {
                VAlign::Bottom => logo.y - h as i32 - margin / 2,
                _ => logo.bottom() + margin / 2,
            };
        }
        let mut image = RgbaImage::new(w, h);
        style.draw(&mut image, 1.0, 1.0, &text);
        out.push(Sprite { x, y, image });
    }
    out
}

/// Top-left corner of a `w` x `h` box at a side or corner of the output.
fn place(scene: &Scene, w: u32, h: u32, hz: HAlign, v: VAlign, margin: i32) -> (i32, i32) {
    let x = match hz {
        HAlign::Left => margin,
        HAlign::Center => (scene.width as i32 - w as i32) / 2,
        HAlign::Right => scene.width as i32 - w as i32 - margin,
    };
    let y = match v {
        VAlign::Top => margin,
        VAlign::Center => (scene.height as i32 - h as i32) / 2,
        VAlign::Bottom => scene.height as i32 - h as i32 - margin,
    };
    (x, y)
}

fn placeholder(rect: Rect, colour: Rgba, initials: &str, font: Option<&FontArc>) -> Sprite {
    let mut image = RgbaImage::from_pixel(rect.w, rect.h, image::Rgba([colour.r, colour.g, colour.b, 255]));
    if let Some(font) = font {
        let text_colour = if colour.luma() > 140 {
            Rgba::opaque(0x202020)
        } else {
            Rgba::opaque(0xf0f0f0)
        };
        let style = TextStyle {
            font,
            size: (rect.h.min(rect.w) as f32 * 0.3).max(8.0),
            colour: text_colour,
        };
        let (w, h) = (style.width(initials), style.height());
        style.draw(
            &mut image,
            (f64::from(rect.w) - w) / 2.0,
            (f64::from(rect.h) - h) / 2.0,
            initials,
        );
    }
    Sprite {
        x: rect.x,
        y: rect.y,
        image,
    }
}

/// The border stroke and the corners cut round, as four strips along the tile's edges (the
/// middle of the tile stays untouched, so blending costs little).
fn edges(tile: &Tile, background: Rgba) -> Vec<Sprite> {
    let stroke = tile.border.map_or(0, |b| b.width);
    let radius = tile.radius;
    let depth = stroke.max(radius) + 1;
    if (stroke == 0 && radius == 0) || tile.rect.w <= 2 * depth || tile.rect.h <= 2 * depth {
        return Vec::new();
    }
    let (w, h) = (tile.rect.w, tile.rect.h);
    let strips = [
        (0, 0, w, depth),
        (0, h - depth, w, depth),
        (0, depth, depth, h - 2 * depth),
        (w - depth, depth, depth, h - 2 * depth),
    ];
    let border = tile.border;
    strips
        .into_iter()
        .filter_map(|(sx, sy, sw, sh)| {
            let mut image = RgbaImage::new(sw, sh);
            let mut any = false;
            for y in 0..sh {
                for x in 0..sw {
                    let (cx, cy) = (f64::from(sx + x) + 0.5, f64::from(sy + y) + 0.5);
                    let d =
                        paint::rounded_box_distance(cx, cy, f64::from(w), f64::from(h), f64::from(radius));
                    let outside = (0.5 + d).clamp(0.0, 1.0);
                    let band =
                        border.map_or(0.0, |b| (0.5 + d + f64::from(b.width)).clamp(0.0, 1.0) - outside);
                    if radius > 0 && outside > 0.0 {
                        paint::blend(&mut image, i64::from(x), i64::from(y), background, outside);
                        any = true;
                    }
                    if let Some(b) = border
                        && band > 0.0
                    {
                        paint::blend(&mut image, i64::from(x), i64::from(y), b.colour, band);
                        any = true;
                    }
                }
            }
            any.then_some(Sprite {
                x: tile.rect.x + sx as i32,
                y: tile.rect.y + sy as i32,
                image,
            })
        })
        .collect()
}

/// The most characters of a participant's name a label shows; the rest could never fit a tile.
pub const LONGEST_LABEL: usize = 100;

fn label(scene: &Scene, rect: Rect, text: &str, font: &FontArc) -> Option<Sprite> {
    let text: String = text.chars().take(LONGEST_LABEL).collect();
    let s = &scene.label_style;
    let style = TextStyle {
        font,
        size: scene.px(15.0).max(9.0) as f32,
        colour: s.text,
    };
    let pad_x = scene.px(8.0);
    let pad_y = scene.px(3.0);
    let margin = scene.px(8.0);
    let max_text = f64::from(rect.w) - 2.0 * (margin + pad_x);
    if max_text < f64::from(style.size) {
        return None;
    }
    let text = style.fit(&text, max_text);
    if text.is_empty() {
        return None;
    }
    let w = (style.width(&text) + 2.0 * pad_x).ceil() as u32;
    let h = (style.height() + 2.0 * pad_y).ceil() as u32;
    let x = match s.horizontal {
        HAlign::Left => rect.x + margin as i32,
        HAlign::Center => rect.x + (rect.w as i32 - w as i32) / 2,
        HAlign::Right => rect.right() - margin as i32 - w as i32,
    };
    let y = match s.vertical {
        VAlign::Top => rect.y + margin as i32,
        VAlign::Center => rect.y + (rect.h as i32 - h as i32) / 2,
        VAlign::Bottom => rect.bottom() - margin as i32 - h as i32,
    };
    let mut image = RgbaImage::new(w, h);
    let border = s.border.map(|c| (c, scene.px(1.0).max(1.0)));
    paint::rounded_box(&mut image, (0, 0, w, h), scene.px(s.radius), s.background, border);
    style.draw(&mut image, pad_x, pad_y, &text);
    Some(Sprite { x, y, image })
}
