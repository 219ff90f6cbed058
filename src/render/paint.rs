//! Anti-aliased drawing primitives on straight-alpha RGBA images: rounded boxes, strokes, text.

use crate::layout::Rgba;
use ab_glyph::{Font, FontArc, PxScale, ScaleFont};
use image::RgbaImage;

/// Signed distance from (px, py) to the edge of a `w` x `h` box with corner radius `r`
/// (negative inside).
pub fn rounded_box_distance(px: f64, py: f64, w: f64, h: f64, r: f64) -> f64 {
    let (hw, hh) = (w / 2.0, h / 2.0);
    let qx = (px - hw).abs() - (hw - r);
    let qy = (py - hh).abs() - (hh - r);
    let outside = (qx.max(0.0).powi(2) + qy.max(0.0).powi(2)).sqrt();
    outside + qx.max(qy).min(0.0) - r
}

/// Blends `colour` at `coverage` (0..1) over the pixel at (x, y), source-over, straight alpha.
pub fn blend(image: &mut RgbaImage, x: i64, y: i64, colour: Rgba, coverage: f64) {
    if x < 0 || y < 0 || x >= i64::from(image.width()) || y >= i64::from(image.height()) {
        return;
    }
    let src_a = f64::from(colour.a) / 255.0 * coverage.clamp(0.0, 1.0);
    if src_a <= 0.0 {
        return;
    }
    let px = image.get_pixel_mut(x as u32, y as u32);
    let dst_a = f64::from(px[3]) / 255.0;
    let out_a = src_a + dst_a * (1.0 - src_a);
    let mix =
        |s: u8, d: u8| ((f64::from(s) * src_a + f64::from(d) * dst_a * (1.0 - src_a)) / out_a).round() as u8;
    *px = image::Rgba([
        mix(colour.r, px[0]),
        mix(colour.g, px[1]),
        mix(colour.b, px[2]),
        (out_a * 255.0).round() as u8,
    ]);
}

/// Fills a box with rounded corners, then strokes its edge inside with `border`.
pub fn rounded_box(
    image: &mut RgbaImage,
    (x0, y0, w, h): (i64, i64, u32, u32),
    radius: f64,
    fill: Rgba,
    border: Option<(Rgba, f64)>,
) {
    let (wf, hf) = (f64::from(w), f64::from(h));
    let radius = radius.min(wf.min(hf) / 2.0);
    for y in 0..h {
        for x in 0..w {
            let d = rounded_box_distance(f64::from(x) + 0.5, f64::from(y) + 0.5, wf, hf, radius);
            let inside = (0.5 - d).clamp(0.0, 1.0);
            if inside <= 0.0 {
                continue;
            }
            let (px, py) = (x0 + i64::from(x), y0 + i64::from(y));
            match border {
                Some((colour, width)) if width > 0.0 => {
                    let core = (0.5 - d - width).clamp(0.0, 1.0);
                    blend(image, px, py, fill, core);
                    blend(image, px, py, colour, inside - core);
                }
                _ => blend(image, px, py, fill, inside),
            }
        }
    }
}

/// Text set in one font at one size.
pub struct TextStyle<'a> {
    pub font: &'a FontArc,
    pub size: f32,
    pub colour: Rgba,
}

impl TextStyle<'_> {
    fn scaled(&self) -> ab_glyph::PxScaleFont<&FontArc> {
        self.font.as_scaled(PxScale::from(self.size))
    }

    pub fn width(&self, text: &str) -> f64 {
        let font = self.scaled();
        let mut width = 0.0;
        let mut last = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(prev) = last {
                width += font.kern(prev, id);
            }
            width += font.h_advance(id);
            last = Some(id);
        }
        f64::from(width)
    }

    pub fn height(&self) -> f64 {
        let font = self.scaled();
        f64::from(font.ascent() - font.descent())
    }

    /// The longest prefix of `text` that fits `max_width`, with an ellipsis when cut.
    pub fn fit(&self, text: &str, max_width: f64) -> String {
        if self.width(text) <= max_width {
            return text.to_owned();
        }
        // The longest prefix that fits with an ellipsis, found by halving (a long text would
        // otherwise be measured once per character it loses).
        let ends: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
        let fits = |end: usize| self.width(&format!("{}…", &text[..end])) <= max_width;
        let (mut low, mut high) = (0usize, ends.len());
        while low < high {
            let middle = (low + high).div_ceil(2);
            if fits(ends[middle - 1]) {
                low = middle;
            } else {
                high = middle - 1;
            }
        }
        match low {
            0 => String::new(),
            n => format!("{}…", text[..ends[n - 1]].trim_end()),
        }
    }

    /// Draws `text` with its top-left corner (of the line box) at (x, y).
    pub fn draw(&self, image: &mut RgbaImage, x: f64, y: f64, text: &str) {
        let font = self.scaled();
        let baseline = y + f64::from(font.ascent());
        let mut caret = x;
        let mut last = None;
        for c in text.chars() {
            let id = font.glyph_id(c);
            if let Some(prev) = last {
                caret += f64::from(font.kern(prev, id));
            }
            let glyph = id.with_scale_and_position(
                PxScale::from(self.size),
                ab_glyph::point(caret as f32, baseline as f32),
            );
            if let Some(outlined) = self.font.outline_glyph(glyph) {
                let bounds = outlined.px_bounds();
                outlined.draw(|gx, gy, coverage| {
                    let px = bounds.min.x as i64 + i64::from(gx);
                    let py = bounds.min.y as i64 + i64::from(gy);
                    blend(image, px, py, self.colour, f64::from(coverage));
                });
            }
            caret += f64::from(font.h_advance(id));
            last = Some(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_negative_inside_and_rounds_corners() {
        assert!(rounded_box_distance(50.0, 50.0, 100.0, 100.0, 10.0) < 0.0);
        assert!(
            rounded_box_distance(0.5, 0.5, 100.0, 100.0, 10.0) > 0.0,
            "corner cut off"
        );
        assert!(
            rounded_box_distance(0.5, 0.5, 100.0, 100.0, 0.0) < 0.0,
            "square corner kept"
        );
        assert!((rounded_box_distance(0.0, 50.0, 100.0, 100.0, 10.0)).abs() < 1e-9);
    }

    #[test]
    fn blending_over_transparent_keeps_the_colour() {
        let mut image = RgbaImage::new(2, 1);
        blend(&mut image, 0, 0, Rgba::opaque(0xff0000), 0.5);
        assert_eq!(image.get_pixel(0, 0).0, [255, 0, 0, 128]);
        blend(&mut image, 5, 5, Rgba::opaque(0xff0000), 1.0);
    }

    #[test]
    fn a_bordered_box_has_the_border_at_its_edge_and_fill_inside() {
        let mut image = RgbaImage::new(40, 20);
        rounded_box(
            &mut image,
            (0, 0, 40, 20),
            0.0,
            Rgba::opaque(0x0000ff),
            Some((Rgba::opaque(0xff0000), 2.0)),
        );
        assert_eq!(image.get_pixel(0, 10).0, [255, 0, 0, 255]);
        assert_eq!(image.get_pixel(20, 10).0, [0, 0, 255, 255]);
    }
}
