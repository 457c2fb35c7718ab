//! One row or column of a QR symbol as bits, so that the mask rules can test a whole line of
//! modules in a few word operations instead of one module at a time.

use std::ops::{BitAnd, BitOr, BitXor, Not, Range};

/// The modules a [`Line`] holds: version 40, the largest, is 177 wide.
pub(super) const CAPACITY: usize = 192;

/// A line of up to [`CAPACITY`] modules: bit `i` (of word `i / 64`) is module `i` along the line,
/// 1 dark. Bits past the symbol's width are 0, so they read as light, as the space beyond a
/// symbol's edge does for the mask rules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Line([u64; 3]);

impl Line {
    /// The first `n` modules dark (`n` ≤ [`CAPACITY`]).
    pub(super) fn first(n: usize) -> Self {
        let word = |w: usize| match n.saturating_sub(64 * w) {
            0 => 0,
            k if k >= 64 => u64::MAX,
            k => (1 << k) - 1,
        };
        Self([word(0), word(1), word(2)])
    }

    /// Module `i` (< [`CAPACITY`]) made dark.
    pub(super) fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }

    /// Module `i` (< [`CAPACITY`]), light before, made dark if `dark`.
    pub(super) fn put(&mut self, i: usize, dark: bool) {
        self.0[i / 64] |= u64::from(dark) << (i % 64);
    }

    /// Whether module `i` (< [`CAPACITY`]) is dark.
    #[cfg(test)]
    pub(super) fn get(self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }

    /// Whether no module is dark. (Compared word by word: `== Line::default()` spilled the words
    /// to compare them as a vector, a store-forwarding stall that was a fifth of the mask search.)
    #[inline]
    pub(super) fn is_empty(self) -> bool {
        let [a, b, c] = self.0;
        a | b | c == 0
    }

    /// The dark modules.
    pub(super) fn count(self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// Bit `i` holds module `i + n` (`n` < 64): each module sees the one `n` further along.
    #[inline]
    pub(super) fn ahead(self, n: u32) -> Self {
        let [a, b, c] = self.0;
        if n == 0 {
            return self;
        }
        Self([a >> n | b << (64 - n), b >> n | c << (64 - n), c >> n])
    }

    /// Bit `i` holds module `i - n` (`n` < 64), light before the line's start: each module sees
    /// the one `n` back.
    #[inline]
    pub(super) fn behind(self, n: u32) -> Self {
        let [a, b, c] = self.0;
        if n == 0 {
            return self;
        }
        Self([a << n, b << n | a >> (64 - n), c << n | b >> (64 - n)])
    }

    /// The runs of dark modules, in order.
    pub(super) fn dark_runs(self) -> impl Iterator<Item = Range<usize>> {
        // A run starts and ends where a module differs from the one before it (light before
        // the start, and past the end since the bits there are 0).
        let mut edges = (self ^ self.behind(1)).ones();
        std::iter::from_fn(move || Some(edges.next()?..edges.next()?))
    }

    /// The indices of the dark modules, in order.
    fn ones(self) -> impl Iterator<Item = usize> {
        self.0.into_iter().enumerate().flat_map(|(w, mut word)| {
            std::iter::from_fn(move || {
                let bit = word.trailing_zeros() as usize;
                word &= word.checked_sub(1)?;
                Some(64 * w + bit)
            })
        })
    }
}

/// The lines `lines` would be if read the other way: line `i` of the result holds module `i` of
/// every line, the first at bit 0. `len` result lines (≤ [`CAPACITY`]); one bit a module, in
/// 64 × 64 blocks, rather than one module at a time.
pub(super) fn transposed(lines: &[Line], len: usize) -> Vec<Line> {
    let mut out = vec![Line::default(); len];
    for across in 0..3 {
        for word in 0..3 {
            let mut block = [0u64; 64];
            let rows = lines.iter().skip(64 * across).take(64);
            block.iter_mut().zip(rows).for_each(|(b, l)| *b = l.0[word]);
            if block.iter().all(|&b| b == 0) {
                continue;
            }
            transpose_block(&mut block);
            let columns = out.iter_mut().skip(64 * word).take(64);
            columns.zip(block).for_each(|(l, b)| l.0[across] = b);
        }
    }
    out
}

