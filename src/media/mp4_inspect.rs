//! Reads what an MP4 file really holds from its index: each track's kind, sample count and
//! duration. A part is announced only when every track has samples; a part a dead worker left
//! is announced with the duration its last index update gives.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

/// One track of an MP4 file.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackSummary {
    /// The handler: `vide`, `soun`, …
    pub kind: String,
    pub samples: u64,
    pub duration: Duration,
}

/// What the index of an MP4 file says it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Mp4Summary {
    pub tracks: Vec<TrackSummary>,
}

impl Mp4Summary {
    /// The longest track's duration.
    pub fn duration(&self) -> Duration {
        self.tracks.iter().map(|t| t.duration).max().unwrap_or_default()
    }

    /// Why the file would not play, if it would not: no track, or a track with no samples.
    pub fn unplayable(&self) -> Option<String> {
        if self.tracks.is_empty() {
            return Some("the file has no tracks".into());
        }
        self.tracks
            .iter()
            .find(|t| t.samples == 0)
            .map(|t| format!("its {} track has no samples", t.kind))
    }
}

/// The most bytes of index read: far above what hours of media need.
const LARGEST_INDEX: u64 = 256 * 1024 * 1024;

/// Reads the index (`moov`) of the file at `path`.
pub fn inspect(path: &Path) -> Result<Mp4Summary, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open the file: {e}"))?;
    let total = file.metadata().map_err(|e| e.to_string())?.len();
    let mut at = 0;
    while at + 8 <= total {
        let (kind, header, size) = box_header_at(&mut file, at, total)?;
        if &kind == b"moov" {
            if size > LARGEST_INDEX {
                return Err("the index is implausibly large".into());
            }
            let mut bytes = vec![0; (size - header) as usize];
            file.seek(SeekFrom::Start(at + header))
                .map_err(|e| e.to_string())?;
            file.read_exact(&mut bytes)
                .map_err(|_| "the index is cut short".to_owned())?;
            let tracks = children(&bytes)?
                .into_iter()
                .filter(|(kind, _)| kind == b"trak")
                .map(|(_, body)| track(body))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Mp4Summary { tracks });
        }
        at += size;
    }
    Err("the file has no index (moov box)".into())
}

fn box_header_at(file: &mut File, at: u64, total: u64) -> Result<([u8; 4], u64, u64), String> {
    let mut head = [0u8; 16];
    file.seek(SeekFrom::Start(at)).map_err(|e| e.to_string())?;
    let available = (total - at).min(16) as usize;
    file.read_exact(&mut head[..available])
        .map_err(|e| e.to_string())?;
    let kind: [u8; 4] = head[4..8].try_into().expect("four bytes");
    let (header, size) = match u32::from_be_bytes(head[..4].try_into().expect("four bytes")) {
        0 => (8, total - at),
        1 if available == 16 => (
            16,
            u64::from_be_bytes(head[8..16].try_into().expect("eight bytes")),
        ),
        1 => return Err("a box header is cut short".into()),
        n => (8, u64::from(n)),
    };
    if size < header || at + size > total {
        return Err(format!(
            "the {} box runs past the end of the file",
            String::from_utf8_lossy(&kind)
        ));
    }
    Ok((kind, header, size))
}

/// A box's four-letter type and its body.
type Child<'a> = ([u8; 4], &'a [u8]);

/// The boxes inside a container's body.
fn children(mut body: &[u8]) -> Result<Vec<Child<'_>>, String> {
    let mut found = Vec::new();
    while body.len() >= 8 {
        let size = u32::from_be_bytes(body[..4].try_into().expect("four bytes")) as usize;
        let kind: [u8; 4] = body[4..8].try_into().expect("four bytes");
        let (header, size) = match size {
            0 => (8, body.len()),
            1 if body.len() >= 16 => (
                16,
                usize::try_from(u64::from_be_bytes(body[8..16].try_into().expect("eight bytes")))
                    .map_err(|_| "a box is too large")?,
            ),
            n => (8, n),
        };
        if size < header || size > body.len() {
            return Err(format!("the {} box is damaged", String::from_utf8_lossy(&kind)));
        }
        found.push((kind, &body[header..size]));
        body = &body[size..];
    }
    Ok(found)
}

