//! Which of the eight masks a QR code gets: the one whose symbol scores the lowest penalty
//! (ISO/IEC 18004 §7.8.3: runs, 2×2 blocks, finder-like patterns, the dark/light balance), scored
//! exactly as the `qrcode` crate scores it, so the choice is the same (less the crate's constant
//! 360 for the real finder patterns, which every mask scores alike).
//!
//! The crate's own search took 9 ms for a desktop payment link (a boxed closure per module and
//! position for the finder rule, the column rules by random access); scoring a byte per module
//! instead still took most of 3.4. Here every rule reads a whole row or column at once, as bits
//! ([`Line`]): shifted copies of a line, ANDed, mark where a run of five, a block or a
//! finder-like pattern starts, and a popcount scores them. The eight masked symbols come from
//! [`Unmasked::masked`]; with them, the search is a fraction of a signature.

use super::grid::{Grid, MASKS, Unmasked};
use super::line::Line;

/// The symbol under the mask `qrcode` would choose: the first of the lowest penalty, in its order.
pub(super) fn best(unmasked: &Unmasked) -> Option<Grid> {
    MASKS
        .into_iter()
        .map(|pattern| unmasked.masked(pattern))
        .min_by_key(penalty)
}

/// The penalty of a masked symbol.
fn penalty(grid: &Grid) -> u32 {
    let width = Line::first(grid.width);
    let lines = |lines: &[Line]| -> u32 {
        lines
            .iter()
            .map(|&line| runs(line, !line & width) + finder_like(line))
            .sum()
    };
    lines(&grid.rows) + lines(&grid.columns) + blocks(&grid.rows, grid.width) + balance(grid)
}

/// Every run of 5 + k modules of one colour in a line, its `dark` and its `light` modules: 3 + k.
/// A run of n holds n - 4 windows of five, and one of them starts it: 2 more.
fn runs(dark: Line, light: Line) -> u32 {
    let fives = |set: Line| {
        let two = set & set.ahead(1);
        two & two.ahead(2) & set.ahead(4)
    };
    // A window is of one colour or the other, never both, and the last of a run and the first of
    // the next are five apart: the two colours' windows can be counted, and their runs' starts
    // found, at once.
    let five = fives(dark) | fives(light);
    let starts = five & !five.behind(1);
    five.count() + 2 * starts.count()
}

/// Every dark-light-dark-dark-dark-light-dark in a line with four light modules (or the symbol's
/// edge) on either side: 40. The three real finder patterns score the same under every mask.
fn finder_like(dark: Line) -> u32 {
    let light = |n| !dark.ahead(n);
    let three = dark & dark.ahead(1) & dark.ahead(2);
    // Where one starts; it needs its last module dark, so it lies wholly inside the line.
    let pattern = dark & light(1) & three.ahead(2) & light(5) & dark.ahead(6);
    if pattern.is_empty() {
        return 0;
    }
    let light_after = !(dark.ahead(7) | dark.ahead(8) | dark.ahead(9) | dark.ahead(10));
    let light_before = !(dark.behind(1) | dark.behind(2) | dark.behind(3) | dark.behind(4));
    40 * (pattern & (light_before | light_after)).count()
}

/// Every 2×2 block of one colour (overlapping ones counted): 3.
fn blocks(rows: &[Line], width: usize) -> u32 {
    // Blocks whose left column is x, for x up to the last but one.
    let lefts = Line::first(width.saturating_sub(1));
    let per_pair = |top: Line, bottom: Line| {
        let same_below = !(top ^ bottom);
        let same_right = !(top ^ top.ahead(1));
        (same_below & same_below.ahead(1) & same_right & lefts).count()
    };
    let count: u32 = rows.windows(2).map(|pair| per_pair(pair[0], pair[1])).sum();
    3 * count
}

/// How far the share of dark modules is from a half, in half-percent points (`qrcode`'s linear
/// form of the standard's 5% steps).
fn balance(grid: &Grid) -> u32 {
    let dark: u32 = grid.rows.iter().map(|row| row.count()).sum();
    let ratio = u64::from(dark) * 200 / (grid.width * grid.width).max(1) as u64;
    ratio.abs_diff(100) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(modules: &[u8]) -> Line {
        let mut line = Line::default();
        for (i, _) in modules.iter().enumerate().filter(|(_, m)| **m == 1) {
            line.set(i);
        }
        line
    }

    /// The run score of a line `modules` long, both colours.
    fn both_runs(modules: &[u8]) -> u32 {
        let dark = line(modules);
        runs(dark, !dark & Line::first(modules.len()))
    }

    fn grid(width: usize, modules: &[u8]) -> Grid {
        let rows: Vec<Line> = modules.chunks(width).map(line).collect();
        Grid {
            width,
            columns: rows.clone(),
            rows,
        }
    }

    #[test]
    fn each_rule_scores_as_the_standard_says() {
        assert_eq!(both_runs(&[1, 1, 1, 1]), 0);
        assert_eq!(both_runs(&[1, 1, 1, 1, 1]), 3);
        assert_eq!(both_runs(&[0, 1, 1, 1, 1, 1, 1, 0]), 4);
        assert_eq!(both_runs(&[0; 12]), 10);
        assert_eq!(both_runs(&[[1; 70], [0; 70]].concat()), 68 * 2);
        assert_eq!(
            both_runs(&[&[1; 5][..], &[0; 5], &[1; 6]].concat()),
            3 + 3 + 4
        );
        let finder = [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1];
        assert_eq!(finder_like(line(&finder)), 40, "light before");
        assert_eq!(
            finder_like(line(&[1, 0, 1, 1, 1, 0, 1])),
            40,
            "edges on both sides"
        );
        assert_eq!(
            finder_like(line(&[1, 1, 0, 1, 1, 1, 0, 1, 1])),
            0,
            "dark on both sides"
        );
        let two_in_a_row = [
            [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0].as_slice(),
            &[1, 0, 1, 1, 1, 0, 1],
        ];
        assert_eq!(finder_like(line(&two_in_a_row.concat())), 80);
        assert_eq!(blocks(&grid(2, &[1, 1, 1, 1]).rows, 2), 3);
        assert_eq!(blocks(&grid(3, &[1, 1, 1, 1, 1, 1, 1, 1, 0]).rows, 3), 9);
        assert_eq!(balance(&grid(2, &[1, 0, 1, 0])), 0);
        assert_eq!(balance(&grid(2, &[1, 1, 1, 0])), 50);
    }
}
