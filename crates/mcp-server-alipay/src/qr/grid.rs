//! A QR symbol as bit lines, and its eight masked forms derived from one unmasked drawing.
//!
//! The `qrcode` crate draws the function patterns and places the data once; masking it again for
//! each of the eight patterns (a clone of the canvas, then a module at a time) and reading the
//! colours back was most of an image's cost. Here the drawing is read once into rows and columns
//! of bits, and each masked form is, per line, `modules ^ (pattern & maskable)` with that mask's
//! format information written in: a few word operations a line.

use qrcode::canvas::{Canvas, MaskPattern, Module};
use qrcode::{Color, EcLevel, Version};

use super::line::{CAPACITY, Line, transposed};

/// The eight masks, in the order `qrcode` tries them (its first lowest score wins).
pub(super) const MASKS: [MaskPattern; 8] = [
    MaskPattern::Checkerboard,
    MaskPattern::HorizontalLines,
    MaskPattern::VerticalLines,
    MaskPattern::DiagonalLines,
    MaskPattern::LargeCheckerboard,
    MaskPattern::Fields,
    MaskPattern::Diamonds,
    MaskPattern::Meadow,
];

/// A square of modules as bit lines, both ways: `rows[y]` has module `(x, y)` at bit `x`,
/// `columns[x]` the same module at bit `y`, so the mask rules read columns as they read rows.
#[derive(Clone, Debug)]
pub(super) struct Grid {
    pub(super) width: usize,
    pub(super) rows: Vec<Line>,
    pub(super) columns: Vec<Line>,
}

impl Grid {
    fn of_rows(rows: Vec<Line>) -> Self {
        let width = rows.len();
        Self {
            width,
            columns: transposed(&rows, width),
            rows,
        }
    }

    fn set(&mut self, x: usize, y: usize) {
        self.rows[y].set(x);
        self.columns[x].set(y);
    }

    /// Whether module `(x, y)` is dark.
    #[cfg(test)]
    pub(super) fn is_dark(&self, x: usize, y: usize) -> bool {
        self.rows[y].get(x)
    }
}

/// A symbol drawn but not yet masked.
pub(super) struct Unmasked {
    level: EcLevel,
    /// The colours drawn: function patterns as they stay, data before masking, the format
    /// information light (reserved).
    modules: Grid,
    /// The modules a mask inverts: data, error correction and the remainder bits, not the
    /// function patterns or the format and version information.
    maskable: Grid,
}

impl Unmasked {
    /// Reads a `canvas` with its function patterns and data drawn (`qrcode`'s `Masked` modules
    /// are the function patterns; `Empty` ones, the remainder bits, are light and maskable, as
    /// its `apply_mask` treats them).
    /// `None` for a Micro QR symbol (another format information) or one too wide for a [`Line`].
    pub(super) fn read(canvas: &Canvas, version: Version, level: EcLevel) -> Option<Self> {
        let width = usize::try_from(version.width()).ok()?;
        if matches!(version, Version::Micro(_)) || width > CAPACITY {
            return None;
        }
        let mut modules = Vec::with_capacity(width);
        let mut maskable = Vec::with_capacity(width);
        for y in 0..width {
            let (mut dark_row, mut maskable_row) = (Line::default(), Line::default());
            for x in 0..width {
                // Both fit an i16: the width does.
                let module = canvas.get(x as i16, y as i16);
                // Set without a branch: data modules are dark or light at random, and a
                // mispredicted branch a module was most of this loop's time.
                dark_row.put(x, Color::from(module) == Color::Dark);
                maskable_row.put(x, !matches!(module, Module::Masked(_)));
            }
            modules.push(dark_row);
            maskable.push(maskable_row);
        }
        let (modules, maskable) = (Grid::of_rows(modules), Grid::of_rows(maskable));
        Some(Self {
            level,
            modules,
            maskable,
        })
    }

