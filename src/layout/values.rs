//! Typed values of layout options: colours, sizes, positions. Each parser says what it expected,
//! so an error can name the option key and the accepted form.

use serde_json::Value;

/// A colour with alpha, straight (not premultiplied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgba {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

impl Rgba {
    pub const fn opaque(rgb: u32) -> Rgba {
        Rgba {
            r: (rgb >> 16) as u8,
            g: (rgb >> 8) as u8,
            b: rgb as u8,
            a: 255,
        }
    }

    pub const TRANSPARENT: Rgba = Rgba {
        r: 0,
        g: 0,
        b: 0,
        a: 0,
    };

    pub fn rgb(&self) -> u32 {
        (u32::from(self.r) << 16) | (u32::from(self.g) << 8) | u32::from(self.b)
    }

    pub fn is_visible(&self) -> bool {
        self.a > 0
    }

    /// Perceived brightness from 0 to 255, to pick readable text on a fill.
    pub fn luma(&self) -> u8 {
        ((u32::from(self.r) * 299 + u32::from(self.g) * 587 + u32::from(self.b) * 114) / 1000) as u8
    }
}

pub const COLOUR_EXPECTED: &str =
    "a CSS colour like \"#1f1f1f\", \"#00000080\", \"hotpink\" or \"transparent\"";

/// Parses a CSS colour: hex (3, 4, 6 or 8 digits), a named colour, `transparent`, `rgb()`.
pub fn colour(value: &Value) -> Result<Rgba, String> {
    let text = value.as_str().ok_or_else(|| expected(COLOUR_EXPECTED, value))?;
    let c = csscolorparser::parse(text.trim()).map_err(|_| expected(COLOUR_EXPECTED, value))?;
    let [r, g, b, a] = c.to_rgba8();
    Ok(Rgba { r, g, b, a })
}

/// A boolean, also written as the strings "true" and "false".
pub fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        _ => Err(expected("true or false", value)),
    }
}

/// A number, also written as a numeric string.
pub fn number(value: &Value, min: f64, max: f64) -> Result<f64, String> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| (min..=max).contains(n))
        .ok_or_else(|| expected(&format!("a number from {min} to {max}"), value))
}

/// A whole number in a range.
pub fn count(value: &Value, min: u32, max: u32) -> Result<u32, String> {
    let n = number(value, f64::from(min), f64::from(max))
        .ok()
        .filter(|n| n.fract() == 0.0);
    n.map(|n| n as u32)
        .ok_or_else(|| expected(&format!("a whole number from {min} to {max}"), value))
}

/// A length in pixels at 720 output lines: `10`, `"10px"`. Scaled with the output height.
pub fn pixels(value: &Value, max: f64) -> Result<f64, String> {
    let n = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().trim_end_matches("px").trim().parse().ok(),
        _ => None,
    };
    n.filter(|n| (0.0..=max).contains(n)).ok_or_else(|| {
        expected(
            &format!("a size in pixels from 0 to {max} (10 or \"10px\")"),
            value,
        )
    })
}

/// A corner radius. A bare number is in rem (16 px at 1080 lines, as in the web layouts);
/// `"8px"` is in pixels at 720 lines. Returned in pixels at 720 lines.
pub fn radius(value: &Value) -> Result<f64, String> {
    const EXPECTED: &str = "a radius: a number of rem (1.2), \"1.2rem\" or \"8px\", from 0 to 100 px";
    let px = match value {
        Value::Number(n) => n.as_f64().map(rem_to_px720),
        Value::String(s) => {
            let s = s.trim();
            if let Some(px) = s.strip_suffix("px") {
                px.trim().parse().ok()
            } else {
                s.trim_end_matches("rem").trim().parse().ok().map(rem_to_px720)
            }
        }
        _ => None,
    };
    px.filter(|n| (0.0..=100.0).contains(n))
        .ok_or_else(|| expected(EXPECTED, value))
}

fn rem_to_px720(rem: f64) -> f64 {
    rem * 16.0 * 720.0 / 1080.0
}

/// A horizontal inset: `"20%"` of the output width, or pixels at 720 lines.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Inset {
    Percent(f64),
    Pixels(f64),
}

pub fn inset(value: &Value) -> Result<Inset, String> {
    const EXPECTED: &str = "a percentage from 0% to 45% (\"20%\") or pixels (\"40px\")";
    if let Some(p) = value.as_str().and_then(|s| s.trim().strip_suffix('%')) {
        return p
            .trim()
            .parse()
            .ok()
            .filter(|p| (0.0..=45.0).contains(p))
            .map(Inset::Percent)
            .ok_or_else(|| expected(EXPECTED, value));
    }
    pixels(value, 1000.0)
        .map(Inset::Pixels)
        .map_err(|_| expected(EXPECTED, value))
}

