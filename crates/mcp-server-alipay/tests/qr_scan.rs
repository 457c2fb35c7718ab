//! The QR image read by an independent decoder (zbar's `zbarimg`) as a phone would see it in a
//! chat window: at full size, at half size, and at half size slightly blurred. The link is as
//! long as a real desktop payment link (about 1 KB, signed, URL-encoded), or short. Without
//! `zbarimg` the test says it was skipped, and fails under `CI=true` (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A desktop payment link as long as a real one: every parameter, a 2048-bit signature.
fn real_size_link() -> String {
    let biz = "%7B%22out_trade_no%22%3A%22MCP20261201150102A1B2C3D4E5F6A7B8C9D0E1F2A3B4C5D6%22%2C%22total_amount%22%3A%22128.00%22%2C%22subject%22%3A%22%E6%8F%92%E7%94%BB%E5%A7%94%E6%89%98%EF%BC%9A%E5%A4%B4%E5%83%8F%E4%B8%80%E5%BC%A0%22%2C%22product_code%22%3A%22FAST_INSTANT_TRADE_PAY%22%2C%22time_expire%22%3A%222026-12-01+15%3A31%3A02%22%7D";
    let sign: String = (0..344)
        .map(|i| {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i * 37 % 64] as char
        })
        .collect::<String>()
        .replace('+', "%2B")
        .replace('/', "%2F");
    format!(
        "https://openapi.alipay.com/gateway.do?app_id=2021000000000001&biz_content={biz}&charset=utf-8&format=JSON&method=alipay.trade.page.pay&notify_url=https%3A%2F%2Fpay.example.com%2Falipay%2Fnotify&return_url=https%3A%2F%2Fshop.example.com%2Fthanks&sign_type=RSA2&timestamp=2026-12-01+15%3A01%3A02&version=1.0&sign={sign}%3D%3D"
    )
}

fn zbarimg() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("zbarimg"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but zbarimg is not installed (apt-get install zbar-tools)"
        );
        eprintln!("skipped: zbarimg is not installed (apt-get install zbar-tools)");
    }
    found
}

/// A grey image, one byte a pixel.
#[derive(Clone)]
struct Grey {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Grey {
    fn decode(png: &[u8]) -> Self {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let frame = reader.next_frame(&mut buf).unwrap();
        assert_eq!(frame.color_type, png::ColorType::Grayscale);
        let (width, height) = (frame.width as usize, frame.height as usize);
        let pixels = (0..height)
            .flat_map(|y| buf[y * frame.line_size..][..width].to_vec())
            .collect();
        Self {
            width,
            height,
            pixels,
        }
    }

    /// Half the size each way, each pixel the mean of the four it replaces (what a browser shows
    /// when a chat client renders the image at half its width).
    fn half(&self) -> Self {
        let (width, height) = (self.width / 2, self.height / 2);
        let at = |x: usize, y: usize| u32::from(self.pixels[y * self.width + x]);
        let pixels = (0..height)
            .flat_map(|y| (0..width).map(move |x| (y, x)))
            .map(|(y, x)| {
                let sum = at(2 * x, 2 * y)
                    + at(2 * x + 1, 2 * y)
                    + at(2 * x, 2 * y + 1)
                    + at(2 * x + 1, 2 * y + 1);
                (sum / 4) as u8
            })
            .collect();
        Self {
            width,
            height,
            pixels,
        }
    }

    /// A 3×3 box blur: a slightly soft screen photo.
    fn blurred(&self) -> Self {
        let at = |x: isize, y: isize| {
            let x = x.clamp(0, self.width as isize - 1) as usize;
            let y = y.clamp(0, self.height as isize - 1) as usize;
            u32::from(self.pixels[y * self.width + x])
        };
        let pixels = (0..self.height as isize)
            .flat_map(|y| (0..self.width as isize).map(move |x| (y, x)))
            .map(|(y, x)| {
                let sum: u32 = (-1..=1)
                    .flat_map(|dy| (-1..=1).map(move |dx| (dx, dy)))
                    .map(|(dx, dy)| at(x + dx, y + dy))
                    .sum();
                (sum / 9) as u8
            })
            .collect();
        Self {
            width: self.width,
            height: self.height,
            pixels,
        }
    }

    /// As a binary PGM, which zbarimg reads.
    fn write_pgm(&self, path: &Path) {
        let mut out = format!("P5\n{} {}\n255\n", self.width, self.height).into_bytes();
        out.extend_from_slice(&self.pixels);
        std::fs::write(path, out).unwrap();
    }
}

/// What zbarimg reads in `image`, if anything.
fn read(zbarimg: &Path, image: &Grey, name: &str) -> Option<String> {
    let path = std::env::temp_dir().join(format!("qr-scan-{}-{name}.pgm", std::process::id()));
    image.write_pgm(&path);
    let out = Command::new(zbarimg)
        .args(["--raw", "-q", "-Sdisable", "-Sqrcode.enable"])
        .arg(&path)
        .output()
        .expect("run zbarimg");
    let _ = std::fs::remove_file(&path);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_string())
}

#[test]
fn a_phone_reads_the_qr_at_half_size_and_slightly_blurred() {
    let Some(zbarimg) = zbarimg() else { return };
    let long = real_size_link();
    assert!(long.len() > 900, "{}", long.len());
    // The desktop link, and a short one such as precreate's.
    for link in [
        long.as_str(),
        "https://qr.alipay.com/bax03431ljhokirwl38f00a7",
    ] {
        let full = Grey::decode(&mcp_server_alipay::qr::png(link).expect("fits"));
        for (name, image) in [
            ("full", full.clone()),
            ("half", full.half()),
            ("half-blurred", full.half().blurred()),
        ] {
            assert_eq!(
                read(&zbarimg, &image, name).as_deref(),
                Some(link),
                "{name}: {}×{} px",
                image.width,
                image.height
            );
        }
    }
}