    /// The symbol under `pattern`, as `qrcode`'s `apply_mask` leaves it.
    pub(super) fn masked(&self, pattern: MaskPattern) -> Grid {
        let (modules, maskable) = (&self.modules, &self.maskable);
        let flips = MaskLines::new(pattern, modules.width);
        let mut grid = Grid {
            width: modules.width,
            rows: flipped(&modules.rows, &maskable.rows, &flips.rows),
            columns: flipped(&modules.columns, &maskable.columns, &flips.columns),
        };
        draw_format_information(&mut grid, format_information(self.level, pattern));
        grid
    }
}

/// `lines` with their `maskable` modules that `flips[i % 12]` marks in line `i` inverted.
fn flipped(lines: &[Line], maskable: &[Line], flips: &[Line; 12]) -> Vec<Line> {
    let masks = maskable.iter().zip(flips.iter().cycle());
    lines
        .iter()
        .zip(masks)
        .map(|(&line, (&maskable, &flips))| line ^ (flips & maskable))
        .collect()
}

/// The modules a mask pattern inverts, as lines: every pattern repeats every 12 modules both
/// ways, so twelve rows and twelve columns describe it.
struct MaskLines {
    /// `rows[y % 12]`: the inverted modules of row `y`.
    rows: [Line; 12],
    /// `columns[x % 12]`: the inverted modules of column `x`.
    columns: [Line; 12],
}

impl MaskLines {
    fn new(pattern: MaskPattern, width: usize) -> Self {
        let inverts = inverts(pattern);
        Self {
            rows: std::array::from_fn(|y| repeated(|x| inverts(x, y), width)),
            columns: std::array::from_fn(|x| repeated(|y| inverts(x, y), width)),
        }
    }
}

/// The line, `width` long, whose module `i` is `dark(i % 12)`.
fn repeated(dark: impl Fn(usize) -> bool, width: usize) -> Line {
    let mut line = Line::default();
    (0..12).filter(|&i| dark(i)).for_each(|i| line.set(i));
    // Doubled to 24 and 48 modules, then 48 at a time: every shift a multiple of 12.
    for shift in [12, 24, 48, 48, 48] {
        line = line | line.behind(shift);
    }
    line & Line::first(width)
}

/// Whether `pattern` inverts module `(x, y)` (ISO/IEC 18004 Table 10, as `qrcode` writes them).
fn inverts(pattern: MaskPattern) -> fn(usize, usize) -> bool {
    match pattern {
        MaskPattern::Checkerboard => |x, y| (x + y) % 2 == 0,
        MaskPattern::HorizontalLines => |_, y| y % 2 == 0,
        MaskPattern::VerticalLines => |x, _| x % 3 == 0,
        MaskPattern::DiagonalLines => |x, y| (x + y) % 3 == 0,
        MaskPattern::LargeCheckerboard => |x, y| (y / 2 + x / 3) % 2 == 0,
        MaskPattern::Fields => |x, y| (x * y) % 2 + (x * y) % 3 == 0,
        MaskPattern::Diamonds => |x, y| ((x * y) % 2 + (x * y) % 3) % 2 == 0,
        MaskPattern::Meadow => |x, y| ((x + y) % 2 + (x * y) % 3) % 2 == 0,
    }
}

/// The 15 format information bits for `level` and `pattern` (ISO/IEC 18004 §7.9.1): the level's
/// two bits and the mask's three, a BCH(15, 5) remainder, XORed with 101010000010010.
fn format_information(level: EcLevel, pattern: MaskPattern) -> u16 {
    // L, M, Q, H are 01, 00, 11, 10.
    let data = ((level as u16 ^ 1) << 3) | pattern as u16;
    let mut remainder = data << 10;
    for bit in (10..15).rev() {
        if remainder >> bit & 1 == 1 {
            remainder ^= 0x537 << (bit - 10);
        }
    }
    ((data << 10) | remainder) ^ 0x5412
}

