//! The extension's and the task's icons, drawn here rather than kept as
//! opaque binaries: `cargo xtask icons` writes them, and a test checks the
//! committed PNGs are what this code draws, so a change to the drawing is a
//! reviewable diff and the files cannot drift from it.
//!
//! The picture is the tool's idea: two repositories (rings) and the relay
//! between them (a bar ending in an arrow head), white on a rounded blue
//! square. Shapes are tested per sub-pixel (4x4 samples a pixel) for smooth
//! edges. The PNG writer is the smallest valid one: 8-bit RGBA, filter 0,
//! zlib "stored" (uncompressed) blocks, so it needs no compression crate.

/// Sub-samples per pixel along each axis.
const SAMPLES: u32 = 4;

/// An RGBA image of `size` x `size` pixels, drawn in a unit square
/// (coordinates 0..1, y down).
pub fn draw(size: u32) -> Vec<u8> {
    let mut rgba = Vec::with_capacity((size * size * 4) as usize);
    for py in 0..size {
        for px in 0..size {
            let (mut tile, mut mark) = (0u32, 0u32);
            for sy in 0..SAMPLES {
                for sx in 0..SAMPLES {
                    let x = (px as f64 + (sx as f64 + 0.5) / SAMPLES as f64) / size as f64;
                    let y = (py as f64 + (sy as f64 + 0.5) / SAMPLES as f64) / size as f64;
                    if in_tile(x, y) {
                        tile += 1;
                        if in_mark(x, y) {
                            mark += 1;
                        }
                    }
                }
            }
            let all = SAMPLES * SAMPLES;
            // Blue tile, white mark: mix by the share of white samples.
            let blend = |blue: u32| ((blue * (tile - mark) + 255 * mark) / tile.max(1)) as u8;
            rgba.extend_from_slice(&[
                blend(0x0b),
                blend(0x5c),
                blend(0xad),
                (255 * tile / all) as u8,
            ]);
        }
    }
    rgba
}

/// The rounded square behind the mark.
fn in_tile(x: f64, y: f64) -> bool {
    let (margin, radius) = (0.02, 0.18);
    let clamp = |v: f64| v.clamp(margin + radius, 1.0 - margin - radius);
    let (dx, dy) = (x - clamp(x), y - clamp(y));
    dx * dx + dy * dy <= radius * radius
}

/// Two rings joined by a bar with an arrow head pointing at the right one.
fn in_mark(x: f64, y: f64) -> bool {
    let ring = |cx: f64| {
        let d = ((x - cx).powi(2) + (y - 0.5).powi(2)).sqrt();
        (0.085..=0.155).contains(&d)
    };
    let bar = (0.36..=0.56).contains(&x) && (y - 0.5).abs() <= 0.035;
    // Head: a triangle with its tip at (0.66, 0.5), base at x = 0.54.
    let head = (0.54..=0.66).contains(&x) && (y - 0.5).abs() <= (0.66 - x) * 0.9;
    ring(0.2) || ring(0.8) || bar || head
}

/// A PNG file of the given RGBA pixels.
pub fn png(size: u32, rgba: &[u8]) -> Vec<u8> {
    let row = size as usize * 4;
    let mut raw = Vec::with_capacity(rgba.len() + size as usize);
    for line in rgba.chunks(row) {
        raw.push(0); // filter: none
        raw.extend_from_slice(line);
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&size.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]); // 8 bits, RGBA, deflate, no filter method, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of uncompressed deflate blocks (at most 65535 bytes each).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Each icon the repository keeps: its path from the root and its size.
pub const ICONS: &[(&str, u32)] = &[("docs/marketplace/icon.png", 128), ("task/icon.png", 32)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_known_values() {
        // The standard check values of CRC-32 and Adler-32.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn png_has_the_size_and_format_asked() {
        let file = png(128, &draw(128));
        assert_eq!(&file[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&file[12..16], b"IHDR");
        assert_eq!(u32::from_be_bytes(file[16..20].try_into().unwrap()), 128);
        assert_eq!(u32::from_be_bytes(file[20..24].try_into().unwrap()), 128);
        assert_eq!(&file[24..26], &[8, 6]);
        assert_eq!(&file[file.len() - 8..file.len() - 4], b"IEND");
    }

    #[test]
    fn committed_icons_are_what_the_code_draws() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (path, size) in ICONS {
            let committed = std::fs::read(root.join(path))
                .unwrap_or_else(|e| panic!("{path}: {e}; run `cargo xtask icons`"));
            assert!(
                committed == png(*size, &draw(*size)),
                "{path} differs from what xtask/src/icon.rs draws: run `cargo xtask icons`"
            );
        }
    }
}
