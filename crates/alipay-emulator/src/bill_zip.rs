//! A bill's files as Alipay ships them: one zip, deflated, whose entry names and contents are
//! GBK bytes, the names without the zip's UTF-8 flag (general purpose bit 11). That is what a
//! Windows tool of Alipay's vintage writes, and what a client that takes names as UTF-8 (or
//! contents as UTF-8) gets wrong; the emulator must serve that trap faithfully.
//!
//! The zip crate writes a raw name as given (`FileOptions::name`) and sets the UTF-8 flag only
//! for names that are valid, non-ASCII UTF-8, which the GBK bytes of 业务明细/账务明细 never are.

use std::io::{Cursor, Write as _};

use chrono::{DateTime, Datelike as _, FixedOffset, Timelike as _};
use encoding_rs::{EncoderResult, GBK};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::bills::BillFile;

/// The zip of `files`, in their order, each dated `modified` (Beijing, as the DOS time of a
/// Chinese Windows export).
pub(crate) fn zip(
    files: &[BillFile],
    modified: &DateTime<FixedOffset>,
) -> zip::result::ZipResult<Vec<u8>> {
    let time = dos_time(modified);
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for file in files {
        let name = gbk(&file.name);
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(time)
            .name(&name);
        writer.start_file_with_options(options)?;
        writer.write_all(&gbk(&file.text))?;
    }
    Ok(writer.finish()?.into_inner())
}

/// A zip timestamp; outside the DOS range (1980–2107) the zip default (1980-01-01).
fn dos_time(at: &DateTime<FixedOffset>) -> zip::DateTime {
    let part = |n: u32| u8::try_from(n).unwrap_or(0);
    u16::try_from(at.year())
        .ok()
        .and_then(|year| {
            zip::DateTime::from_date_and_time(
                year,
                part(at.month()),
                part(at.day()),
                part(at.hour()),
                part(at.minute()),
                part(at.second()),
            )
            .ok()
        })
        .unwrap_or_default()
}

/// `text` in GBK; a character GBK lacks (an emoji, say) becomes `?`, as Java's `getBytes("GBK")`
/// writes it (encoding_rs's own replacement, an HTML `&#…;` reference, is a browser's habit).
pub(crate) fn gbk(text: &str) -> Vec<u8> {
    let mut encoder = GBK.new_encoder();
    let mut out = Vec::with_capacity(text.len() + 16);
    let mut rest = text;
    loop {
        let room = encoder
            .max_buffer_length_from_utf8_without_replacement(rest.len())
            .unwrap_or(rest.len().saturating_mul(2))
            .max(4);
        out.reserve(room);
        let (result, read) =
            encoder.encode_from_utf8_to_vec_without_replacement(rest, &mut out, true);
        rest = rest.get(read..).unwrap_or("");
        match result {
            EncoderResult::InputEmpty => return out,
            EncoderResult::OutputFull => {}
            EncoderResult::Unmappable(_) => out.push(b'?'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn names_and_contents_are_gbk_and_unflagged() {
        let files = [
            BillFile {
                name: "2088000000000001_20261125_业务明细(汇总).csv".into(),
                text: "#支付宝业务汇总查询\r\n".into(),
            },
            BillFile {
                name: "2088000000000001_20261125_业务明细.csv".into(),
                text: "#支付宝业务明细查询\r\n诗😀\r\n".into(),
            },
        ];
        let at = alipay_openapi::time::parse_timestamp("2026-11-26 09:10:11").unwrap();
        let bytes = zip(&files, &at).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes.clone())).unwrap();
        assert_eq!(archive.len(), 2);
        for (i, file) in files.iter().enumerate() {
            let mut entry = archive.by_index(i).unwrap();
            assert_eq!(entry.name_raw(), gbk(&file.name).as_slice());
            assert!(std::str::from_utf8(entry.name_raw()).is_err());
            assert_eq!(entry.compression(), CompressionMethod::Deflated);
            let (local, central) = (
                usize::try_from(entry.header_start()).unwrap(),
                usize::try_from(entry.central_header_start()).unwrap(),
            );
            // General purpose flags: offset 6 in the local header, 8 in the central one.
            for flags in [
                &bytes[local + 6..local + 8],
                &bytes[central + 8..central + 10],
            ] {
                assert_eq!(
                    u16::from_le_bytes([flags[0], flags[1]]) & 0x0800,
                    0,
                    "UTF-8 flag set"
                );
            }
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            let (decoded, _, errors) = GBK.decode(&content);
            assert!(!errors);
            assert_eq!(decoded, file.text.replace('😀', "?"));
        }
        let modified = archive.by_index(0).unwrap().last_modified().unwrap();
        assert_eq!(
            (modified.year(), modified.month(), modified.day()),
            (2026, 11, 26)
        );
    }
}