/// Where the format information goes, most significant bit first, twice: around the top-left
/// finder, and split between the other two (negative coordinates count from the far edge).
const FORMAT_COORDS: [[(i16, i16); 15]; 2] = [
    [
        (0, 8),
        (1, 8),
        (2, 8),
        (3, 8),
        (4, 8),
        (5, 8),
        (7, 8),
        (8, 8),
        (8, 7),
        (8, 5),
        (8, 4),
        (8, 3),
        (8, 2),
        (8, 1),
        (8, 0),
    ],
    [
        (8, -1),
        (8, -2),
        (8, -3),
        (8, -4),
        (8, -5),
        (8, -6),
        (8, -7),
        (-8, 8),
        (-7, 8),
        (-6, 8),
        (-5, 8),
        (-4, 8),
        (-3, 8),
        (-2, 8),
        (-1, 8),
    ],
];

/// Writes `format`'s dark bits into `grid`, whose format modules are light (reserved).
fn draw_format_information(grid: &mut Grid, format: u16) {
    let width = grid.width as i16;
    let at = |c: i16| (if c < 0 { c + width } else { c }) as usize;
    for coords in &FORMAT_COORDS {
        for (i, &(x, y)) in coords.iter().enumerate() {
            if format >> (14 - i) & 1 == 1 {
                grid.set(at(x), at(y));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `qrcode`'s canvas for `data`, drawn and unmasked.
    fn drawn(data: &[u8], version: Version, level: EcLevel) -> Canvas {
        let mut bits = qrcode::bits::Bits::new(version);
        bits.push_optimal_data(data).unwrap();
        bits.push_terminator(level).unwrap();
        let (codewords, ec) =
            qrcode::ec::construct_codewords(&bits.into_bytes(), version, level).unwrap();
        let mut canvas = Canvas::new(version, level);
        canvas.draw_all_functional_patterns();
        canvas.draw_data(&codewords, &ec);
        canvas
    }

    #[test]
    fn every_mask_matches_qrcodes_own_masking_module_for_module() {
        // Version 1 (no alignment pattern), 7 (version information), 22 and 40 (the widest).
        let cases = [
            (1, EcLevel::H, "x"),
            (7, EcLevel::L, "https://qr.alipay.com/bax01234"),
            (22, EcLevel::Q, "0123456789abcdefghij"),
            (40, EcLevel::M, "HELLO WORLD"),
        ];
        for (number, level, data) in cases {
            let version = Version::Normal(number);
            let canvas = drawn(data.as_bytes(), version, level);
            let unmasked = Unmasked::read(&canvas, version, level).unwrap();
            for pattern in MASKS {
                let mut theirs = canvas.clone();
                theirs.apply_mask(pattern);
                let theirs = theirs.into_colors();
                let ours = unmasked.masked(pattern);
                let width = ours.width;
                for (i, color) in theirs.into_iter().enumerate() {
                    let (x, y) = (i % width, i / width);
                    let dark = color == Color::Dark;
                    assert_eq!(ours.is_dark(x, y), dark, "{number} {pattern:?} ({x}, {y})");
                    assert_eq!(ours.columns[x].get(y), dark, "{number} {pattern:?} column");
                }
                assert!(
                    ours.rows
                        .iter()
                        .all(|r| (*r & !Line::first(width)).count() == 0)
                );
            }
        }
    }

    #[test]
    fn format_information_is_qrcodes() {
        // Three entries of `qrcode`'s table (the test above checks all 32 through the modules).
        let format = |level, pattern| format_information(level, pattern);
        assert_eq!(format(EcLevel::M, MaskPattern::Checkerboard), 0x5412);
        assert_eq!(format(EcLevel::Q, MaskPattern::Checkerboard), 0x355f);
        assert_eq!(format(EcLevel::L, MaskPattern::Meadow), 0x6976);
    }
}
