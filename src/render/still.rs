//! Still images for moderation: a frame scaled to fit a box (keeping its aspect, never enlarged)
//! and encoded as JPEG.

use anyhow::Context;
use image::{RgbImage, imageops};

const JPEG_QUALITY: u8 = 85;

/// JPEG bytes of an RGB frame, scaled down to fit within `box_size` if it is larger.
pub fn jpeg_fitting(width: u32, height: u32, rgb: Vec<u8>, box_size: (u32, u32)) -> anyhow::Result<Vec<u8>> {
    let frame = RgbImage::from_raw(width, height, rgb).context("frame size does not match its data")?;
    let (w, h) = fitted((width, height), box_size);
    let frame = if (w, h) == (width, height) {
        frame
    } else {
        imageops::resize(&frame, w, h, imageops::FilterType::Triangle)
    };
    // jpeg-encoder (SIMD) rather than image's own encoder: a still every few seconds for every
    // participant makes this the hot spot of a frames-only job.
    let mut out = Vec::new();
    let size = |v: u32| u16::try_from(v).context("frame too large for JPEG");
    jpeg_encoder::Encoder::new(&mut out, JPEG_QUALITY)
        .encode(frame.as_raw(), size(w)?, size(h)?, jpeg_encoder::ColorType::Rgb)
        .context("JPEG encoding failed")?;
    Ok(out)
}

/// The size of `frame` scaled to fit within `bounds` with its aspect kept; never larger.
pub fn fitted(frame: (u32, u32), bounds: (u32, u32)) -> (u32, u32) {
    let scale = (f64::from(bounds.0) / f64::from(frame.0))
        .min(f64::from(bounds.1) / f64::from(frame.1))
        .min(1.0);
    let w = (f64::from(frame.0) * scale).round().max(1.0) as u32;
    let h = (f64::from(frame.1) * scale).round().max(1.0) as u32;
    (w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_fit_the_box_keeping_aspect_and_are_never_enlarged() {
        assert_eq!(fitted((1920, 1080), (1280, 720)), (1280, 720));
        assert_eq!(fitted((1280, 1024), (1280, 720)), (900, 720));
        assert_eq!(fitted((720, 1280), (640, 360)), (203, 360));
        assert_eq!(fitted((640, 360), (1280, 720)), (640, 360));
    }

    #[test]
    fn a_jpeg_of_the_fitted_size_is_made() {
        let rgb = [200u8, 30, 40].repeat(320 * 240);
        let jpeg = jpeg_fitting(320, 240, rgb, (160, 90)).unwrap();
        let decoded = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(decoded.dimensions(), (120, 90));
        let p = decoded.get_pixel(60, 45);
        assert!(
            (i32::from(p[0]) - 200).abs() < 10 && (i32::from(p[1]) - 30).abs() < 10,
            "{p:?}"
        );
    }
}
