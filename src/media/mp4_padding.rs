//! Takes out the padding robust muxing leaves in an MP4. mp4mux reserves room at the head of the
//! file for the index of the longest part (`max_file_duration_s`), and a part that ends sooner
//! keeps that room as `free` boxes: about 16 MB for a 2-hour reservation, whatever the length of
//! the recording. A part whose padding is a large share of it is rewritten as its boxes without
//! the padding, the chunk offsets of its index moved down by what was cut.

use anyhow::{Context, bail, ensure};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// A closed part whose unused index room (reserved by robust muxing for the longest part) is at
/// least this share of it is rewritten without it: short recordings would otherwise carry about
/// 16 MB of padding, and long ones keep at most this much.
pub const PADDING_WORTH_REMOVING: f64 = 0.1;

/// Boxes whose children are boxes, on the way from `moov` to the chunk offset tables.
const CONTAINERS: [&[u8; 4]; 5] = [b"moov", b"trak", b"mdia", b"minf", b"stbl"];

#[derive(Debug, Clone, Copy)]
struct TopBox {
    kind: [u8; 4],
    start: u64,
    size: u64,
}

impl TopBox {
    fn is_padding(&self) -> bool {
        &self.kind == b"free" || &self.kind == b"skip"
    }
}

/// Removes the padding when it is at least `min_share` of the file. Returns the bytes saved (0
/// when the file is left as it was).
pub fn remove_padding(path: &Path, min_share: f64) -> anyhow::Result<u64> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total = file.metadata()?.len();
    let boxes = top_level_boxes(&mut file, total)?;
    let padding: u64 = boxes.iter().filter(|b| b.is_padding()).map(|b| b.size).sum();
    if padding == 0 || (padding as f64) < min_share * total as f64 {
        return Ok(0);
    }
    let kept: Vec<TopBox> = boxes.iter().copied().filter(|b| !b.is_padding()).collect();
    // The layout mp4mux writes: the media data last, everything it points into before it.
    let [.., last] = kept[..] else {
        bail!("no boxes besides padding");
    };
    ensure!(&last.kind == b"mdat", "the media data is not the last box");
    ensure!(
        kept.iter().filter(|b| &b.kind == b"moov").count() == 1,
        "not one index (moov)"
    );
    let new_mdat_start: u64 = kept[..kept.len() - 1].iter().map(|b| b.size).sum();
    let shift = last.start - new_mdat_start;

    let partial = path.with_extension("compacting");
    let mut out = File::create(&partial).with_context(|| format!("cannot write {}", partial.display()))?;
    for b in &kept[..kept.len() - 1] {
        let mut bytes = vec![0; usize::try_from(b.size)?];
        file.seek(SeekFrom::Start(b.start))?;
        file.read_exact(&mut bytes)?;
        if &b.kind == b"moov" {
            move_chunk_offsets(&mut bytes, shift)?;
        }
        out.write_all(&bytes)?;
    }
    file.seek(SeekFrom::Start(last.start))?;
    let copied = std::io::copy(&mut (&mut file).take(last.size), &mut out)?;
    ensure!(copied == last.size, "the media data ends early");
    out.sync_all()?;
    drop(out);
    std::fs::rename(&partial, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(total - (new_mdat_start + last.size))
}

fn top_level_boxes(file: &mut File, total: u64) -> anyhow::Result<Vec<TopBox>> {
    let mut boxes = Vec::new();
    let mut at = 0;
    while at < total {
        file.seek(SeekFrom::Start(at))?;
        let mut header = [0u8; 16];
        file.read_exact(&mut header[..8])?;
        let (size, kind) = box_header(&header[..8]);
        let size = match size {
            0 => total - at,
            1 => {
                file.read_exact(&mut header[8..])?;
                u64::from_be_bytes(header[8..16].try_into()?)
            }
            n => n,
        };
        ensure!(
            size >= 8 && at + size <= total,
            "box {} at {at} runs past the end",
            kind_name(&kind)
        );
        boxes.push(TopBox {
            kind,
            start: at,
            size,
        });
        at += size;
    }
    Ok(boxes)
}

fn box_header(bytes: &[u8]) -> (u64, [u8; 4]) {
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    (u64::from(size), [bytes[4], bytes[5], bytes[6], bytes[7]])
}

fn kind_name(kind: &[u8; 4]) -> String {
    String::from_utf8_lossy(kind).into_owned()
}

/// Moves every chunk offset (`stco`, `co64`) below `moov` down by `shift` bytes.
fn move_chunk_offsets(moov: &mut [u8], shift: u64) -> anyhow::Result<()> {
    walk(moov, 8, shift)
}