/// An aspect ratio written `"9/16"` (also `"9:16"` or a decimal); empty means the video's own.
pub fn aspect_ratio(value: &Value) -> Result<Option<f64>, String> {
    const EXPECTED: &str = "an aspect ratio like \"16/9\", \"4/3\", \"1/1\" or \"9/16\"";
    let text = match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim(),
        Value::Number(n) => {
            return n
                .as_f64()
                .filter(|r| (0.1..=10.0).contains(r))
                .map(Some)
                .ok_or_else(|| expected(EXPECTED, value));
        }
        _ => return Err(expected(EXPECTED, value)),
    };
    let ratio = match text.split_once(['/', ':']) {
        Some((w, h)) => match (w.trim().parse::<f64>(), h.trim().parse::<f64>()) {
            (Ok(w), Ok(h)) if h > 0.0 => Some(w / h),
            _ => None,
        },
        None => text.parse().ok(),
    };
    ratio
        .filter(|r| (0.1..=10.0).contains(r))
        .map(Some)
        .ok_or_else(|| expected(EXPECTED, value))
}

/// One of a fixed set of words.
pub fn one_of<'a>(value: &Value, allowed: &[&'a str]) -> Result<&'a str, String> {
    value
        .as_str()
        .and_then(|s| allowed.iter().find(|a| **a == s).copied())
        .ok_or_else(|| expected(&format!("one of {}", allowed.join(", ")), value))
}

pub fn expected(what: &str, got: &Value) -> String {
    format!("expected {what}; got {got}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HAlign {
    Left,
    Center,
    Right,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VAlign {
    Top,
    Center,
    Bottom,
}

pub fn h_align(value: &Value) -> Result<HAlign, String> {
    Ok(match one_of(value, &["left", "center", "right"])? {
        "left" => HAlign::Left,
        "center" => HAlign::Center,
        _ => HAlign::Right,
    })
}

pub fn v_align(value: &Value) -> Result<VAlign, String> {
    Ok(match one_of(value, &["top", "center", "bottom"])? {
        "top" => VAlign::Top,
        "center" => VAlign::Center,
        _ => VAlign::Bottom,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn colours_in_every_css_form() {
        assert_eq!(colour(&json!("#f2f2f2")).unwrap(), Rgba::opaque(0xf2f2f2));
        assert_eq!(colour(&json!("#fff")).unwrap(), Rgba::opaque(0xffffff));
        assert_eq!(colour(&json!("hotpink")).unwrap(), Rgba::opaque(0xff69b4));
        assert_eq!(colour(&json!("transparent")).unwrap().a, 0);
        assert_eq!(colour(&json!("#00000080")).unwrap().a, 128);
        assert!(
            colour(&json!("blue-ish"))
                .unwrap_err()
                .contains("got \"blue-ish\"")
        );
        assert!(colour(&json!(3)).is_err());
    }

    #[test]
    fn sizes_radii_and_insets() {
        assert_eq!(pixels(&json!("10px"), 200.0).unwrap(), 10.0);
        assert_eq!(pixels(&json!(4), 200.0).unwrap(), 4.0);
        assert!(pixels(&json!(-1), 200.0).is_err());
        assert!((radius(&json!(1.2)).unwrap() - 12.8).abs() < 1e-9);
        assert_eq!(radius(&json!("0px")).unwrap(), 0.0);
        assert_eq!(inset(&json!("20%")).unwrap(), Inset::Percent(20.0));
        assert_eq!(inset(&json!("40px")).unwrap(), Inset::Pixels(40.0));
        assert!(inset(&json!("60%")).is_err());
    }

    #[test]
    fn aspect_ratios() {
        assert_eq!(aspect_ratio(&json!("")).unwrap(), None);
        assert!((aspect_ratio(&json!("9/16")).unwrap().unwrap() - 0.5625).abs() < 1e-9);
        assert_eq!(aspect_ratio(&json!("1:1")).unwrap(), Some(1.0));
        assert!(aspect_ratio(&json!("wide")).is_err());
        assert!(aspect_ratio(&json!("1/0")).is_err());
    }

    #[test]
    fn booleans_counts_and_words() {
        assert!(boolean(&json!("true")).unwrap());
        assert!(boolean(&json!(1)).is_err());
        assert_eq!(count(&json!(5), 1, 10).unwrap(), 5);
        assert!(count(&json!(2.5), 1, 10).is_err());
        assert_eq!(h_align(&json!("center")).unwrap(), HAlign::Center);
        assert!(
            v_align(&json!("middle"))
                .unwrap_err()
                .contains("one of top, center, bottom")
        );
    }
}