/// A 64 × 64 bit matrix (bit `c` of `rows[r]` is element (r, c)) transposed in place: its two
/// off-diagonal 32 × 32 quadrants swapped, then those of all four quadrants at once, and so on
/// down to single bits (Hacker's Delight, §7-3).
fn transpose_block(rows: &mut [u64; 64]) {
    let mut size = 32;
    // The low `size` bits of every 2·`size`: the left half of each sub-block.
    let mut left = 0x0000_0000_FFFF_FFFF_u64;
    while size != 0 {
        let mut r = 0;
        while r < 64 {
            // Row r's right half trades places with row r + size's left half.
            let swap = (rows[r] >> size ^ rows[r + size]) & left;
            rows[r + size] ^= swap;
            rows[r] ^= swap << size;
            // The next row of a top half.
            r = (r + size + 1) & !size;
        }
        size >>= 1;
        left ^= left << size;
    }
}

/// The word-wise operations, for the mask rules to combine lines.
macro_rules! wordwise {
    ($trait:ident, $method:ident, $op:tt) => {
        impl $trait for Line {
            type Output = Self;
            #[inline]
            fn $method(self, other: Self) -> Self {
                let [a, b, c] = self.0;
                let [x, y, z] = other.0;
                Self([a $op x, b $op y, c $op z])
            }
        }
    };
}
wordwise!(BitAnd, bitand, &);
wordwise!(BitOr, bitor, |);
wordwise!(BitXor, bitxor, ^);

impl Not for Line {
    type Output = Self;
    /// Every bit flipped, past the width too: combine with a line that has 0 there.
    #[inline]
    fn not(self) -> Self {
        let [a, b, c] = self.0;
        Self([!a, !b, !c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(bits: &[usize]) -> Line {
        let mut line = Line::default();
        bits.iter().for_each(|&i| line.set(i));
        line
    }

    #[test]
    fn shifts_cross_words_and_bring_in_light() {
        let l = line(&[0, 63, 64, 130]);
        assert_eq!(l.ahead(1), line(&[62, 63, 129]));
        assert_eq!(l.behind(2), line(&[2, 65, 66, 132]));
        assert_eq!(line(&[191]).behind(1), Line::default());
        assert_eq!(l.ahead(0), l);
        assert_eq!(Line::first(65), line(&(0..65).collect::<Vec<_>>()));
        assert_eq!(Line::first(CAPACITY).count(), 192);
        assert!(l.get(130) && !l.get(131));
    }

    #[test]
    fn transposing_moves_every_module_across() {
        // A scattered pattern over all nine blocks, 177 lines of 177.
        let dark = |x: usize, y: usize| (x * 7 + y * 13 + x * y).is_multiple_of(5);
        let lines: Vec<Line> = (0..177)
            .map(|y| line(&(0..177).filter(|&x| dark(x, y)).collect::<Vec<_>>()))
            .collect();
        let columns = transposed(&lines, 177);
        for (x, column) in columns.iter().enumerate() {
            assert_eq!(
                *column,
                line(&(0..177).filter(|&y| dark(x, y)).collect::<Vec<_>>())
            );
        }
        assert_eq!(transposed(&columns, 177), lines);
    }

    #[test]
    fn dark_runs_are_found_across_words() {
        let l = line(&[0, 1, 5, 62, 63, 64, 65, 176]);
        let runs: Vec<_> = l.dark_runs().collect();
        assert_eq!(runs, [0..2, 5..6, 62..66, 176..177]);
        assert_eq!(Line::default().dark_runs().count(), 0);
    }
}
