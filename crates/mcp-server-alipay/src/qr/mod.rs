//! QR codes as PNG images, for clients that show images in chat.
//!
//! The `qrcode` crate encodes the data, computes the error correction and draws the symbol
//! unmasked; choosing the mask ([`mask`], over bit lines from [`grid`]) and the image
//! ([`image`]) are ours, for speed: the crate's own mask search cost several RSA signatures.

mod grid;
mod image;
mod line;
mod mask;

use qrcode::bits::{Bits, encode_auto};
use qrcode::canvas::Canvas;
use qrcode::{EcLevel, Version};

use grid::{Grid, Unmasked};

/// The side, in pixels, an image is made at least (when that takes more than [`MIN_SCALE`]
/// pixels a module): a chat client may show it at half its size, and a phone must still read it
/// there, slightly blurred, at three pixels a module or more for the longest links.
const TARGET_SIDE: usize = 640;
/// Pixels per QR module, at least.
const MIN_SCALE: usize = 4;
/// The standard quiet zone, in modules.
const QUIET: usize = 4;

/// The smallest symbol `data` fits in: the lowest version any error-correction level fits in
/// (never a Micro QR version), then the strongest level that still fits that version (more damage
/// read through, at no cost in size), with its data bits.
fn fitting(data: &[u8]) -> Option<(Version, EcLevel, Bits)> {
    let version = encode_auto(data, EcLevel::L).ok()?.version();
    // The data's bits depend on the version only; the level sets how many of them fit.
    let mut bits = Bits::new(version);
    bits.push_optimal_data(data).ok()?;
    let level = [EcLevel::H, EcLevel::Q, EcLevel::M, EcLevel::L]
        .into_iter()
        .find(|&level| bits.max_len(level).is_ok_and(|max| bits.len() <= max))?;
    bits.push_terminator(level).ok()?;
    Some((version, level, bits))
}

/// The symbol for `data`: the [`fitting`] version and level, and the mask `qrcode` would choose.
fn symbol(data: &[u8]) -> Option<Grid> {
    let (version, level, bits) = fitting(data)?;
    let (codewords, ec) =
        qrcode::ec::construct_codewords(&bits.into_bytes(), version, level).ok()?;
    let mut canvas = Canvas::new(version, level);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&codewords, &ec);
    mask::best(&Unmasked::read(&canvas, version, level)?)
}

/// Pixels per module for a code `modules` wide: enough for [`TARGET_SIDE`] with its quiet zone.
fn scale_for(modules: usize) -> usize {
    TARGET_SIDE.div_ceil(modules + 2 * QUIET).max(MIN_SCALE)
}

/// A black-on-white PNG of `data`, or `None` when it is too long for a QR code (links with very
/// long titles can exceed the largest version).
pub fn png(data: &str) -> Option<Vec<u8>> {
    let symbol = symbol(data.as_bytes())?;
    image::png(&symbol, scale_for(symbol.width), QUIET)
}

#[cfg(test)]
mod tests {
    use qrcode::{EcLevel, QrCode, Version};

    #[test]
    fn renders_a_png_and_refuses_what_cannot_fit() {
        let png = super::png("https://openapi.alipay.com/gateway.do?x=1").unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(super::png(&"x".repeat(5000)).is_none());
    }

