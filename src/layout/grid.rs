//! Equal tiles in rows and columns: the grid layout, and the bar of the spotlight layouts.

use super::Rect;

/// Aspect ratio of a camera tile when the job does not set `participant.aspect_ratio`.
pub const CAMERA_ASPECT: f64 = 16.0 / 9.0;

/// Tiles for `count` participants on a `width` x `height` canvas, 16:9, `gap` pixels apart and
/// from the edges, with any number of columns.
pub fn grid(count: usize, width: u32, height: u32, gap: u32) -> Vec<Rect> {
    let area = Rect {
        x: 0,
        y: 0,
        w: width,
        h: height,
    };
    tiles_in(count, area, gap, CAMERA_ASPECT, usize::MAX, usize::MAX)
}

/// Up to `max_cols` x `max_rows` tiles of `aspect` inside `area`, in participant order.
///
/// The column count is the one that gives the largest tiles; rows are filled left to right and
/// a last row with fewer tiles is centred. `gap` pixels separate tiles and the area's edges.
/// Participants beyond the page get no tile.
pub fn tiles_in(
    count: usize,
    area: Rect,
    gap: u32,
    aspect: f64,
    max_cols: usize,
    max_rows: usize,
) -> Vec<Rect> {
    let count = count.min(max_cols.saturating_mul(max_rows));
    if count == 0 || area.w <= 2 * gap || area.h <= 2 * gap {
        return Vec::new();
    }
    let Some((cols, tile_w, tile_h)) = (1..=count.min(max_cols))
        .filter(|&cols| count.div_ceil(cols) <= max_rows)
        .map(|cols| {
            let (w, h) = tile_size(cols, count.div_ceil(cols), area.w, area.h, gap, aspect);
            (cols, w, h)
        })
        .max_by_key(|&(cols, w, h)| (u64::from(w) * u64::from(h), std::cmp::Reverse(cols)))
    else {
        return Vec::new();
    };
    let rows = count.div_ceil(cols);
    let block_h = rows as u32 * tile_h + (rows as u32 - 1) * gap;
    let top = area.y + (area.h.saturating_sub(block_h) / 2) as i32;
    (0..count)
        .map(|i| {
            let (row, col) = (i / cols, i % cols);
            let in_row = if row == rows - 1 { count - row * cols } else { cols } as u32;
            let row_w = in_row * tile_w + (in_row - 1) * gap;
            let left = area.x + (area.w.saturating_sub(row_w) / 2) as i32;
            Rect {
                x: left + (col as u32 * (tile_w + gap)) as i32,
                y: top + (row as u32 * (tile_h + gap)) as i32,
                w: tile_w,
                h: tile_h,
            }
        })
        .collect()
}

/// Tiles in a fixed `cols` x `rows` frame of equal cells (a spotlight bar): tiles do not grow
/// when fewer participants are there; the used cells are centred in the bar.
pub fn bar(count: usize, area: Rect, gap: u32, aspect: f64, cols: usize, rows: usize) -> Vec<Rect> {
    let count = count.min(cols * rows);
    if count == 0 {
        return Vec::new();
    }
    let (tile_w, tile_h) = tile_size(cols, rows, area.w + 2 * gap, area.h + 2 * gap, gap, aspect);
    let used_cols = count.min(cols) as u32;
    let used_rows = count.div_ceil(cols) as u32;
    let block_w = used_cols * tile_w + (used_cols - 1) * gap;
    let block_h = used_rows * tile_h + (used_rows - 1) * gap;
    let left = area.x + (area.w.saturating_sub(block_w) / 2) as i32;
    let top = area.y + (area.h.saturating_sub(block_h) / 2) as i32;
    (0..count)
        .map(|i| Rect {
            x: left + ((i % cols) as u32 * (tile_w + gap)) as i32,
            y: top + ((i / cols) as u32 * (tile_h + gap)) as i32,
            w: tile_w,
            h: tile_h,
        })
        .collect()
}

/// The largest tile of `aspect` (even dimensions) that fits `cols` x `rows` cells with gaps.
fn tile_size(cols: usize, rows: usize, width: u32, height: u32, gap: u32, aspect: f64) -> (u32, u32) {
    let cell_w = (width.saturating_sub(gap * (cols as u32 + 1))) as f64 / cols as f64;
    let cell_h = (height.saturating_sub(gap * (rows as u32 + 1))) as f64 / rows as f64;
    let w = cell_w.min(cell_h * aspect);
    let h = w / aspect;
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
    fn tiles_keep_the_requested_aspect_ratio() {
        for aspect in [CAMERA_ASPECT, 1.0, 9.0 / 16.0, 4.0 / 3.0] {
            for (w, h) in CANVASES {
                let area = Rect { x: 0, y: 0, w, h };
                for n in 1..=25 {
                    for t in tiles_in(n, area, 8, aspect, 10, 10) {
                        let ratio = t.w as f64 / t.h as f64;
                        assert!(
                            (ratio - aspect).abs() / aspect < 0.05,
                            "{n} on {w}x{h} at {aspect}: {t:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn spacing_between_neighbours_equals_the_gap() {
        for gap in [0, 6, 20] {
            let tiles = grid(4, 1280, 720, gap);
            assert_eq!(tiles[1].x - (tiles[0].x + tiles[0].w as i32), gap as i32);
            assert_eq!(tiles[2].y - (tiles[0].y + tiles[0].h as i32), gap as i32);
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
    fn the_page_is_limited_to_columns_times_rows() {
        let area = Rect {
            x: 0,
            y: 0,
            w: 1280,
            h: 720,
        };
        assert_eq!(tiles_in(25, area, 8, CAMERA_ASPECT, 5, 4).len(), 20);
        let two_cols = tiles_in(6, area, 8, CAMERA_ASPECT, 2, 10);
        assert_eq!(
            two_cols
                .iter()
                .map(|t| t.x)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            2
        );
    }

    #[test]
    fn bar_tiles_keep_their_size_and_centre() {
        let area = Rect {
            x: 0,
            y: 576,
            w: 1280,
            h: 144,
        };
        let one = bar(1, area, 10, CAMERA_ASPECT, 5, 1);
        let five = bar(5, area, 10, CAMERA_ASPECT, 5, 1);
        assert_eq!(one[0].w, five[0].w);
        assert_eq!(one[0].center().0, 640);
        assert_eq!(bar(9, area, 10, CAMERA_ASPECT, 5, 1).len(), 5);
        for t in &five {
            assert!(
                t.y >= area.y && t.y + t.h as i32 <= area.y + area.h as i32,
                "{t:?}"
            );
        }
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
