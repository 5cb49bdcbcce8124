//! Format sniffing and header-only size reading, so the web tier can validate uploads and the
//! worker can refuse pixel bombs before any pixel buffer exists. Hand-written parsers: they read
//! a few bytes, allocate nothing, and never trust a length without a bounds check.

use super::{meta, Format, Probe, ProbeError};

/// Sniffs the format from magic bytes and reads dimensions from the header only (no pixel
/// decode, no big allocation). Sizes are as stored, before EXIF orientation.
pub fn probe(bytes: &[u8]) -> Result<Probe, ProbeError> {
    let format = Format::sniff(bytes).ok_or(ProbeError::UnsupportedType)?;
    let (width, height) = match format {
        Format::Jpeg => jpeg_size(bytes)?,
        Format::Png => png_size(bytes)?,
        Format::Webp => webp_size(bytes)?,
    };
    if width == 0 || height == 0 {
        return Err(bad("image has no pixels"));
    }
    Ok(Probe {
        format,
        width,
        height,
    })
}

fn bad(message: &str) -> ProbeError {
    ProbeError::BadHeader(message.to_owned())
}

fn jpeg_size(bytes: &[u8]) -> Result<(u32, u32), ProbeError> {
    for (marker, payload) in meta::jpeg_segments(bytes) {
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let Some(&[_precision, h1, h0, w1, w0]) = payload.get(..5) else {
                return Err(bad("JPEG frame header is truncated"));
            };
            let height = u16::from_be_bytes([h1, h0]);
            if height == 0 {
                // Height deferred to a DNL marker: legal, but nothing a browser shows either.
                return Err(bad(
                    "JPEG without a height in its frame header is not supported",
                ));
            }
            return Ok((u32::from(u16::from_be_bytes([w1, w0])), u32::from(height)));
        }
    }
    Err(bad("JPEG has no frame header (truncated or not a JPEG)"))
}

fn png_size(bytes: &[u8]) -> Result<(u32, u32), ProbeError> {
    let ihdr = bytes
        .get(8..24)
        .ok_or_else(|| bad("PNG is truncated before its IHDR chunk"))?;
    if &ihdr[4..8] != b"IHDR" {
        return Err(bad("PNG does not start with an IHDR chunk"));
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (width, height) = (be(&ihdr[8..12]), be(&ihdr[12..16]));
    if width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(bad("PNG dimensions out of range"));
    }
    Ok((width, height))
}

fn webp_size(bytes: &[u8]) -> Result<(u32, u32), ProbeError> {
    let truncated = || bad("WebP is truncated before its image header");
    let fourcc = bytes.get(12..16).ok_or_else(truncated)?;
    let data = bytes.get(20..).ok_or_else(truncated)?;
    match fourcc {
        b"VP8 " => {
            let h = data.get(..10).ok_or_else(truncated)?;
            if h[3..6] != [0x9D, 0x01, 0x2A] {
                return Err(bad("WebP (lossy) frame has a bad start code"));
            }
            let w = u16::from_le_bytes([h[6], h[7]]) & 0x3FFF;
            let ht = u16::from_le_bytes([h[8], h[9]]) & 0x3FFF;
            Ok((u32::from(w), u32::from(ht)))
        }
        b"VP8L" => {
            let h = data.get(..5).ok_or_else(truncated)?;
            if h[0] != 0x2F {
                return Err(bad("WebP (lossless) has a bad signature"));
            }
            let bits = u32::from_le_bytes([h[1], h[2], h[3], h[4]]);
            Ok(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => {
            let h = data.get(..10).ok_or_else(truncated)?;
            let le24 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], 0]);
            Ok((le24(&h[4..7]) + 1, le24(&h[7..10]) + 1))
        }
        _ => Err(bad("WebP has an unknown image chunk")),
    }
}
