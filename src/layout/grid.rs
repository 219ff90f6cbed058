use super::Rect;

/// Aspect ratio of a participant tile (camera video is 16:9).
const TILE_ASPECT: f64 = 16.0 / 9.0;

/// Tiles for `count` participants on a `width` x `height` canvas, in participant order.
///
/// The column count is the one that gives the largest 16:9 tiles; rows are filled left to
/// right, and a last row with fewer tiles is centred. `gap` pixels separate tiles and edges.
pub fn grid(count: usize, width: u32, height: u32, gap: u32) -> Vec<Rect> {
    if count == 0 || width <= 2 * gap || height <= 2 * gap {
        return Vec::new();
    }
    let (cols, tile_w, tile_h) = (1..=count)
        .map(|cols| {
            let rows = count.div_ceil(cols);
            let (w, h) = tile_size(cols, rows, width, height, gap);
            (cols, w, h)
        })
        .max_by_key(|&(cols, w, h)| (u64::from(w) * u64::from(h), std::cmp::Reverse(cols)))
        .expect("count > 0");
    let rows = count.div_ceil(cols);
    let block_h = rows as u32 * tile_h + (rows as u32 - 1) * gap;
    let top = (height - block_h) / 2;
    (0..count)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = if row == rows - 1 { count - row * cols } else { cols } as u32;
            let row_w = in_row * tile_w + (in_row - 1) * gap;
            let left = (width - row_w) / 2;
            Rect {
                x: (left + col as u32 * (tile_w + gap)) as i32,
                y: (top + row as u32 * (tile_h + gap)) as i32,
                w: tile_w,
                h: tile_h,
            }
        })
        .collect()
}

/// The largest 16:9 tile (even dimensions) that fits `cols` x `rows` cells with gaps.
fn tile_size(cols: usize, rows: usize, width: u32, height: u32, gap: u32) -> (u32, u32) {
    let cell_w = (width.saturating_sub(gap * (cols as u32 + 1))) as f64 / cols as f64;
    let cell_h = (height.saturating_sub(gap * (rows as u32 + 1))) as f64 / rows as f64;
    let w = cell_w.min(cell_h * TILE_ASPECT);
    let h = w / TILE_ASPECT;
    let even = |v: f64| ((v as u32) / 2 * 2).max(2);
    (even(w), even(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANVASES: [(u32, u32); 4] = [(1280, 720), (640, 360), (720, 1280), (1920, 1080)];

    #[test]
    fn tiles_stay_inside_the_canvas_and_never_overlap() {
        for (w, h) in CANVASES {
            for n in 1..=25 {
                let tiles = grid(n, w, h, 8);
                assert_eq!(tiles.len(), n);
                for (i, a) in tiles.iter().enumerate() {
                    assert!(a.x >= 8 && a.y >= 8, "{n} on {w}x{h}: {a:?}");
                    assert!(
                        a.x as u32 + a.w <= w - 8 && a.y as u32 + a.h <= h - 8,
                        "{n} on {w}x{h}: {a:?}"
                    );
                    for b in &tiles[i + 1..] {
                        assert!(!a.intersects(b), "{n} on {w}x{h}: {a:?} overlaps {b:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn tiles_keep_the_camera_aspect_ratio() {
        for (w, h) in CANVASES {
            for n in 1..=25 {
                for t in grid(n, w, h, 8) {
                    let ratio = t.w as f64 / t.h as f64;
                    assert!((ratio - TILE_ASPECT).abs() < 0.05, "{n} on {w}x{h}: {t:?}");
                }
            }
        }
    }

    #[test]
    fn four_participants_make_two_by_two_and_three_centre_the_last_row() {
        let four = grid(4, 1280, 720, 0);
        assert_eq!(
            four[0],
            Rect {
                x: 0,
                y: 0,
                w: 640,
                h: 360
            }
        );
        assert_eq!(
            four[3],
            Rect {
                x: 640,
                y: 360,
                w: 640,
                h: 360
            }
        );
        let three = grid(3, 1280, 720, 0);
        assert_eq!(three[2].center().0, 640, "last row centred: {three:?}");
        assert_eq!(three[0].y, three[1].y);
    }

    #[test]
    fn portrait_canvas_stacks_tiles_vertically() {
        let two = grid(2, 720, 1280, 8);
        assert_eq!(two[0].x, two[1].x);
        assert!(two[1].y > two[0].y);
    }

    #[test]
    fn empty_input_gives_no_tiles() {
        assert!(grid(0, 1280, 720, 8).is_empty());
        assert!(grid(3, 10, 10, 8).is_empty());
    }
}
