//! The font for labels and titles, and the logo, loaded once at job start.

use ab_glyph::FontArc;
use anyhow::{Context, bail};
use image::RgbaImage;
use std::path::Path;
use std::time::Duration;

/// Where the label font is looked for, after `$EGRESS_FONT` (Debian's fonts-dejavu-core).
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
];

/// Loads the first font found; `None` when there is none (labels and titles are then skipped).
pub fn load_font() -> Option<FontArc> {
    let env = std::env::var("EGRESS_FONT").ok();
    env.iter()
        .map(String::as_str)
        .chain(FONT_PATHS.iter().copied())
        .find_map(|path| FontArc::try_from_vec(std::fs::read(path).ok()?).ok())
}

/// The largest logo accepted, in bytes.
const MAX_LOGO_BYTES: u64 = 10 * 1024 * 1024;

/// Fetches and decodes the logo: an `http(s)://` URL, a `file://` URL or a path (relative to
/// `base_dir`). PNG only, as the image crate is built with PNG support alone.
pub fn load_logo(url: &str, base_dir: &Path) -> anyhow::Result<RgbaImage> {
    let bytes = if url.starts_with("http://") || url.starts_with("https://") {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut response = agent
            .get(url)
            .call()
            .with_context(|| format!("cannot fetch the logo from {url}"))?;
        response
            .body_mut()
            .with_config()
            .limit(MAX_LOGO_BYTES)
            .read_to_vec()
            .with_context(|| format!("cannot read the logo from {url}"))?
    } else {
        let path = crate::job::LocalMedia::Below(base_dir.to_owned()).resolve(url)?;
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOGO_BYTES) {
            bail!("the logo {} is larger than 10 MB", path.display());
        }
        std::fs::read(&path).with_context(|| format!("cannot read the logo {}", path.display()))?
    };
    let image =
        image::load_from_memory(&bytes).with_context(|| format!("the logo at {url} is not a PNG image"))?;
    Ok(image.to_rgba8())
}
