//! A symbol as a black-on-white PNG.

use std::ops::Range;

use super::grid::Grid;

/// A PNG of `symbol`, `scale` pixels a module, in a light margin `quiet` modules wide.
pub(super) fn png(symbol: &Grid, scale: usize, quiet: usize) -> Option<Vec<u8>> {
    let side = (symbol.width + 2 * quiet) * scale;
    let pixels = pixels(symbol, scale, quiet);
    let side = u32::try_from(side).ok()?;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    // A row is the row above it but at each module's edge: "up" makes those rows zeros, which
    // the fastest deflate packs as well as a slow one (the adaptive filter and zlib's default
    // level were half of an image's cost).
    encoder.set_compression(png::Compression::Fast);
    encoder.set_filter(png::Filter::Up);
    let mut writer = encoder.write_header().ok()?;
    writer.write_image_data(&pixels).ok()?;
    writer.finish().ok()?;
    Some(out)
}

/// The image at one bit per pixel (1 = white), rows padded to whole bytes: the same
/// black-and-white image as 8-bit grey, but an eighth of the data to deflate. Each module row is
/// drawn once, a run of dark modules at a time, and copied down for its `scale` pixel rows.
fn pixels(symbol: &Grid, scale: usize, quiet: usize) -> Vec<u8> {
    let side = (symbol.width + 2 * quiet) * scale;
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xFFu8; row_bytes * side];
    for (y, modules) in symbol.rows.iter().enumerate() {
        let top = (y + quiet) * scale * row_bytes;
        let row = &mut pixels[top..top + row_bytes];
        for run in modules.dark_runs() {
            blacken(row, (run.start + quiet) * scale..(run.end + quiet) * scale);
        }
        for copy in 1..scale {
            pixels.copy_within(top..top + row_bytes, top + copy * row_bytes);
        }
    }
    pixels
}

/// Pixels `span` (not empty) of a 1-bit row made black, the first pixel the high bit of a byte.
fn blacken(row: &mut [u8], span: Range<usize>) {
    let (first, last) = (span.start / 8, (span.end - 1) / 8);
    // The bits of the first and last byte that fall in the span.
    let head = 0xFFu8 >> (span.start % 8);
    let tail = 0xFFu8 << (7 - (span.end - 1) % 8);
    if first == last {
        row[first] &= !(head & tail);
    } else {
        row[first] &= !head;
        row[first + 1..last].fill(0);
        row[last] &= !tail;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spans_are_blackened_to_the_pixel() {
        let span = |range| {
            let mut row = [0xFF; 3];
            super::blacken(&mut row, range);
            row
        };
        assert_eq!(span(0..8), [0x00, 0xFF, 0xFF]);
        assert_eq!(span(3..5), [0b1110_0111, 0xFF, 0xFF]);
        assert_eq!(span(6..19), [0b1111_1100, 0x00, 0b0001_1111]);
        assert_eq!(span(23..24), [0xFF, 0xFF, 0xFE]);
    }
}