/// Walks the children of the box in `bytes` whose header is `header` bytes long.
fn walk(bytes: &mut [u8], header: usize, shift: u64) -> anyhow::Result<()> {
    let mut at = header;
    while at + 8 <= bytes.len() {
        let (size, kind) = box_header(&bytes[at..at + 8]);
        let size = usize::try_from(size)?;
        ensure!(
            size >= 8 && at + size <= bytes.len(),
            "damaged box {} in the index",
            kind_name(&kind)
        );
        let child = &mut bytes[at..at + size];
        if CONTAINERS.contains(&&kind) {
            walk(child, 8, shift)?;
        } else if &kind == b"stco" {
            for entry in entries(child, 4)? {
                let offset = u64::from(u32::from_be_bytes(entry.try_into()?));
                let moved = u32::try_from(
                    offset
                        .checked_sub(shift)
                        .context("a chunk before the media data")?,
                )?;
                entry.copy_from_slice(&moved.to_be_bytes());
            }
        } else if &kind == b"co64" {
            for entry in entries(child, 8)? {
                let offset = u64::from_be_bytes(entry.try_into()?);
                let moved = offset
                    .checked_sub(shift)
                    .context("a chunk before the media data")?;
                entry.copy_from_slice(&moved.to_be_bytes());
            }
        }
        at += size;
    }
    Ok(())
}

/// The entries of a chunk offset table: header (8), version and flags (4), count (4), entries.
fn entries(table: &mut [u8], width: usize) -> anyhow::Result<std::slice::ChunksExactMut<'_, u8>> {
    ensure!(table.len() >= 16, "short chunk offset table");
    let count = u32::from_be_bytes([table[12], table[13], table[14], table[15]]) as usize;
    ensure!(
        16 + count * width <= table.len(),
        "chunk offset table runs past its box"
    );
    Ok(table[16..16 + count * width].chunks_exact_mut(width))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An MP4 box of `kind` around `body`.
    pub(in crate::media) fn boxed(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn stco(offsets: &[u32]) -> Vec<u8> {
        let mut body = vec![0, 0, 0, 0];
        body.extend((offsets.len() as u32).to_be_bytes());
        for o in offsets {
            body.extend(o.to_be_bytes());
        }
        boxed(b"stco", &body)
    }

    /// ftyp, free, moov (one track, two chunks), free, mdat; returns the file and the chunks.
    fn padded_file(padding: usize) -> (Vec<u8>, Vec<u8>) {
        let ftyp = boxed(b"ftyp", b"isom\0\0\0\0");
        let media = b"CHUNK-ONE|CHUNK-TWO".to_vec();
        let moov_len = |offsets: &[u32]| {
            let stbl = boxed(b"stbl", &stco(offsets));
            let trak = boxed(b"trak", &boxed(b"mdia", &boxed(b"minf", &stbl)));
            boxed(b"moov", &trak)
        };
        let before_mdat = ftyp.len() + 2 * (8 + padding) + moov_len(&[0, 0]).len();
        let first = (before_mdat + 8) as u32;
        let moov = moov_len(&[first, first + 10]);
        let mut file = ftyp;
        file.extend(boxed(b"free", &vec![0; padding]));
        file.extend(moov);
        file.extend(boxed(b"free", &vec![0; padding]));
        file.extend(boxed(b"mdat", &media));
        (file, media)
    }

    /// The bytes each chunk offset of the file points at.
    fn chunks(file: &[u8]) -> Vec<Vec<u8>> {
        let at = file.windows(4).position(|w| w == b"stco").unwrap() - 4;
        let count = u32::from_be_bytes(file[at + 12..at + 16].try_into().unwrap()) as usize;
        (0..count)
            .map(|i| {
                let o =
                    u32::from_be_bytes(file[at + 16 + 4 * i..at + 20 + 4 * i].try_into().unwrap()) as usize;
                file[o..o + 9].to_vec()
            })
            .collect()
    }

    fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("egress-mp4-{name}-{}.mp4", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn padding_goes_and_chunk_offsets_follow_the_media() {
        let (file, _) = padded_file(4000);
        let before = chunks(&file);
        assert_eq!(before, [b"CHUNK-ONE".to_vec(), b"CHUNK-TWO".to_vec()]);
        let path = scratch("padded", &file);
        let saved = remove_padding(&path, 0.1).unwrap();
        let after = std::fs::read(&path).unwrap();
        assert_eq!(saved, 2 * 4008);
        assert_eq!(after.len(), file.len() - 2 * 4008);
        assert!(!after.windows(4).any(|w| w == b"free"), "no padding left");
        assert_eq!(chunks(&after), before, "offsets still point at the same media");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn little_padding_is_left_alone() {
        let (file, _) = padded_file(2);
        let path = scratch("little", &file);
        assert_eq!(remove_padding(&path, 0.5).unwrap(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), file);
        std::fs::remove_file(path).unwrap();
    }
}
