//! QR codes as PNG images, for clients that show images in chat.

use qrcode::bits::{Bits, encode_auto};
use qrcode::{Color, EcLevel, QrCode};

/// The side, in pixels, an image is made at least (when that takes more than [`MIN_SCALE`]
/// pixels a module): a chat client may show it at half its size, and a phone must still read it
/// there, slightly blurred, at three pixels a module or more for the longest links.
const TARGET_SIDE: usize = 640;
/// Pixels per QR module, at least.
const MIN_SCALE: usize = 4;
/// The standard quiet zone, in modules.
const QUIET: usize = 4;

/// The smallest code for `data`: the lowest version any error-correction level fits in, then the
/// strongest level that still fits that version (more damage read through, at no cost in size).
fn smallest_code(data: &[u8]) -> Option<QrCode> {
    // Only the bit stream here: the masks are chosen once, for the code kept.
    let version = encode_auto(data, EcLevel::L).ok()?.version();
    [EcLevel::H, EcLevel::Q, EcLevel::M, EcLevel::L]
        .into_iter()
        .find_map(|level| {
            let mut bits = Bits::new(version);
            bits.push_optimal_data(data).ok()?;
            bits.push_terminator(level).ok()?;
            QrCode::with_bits(bits, level).ok()
        })
}

/// Pixels per module for a code `modules` wide: enough for [`TARGET_SIDE`] with its quiet zone.
fn scale_for(modules: usize) -> usize {
    TARGET_SIDE.div_ceil(modules + 2 * QUIET).max(MIN_SCALE)
}

/// A black-on-white PNG of `data`, or `None` when it is too long for a QR code (links with very
/// long titles can exceed the largest version).
pub fn png(data: &str) -> Option<Vec<u8>> {
    let code = smallest_code(data.as_bytes())?;
    let modules = code.width();
    let colors = code.to_colors();
    let scale = scale_for(modules);
    let side = (modules + 2 * QUIET) * scale;
    // One bit per pixel (1 = white), rows padded to whole bytes: the same black-and-white image as
    // 8-bit grey, but an eighth of the data to deflate (deflating 8-bit pixels was a fifth of a
    // create-web-page call's CPU).
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xFFu8; row_bytes * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for dy in 0..scale {
                let row = (my * scale + dy) * row_bytes;
                for x in mx * scale..mx * scale + scale {
                    pixels[row + x / 8] &= !(0x80 >> (x % 8));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header().ok()?;
    writer.write_image_data(&pixels).ok()?;
    writer.finish().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_a_png_and_refuses_what_cannot_fit() {
        let png = super::png("https://openapi.alipay.com/gateway.do?x=1").unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(super::png(&"x".repeat(5000)).is_none());
    }

    #[test]
    fn the_code_is_the_smallest_that_fits_at_the_strongest_level_that_fits_it() {
        use qrcode::{EcLevel, QrCode, Version};
        // From a short link to the longest that fits: the version is the one level L needs,
        // and no stronger level than the one chosen fits that version.
        for len in [20, 60, 200, 1000, 2900] {
            let data = "h".repeat(len);
            let lowest = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).unwrap();
            let code = super::smallest_code(data.as_bytes()).unwrap();
            assert_eq!(code.version(), lowest.version(), "{len}");
            let Version::Normal(v) = code.version() else {
                panic!("a micro code")
            };
            let stronger = match code.error_correction_level() {
                EcLevel::L => Some(EcLevel::M),
                EcLevel::M => Some(EcLevel::Q),
                EcLevel::Q => Some(EcLevel::H),
                EcLevel::H => None,
            };
            if let Some(stronger) = stronger {
                assert!(
                    QrCode::with_version(data.as_bytes(), Version::Normal(v), stronger).is_err(),
                    "{len}: {stronger:?} fits version {v} too"
                );
            }
        }
        // Where a stronger level fits the same version, it is taken: version 1 holds 17 bytes
        // at L, 14 at M, 11 at Q and 7 at H.
        let level = |n: usize| super::smallest_code("h".repeat(n).as_bytes()).unwrap();
        assert_eq!(level(17).error_correction_level(), EcLevel::L);
        assert_eq!(level(14).error_correction_level(), EcLevel::M);
        assert_eq!(level(7).error_correction_level(), EcLevel::H);
    }

    #[test]
    fn small_codes_are_drawn_larger_and_every_module_is_whole_pixels() {
        assert_eq!(super::scale_for(21), 23);
        assert_eq!(super::scale_for(105), 6);
        assert_eq!(super::scale_for(177), 4, "never under the minimum");
    }

    #[test]
    fn the_image_is_the_qr_code_black_on_white() {
        use qrcode::Color;
        let data = "https://openapi.alipay.com/gateway.do?method=alipay.trade.page.pay&sign=abc";
        let png = super::png(data).unwrap();
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (frame.width as usize, frame.height as usize);
        let code = super::smallest_code(data.as_bytes()).unwrap();
        let modules = code.width();
        let scale = super::scale_for(modules);
        assert_eq!(w, (modules + 2 * super::QUIET) * scale);
        assert_eq!(h, w);
        let colors = code.to_colors();
        for y in 0..h {
            for x in 0..w {
                let (mx, my) = (x / scale, y / scale);
                let dark = (super::QUIET..super::QUIET + modules).contains(&mx)
                    && (super::QUIET..super::QUIET + modules).contains(&my)
                    && colors[(my - super::QUIET) * modules + mx - super::QUIET] == Color::Dark;
                let pixel = buf[y * frame.line_size + x];
                assert_eq!(pixel, if dark { 0 } else { 255 }, "pixel {x},{y}");
            }
        }
    }
}
