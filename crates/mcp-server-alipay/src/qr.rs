//! QR codes as PNG images, for clients that show images in chat.

use qrcode::{Color, EcLevel, QrCode};

/// Pixels per QR module.
const SCALE: usize = 4;
/// The standard quiet zone, in modules.
const QUIET: usize = 4;

/// A black-on-white PNG of `data`, or `None` when it is too long for a QR code (links with very
/// long titles can exceed the largest version).
pub fn png(data: &str) -> Option<Vec<u8>> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).ok()?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    // One bit per pixel (1 = white), rows padded to whole bytes: the same black-and-white image as
    // 8-bit grey, but an eighth of the data to deflate (deflating 8-bit pixels was a fifth of a
    // create-web-page call's CPU).
    let row_bytes = side.div_ceil(8);
    let mut pixels = vec![0xFFu8; row_bytes * side];
    for (i, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
            for dy in 0..SCALE {
                let row = (my * SCALE + dy) * row_bytes;
                for x in mx * SCALE..mx * SCALE + SCALE {
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
    fn the_image_is_the_qr_code_black_on_white() {
        use qrcode::{Color, EcLevel, QrCode};
        let data = "https://openapi.alipay.com/gateway.do?method=alipay.trade.page.pay&sign=abc";
        let png = super::png(data).unwrap();
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        let (w, h) = (frame.width as usize, frame.height as usize);
        let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L).unwrap();
        let modules = code.width();
        assert_eq!(w, (modules + 2 * super::QUIET) * super::SCALE);
        assert_eq!(h, w);
        let colors = code.to_colors();
        for y in 0..h {
            for x in 0..w {
                let (mx, my) = (x / super::SCALE, y / super::SCALE);
                let dark = (super::QUIET..super::QUIET + modules).contains(&mx)
                    && (super::QUIET..super::QUIET + modules).contains(&my)
                    && colors[(my - super::QUIET) * modules + mx - super::QUIET] == Color::Dark;
                let pixel = buf[y * frame.line_size + x];
                assert_eq!(pixel, if dark { 0 } else { 255 }, "pixel {x},{y}");
            }
        }
    }
}