fn child<'a>(body: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, String> {
    Ok(children(body)?
        .into_iter()
        .find(|(k, _)| k == kind)
        .map(|(_, b)| b))
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn track(trak: &[u8]) -> Result<TrackSummary, String> {
    let damaged = |what: &str| format!("a track's {what} is missing or damaged");
    let mdia = child(trak, b"mdia")?.ok_or_else(|| damaged("media box"))?;
    let hdlr = child(mdia, b"hdlr")?.ok_or_else(|| damaged("handler"))?;
    let kind = hdlr.get(8..12).ok_or_else(|| damaged("handler"))?;
    let mdhd = child(mdia, b"mdhd")?.ok_or_else(|| damaged("media header"))?;
    let (timescale, duration) = match mdhd.first() {
        Some(1) => (be_u32(mdhd, 20), be_u64(mdhd, 24)),
        _ => (be_u32(mdhd, 12), be_u32(mdhd, 16).map(u64::from)),
    };
    let (timescale, duration) = timescale
        .zip(duration)
        .filter(|(scale, _)| *scale > 0)
        .ok_or_else(|| damaged("media header"))?;
    let stbl = child(mdia, b"minf")?
        .map(|minf| child(minf, b"stbl"))
        .transpose()?
        .flatten()
        .ok_or_else(|| damaged("sample table"))?;
    let samples = match (child(stbl, b"stsz")?, child(stbl, b"stz2")?) {
        (Some(stsz), _) => be_u32(stsz, 8),
        (None, Some(stz2)) => be_u32(stz2, 8),
        (None, None) => None,
    }
    .ok_or_else(|| damaged("sample sizes"))?;
    Ok(TrackSummary {
        kind: String::from_utf8_lossy(kind).into_owned(),
        samples: u64::from(samples),
        duration: Duration::from_secs_f64(duration as f64 / f64::from(timescale)),
    })
}

#[cfg(test)]
mod tests {
    use super::super::mp4_padding::tests::boxed;
    use super::*;

    fn trak(handler: &[u8; 4], timescale: u32, duration: u32, samples: u32) -> Vec<u8> {
        let mut hdlr = vec![0u8; 8];
        hdlr.extend_from_slice(handler);
        hdlr.extend_from_slice(&[0; 12]);
        let mut mdhd = vec![0u8; 12];
        mdhd.extend_from_slice(&timescale.to_be_bytes());
        mdhd.extend_from_slice(&duration.to_be_bytes());
        mdhd.extend_from_slice(&[0; 4]);
        let mut stsz = vec![0u8; 8];
        stsz.extend_from_slice(&samples.to_be_bytes());
        let stbl = boxed(b"stbl", &boxed(b"stsz", &stsz));
        let minf = boxed(b"minf", &stbl);
        let mdia = boxed(
            b"mdia",
            &[boxed(b"mdhd", &mdhd), boxed(b"hdlr", &hdlr), minf].concat(),
        );
        boxed(b"trak", &mdia)
    }

    fn file(bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "egress-inspect-{}-{}.mp4",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn tracks_durations_and_samples_come_from_the_index() {
        let moov = boxed(
            b"moov",
            &[
                trak(b"vide", 90000, 450000, 150),
                trak(b"soun", 48000, 230400, 225),
            ]
            .concat(),
        );
        let path = file(
            &[
                boxed(b"ftyp", b"isom"),
                boxed(b"free", &[0; 64]),
                moov,
                boxed(b"mdat", &[1; 32]),
            ]
            .concat(),
        );
        let summary = inspect(&path).unwrap();
        assert_eq!(summary.tracks.len(), 2);
        assert_eq!(summary.tracks[0].kind, "vide");
        assert_eq!(summary.tracks[0].samples, 150);
        assert_eq!(summary.duration(), Duration::from_secs(5));
        assert_eq!(summary.unplayable(), None);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn empty_tracks_and_missing_indexes_are_unplayable() {
        let moov = boxed(b"moov", &trak(b"vide", 90000, 0, 0));
        let path = file(&[boxed(b"ftyp", b"isom"), moov].concat());
        let reason = inspect(&path).unwrap().unplayable().unwrap();
        assert!(reason.contains("vide track has no samples"), "{reason}");
        std::fs::write(&path, boxed(b"mdat", &[0; 100])).unwrap();
        assert!(inspect(&path).unwrap_err().contains("no index"));
        std::fs::write(&path, [0, 0, 1, 0, b'm', b'o', b'o', b'v']).unwrap();
        assert!(inspect(&path).unwrap_err().contains("past the end"));
        std::fs::remove_file(path).unwrap();
    }
}