    #[test]
    fn the_version_is_the_lowest_and_the_level_the_strongest_that_fits_it() {
        for len in [20, 60, 200, 1000, 2900] {
            let data = "h".repeat(len);
            let lowest = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).unwrap();
            let (version, level, _) = super::fitting(data.as_bytes()).unwrap();
            assert_eq!(version, lowest.version(), "{len}");
            let stronger = match level {
                EcLevel::L => Some(EcLevel::M),
                EcLevel::M => Some(EcLevel::Q),
                EcLevel::Q => Some(EcLevel::H),
                EcLevel::H => None,
            };
            if let Some(stronger) = stronger {
                assert!(
                    QrCode::with_version(data.as_bytes(), version, stronger).is_err(),
                    "{len}: {stronger:?} fits {version:?} too"
                );
            }
        }
        // Version 1 holds 17 bytes at L, 14 at M, 11 at Q and 7 at H.
        let level = |n: usize| super::fitting("h".repeat(n).as_bytes()).unwrap().1;
        assert_eq!(level(17), EcLevel::L);
        assert_eq!(level(14), EcLevel::M);
        assert_eq!(level(7), EcLevel::H);
    }

    #[test]
    fn the_mask_is_the_one_qrcode_itself_would_choose() {
        // Links of every size a create makes, short to longer than a desktop link, varied
        // content: the symbol is module for module the `qrcode` crate's own.
        for len in (10..1400).step_by(37) {
            let data: String = (0..len)
                .map(|i| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789%&=?/:."[(i * 7 + len) % 43])
                })
                .collect();
            let (version, level, _) = super::fitting(data.as_bytes()).unwrap();
            let theirs = QrCode::with_version(data.as_bytes(), version, level).unwrap();
            let ours = super::symbol(data.as_bytes()).unwrap();
            assert_eq!(ours.width, theirs.width(), "{len}");
            let width = ours.width;
            let ours: Vec<bool> = (0..width * width)
                .map(|i| ours.is_dark(i % width, i / width))
                .collect();
            let theirs: Vec<bool> = theirs
                .to_colors()
                .into_iter()
                .map(|c| c == qrcode::Color::Dark)
                .collect();
            assert!(ours == theirs, "{len}: a different mask");
        }
        assert!(matches!(
            super::fitting(b"https://qr.alipay.com/x").unwrap().0,
            Version::Normal(_)
        ));
    }

    #[test]
    fn the_mask_is_qrcodes_for_the_widest_symbols_too() {
        // Versions 29 to 40, over 128 modules wide: a row or column takes all three words of a
        // line, and the scores run to tens of thousands.
        for len in [1600, 2000, 2400, 2900] {
            let data: String = (0..len)
                .map(|i| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789%&=?/:."[(i * 11) % 43]))
                .collect();
            let (version, level, _) = super::fitting(data.as_bytes()).unwrap();
            let theirs = QrCode::with_version(data.as_bytes(), version, level).unwrap();
            let ours = super::symbol(data.as_bytes()).unwrap();
            assert!(ours.width > 128, "{len}");
            let width = ours.width;
            let same = theirs
                .to_colors()
                .into_iter()
                .enumerate()
                .all(|(i, color)| {
                    (color == qrcode::Color::Dark) == ours.is_dark(i % width, i / width)
                });
            assert!(same, "{len}: a different mask");
        }
    }

    #[test]
    fn small_codes_are_drawn_larger_and_every_module_is_whole_pixels() {
        assert_eq!(super::scale_for(21), 23);
        assert_eq!(super::scale_for(105), 6);
        assert_eq!(super::scale_for(177), 4, "never under the minimum");
    }

    #[test]
    fn the_image_is_the_symbol_black_on_white_in_its_quiet_zone() {
        let data = "https://openapi.alipay.com/gateway.do?method=alipay.trade.page.pay&sign=abc";
        let png = super::png(data).unwrap();
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (frame.width as usize, frame.height as usize);
        let symbol = super::symbol(data.as_bytes()).unwrap();
        let modules = symbol.width;
        let scale = super::scale_for(modules);
        assert_eq!(w, (modules + 2 * super::QUIET) * scale);
        assert_eq!(h, w);
        for y in 0..h {
            for x in 0..w {
                let (mx, my) = (x / scale, y / scale);
                let dark = (super::QUIET..super::QUIET + modules).contains(&mx)
                    && (super::QUIET..super::QUIET + modules).contains(&my)
                    && symbol.is_dark(mx - super::QUIET, my - super::QUIET);
                let pixel = buf[y * frame.line_size + x];
                assert_eq!(pixel, if dark { 0 } else { 255 }, "pixel {x},{y}");
            }
        }
    }
}
