//! Which of the eight masks a QR code gets: the one whose symbol scores the lowest penalty
//! (ISO/IEC 18004 §7.8.3: runs, 2×2 blocks, finder-like patterns, the dark/light balance), scored
//! exactly as the `qrcode` crate scores it, so the choice is the same. The crate's own search
//! takes 9 ms for a desktop payment link (a boxed closure per module and position for the finder
//! rule, the column rules by random access); over plain bytes, with the columns read as rows of
//! the transposed symbol, the same scores take a small fraction of that.

/// The penalty of a symbol `width` modules wide, `dark` in row-major order (1 dark, 0 light).
pub(super) fn penalty(dark: &[u8], width: usize) -> u32 {
    let mut columns = vec![0u8; dark.len()];
    for (y, row) in dark.chunks_exact(width).enumerate() {
        for (x, &module) in row.iter().enumerate() {
            columns[x * width + y] = module;
        }
    }
    let lines = |grid: &[u8]| -> u32 {
        grid.chunks_exact(width)
            .map(|line| runs(line) + finder_like(line))
            .sum()
    };
    lines(dark) + lines(&columns) + blocks(dark, width) + balance(dark)
}

/// Every run of 5 + k modules of one colour in a line: 3 + k.
fn runs(line: &[u8]) -> u32 {
    let mut score = 0;
    let mut run = 1;
    for pair in line.windows(2) {
        if pair[0] == pair[1] {
            run += 1;
        } else {
            if run >= 5 {
                score += run - 2;
            }
            run = 1;
        }
    }
    if run >= 5 {
        score += run - 2;
    }
    score
}

/// Every dark-light-dark-dark-dark-light-dark in a line with four light modules (or the symbol's
/// edge) on either side: 40. The three real finder patterns score the same under every mask.
fn finder_like(line: &[u8]) -> u32 {
    const FINDER: [u8; 7] = [1, 0, 1, 1, 1, 0, 1];
    let light = |run: &[u8]| run.iter().all(|&m| m == 0);
    let mut score = 0;
    for j in 0..line.len().saturating_sub(6) {
        // Most positions fail on the first module or two.
        if line[j] == 1 && line[j + 1] == 0 && line[j..j + 7] == FINDER {
            let before = light(&line[j.saturating_sub(4)..j]);
            let after = light(&line[j + 7..(j + 11).min(line.len())]);
            if before || after {
                score += 40;
            }
        }
    }
    score
}

/// Every 2×2 block of one colour (overlapping ones counted): 3.
fn blocks(dark: &[u8], width: usize) -> u32 {
    let rows: Vec<&[u8]> = dark.chunks_exact(width).collect();
    rows.windows(2)
        .map(|pair| {
            let (top, bottom) = (pair[0], pair[1]);
            (0..width - 1)
                .filter(|&x| {
                    let m = top[x];
                    top[x + 1] == m && bottom[x] == m && bottom[x + 1] == m
                })
                .count() as u32
                * 3
        })
        .sum()
}

/// How far the share of dark modules is from a half, in half-percent points (`qrcode`'s linear
/// form of the standard's 5% steps).
fn balance(dark: &[u8]) -> u32 {
    let dark_count = dark.iter().filter(|&&m| m == 1).count();
    let ratio = dark_count * 200 / dark.len();
    ratio.abs_diff(100) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_scores_as_the_standard_says() {
        assert_eq!(runs(&[1, 1, 1, 1]), 0);
        assert_eq!(runs(&[1, 1, 1, 1, 1]), 3);
        assert_eq!(runs(&[0, 1, 1, 1, 1, 1, 1, 0]), 4);
        assert_eq!(runs(&[0; 12]), 10);
        let finder = [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1, 1];
        assert_eq!(finder_like(&finder), 40, "light before");
        assert_eq!(
            finder_like(&[1, 0, 1, 1, 1, 0, 1]),
            40,
            "edges on both sides"
        );
        assert_eq!(
            finder_like(&[1, 1, 0, 1, 1, 1, 0, 1, 1]),
            0,
            "dark on both sides"
        );
        assert_eq!(blocks(&[1, 1, 1, 1], 2), 3);
        assert_eq!(blocks(&[1, 1, 1, 1, 1, 1, 1, 1, 0], 3), 9);
        assert_eq!(balance(&[1, 0, 1, 0]), 0);
        assert_eq!(balance(&[1, 1, 1, 0]), 50);
    }
}
