//! Format sniffing and header-only reading of size and pixel layout, so the web tier can
//! validate uploads and the worker can refuse pixel and memory bombs before any pixel buffer
//! exists. Hand-written parsers: they read a few bytes, allocate nothing, and never trust a
//! length without a bounds check.
//!
//! The decode-memory figure (`Probe::decode_bytes`) is the most the engine's decode holds at
//! once for this image, at full scale:
//! * PNG: the decoder's output at its native depth (width × height × channels × bytes per
//!   sample; palette counts as RGBA) plus the 8-bit frame the engine narrows it into when a
//!   conversion copy is made (16-bit samples, or an alpha channel that may be stripped).
//! * WebP: RGBA out of the decoder plus the RGB copy an opaque alpha is stripped into.
//! * JPEG: the decoded samples at full scale (gray 1, Y'CbCr 3, CMYK 4 + 3 for the RGB it
//!   becomes), plus, for a progressive or multi-scan JPEG, libjpeg-turbo's whole-image
//!   coefficient buffer: 2 bytes per sample of every component at its own (subsampled) size,
//!   padded to whole blocks.

use super::{meta, Format, Probe, ProbeError};

/// Sniffs the format from magic bytes and reads dimensions from the header only (no pixel
/// decode, no big allocation). Sizes are as stored, before EXIF orientation.
pub fn probe(bytes: &[u8]) -> Result<Probe, ProbeError> {
    let format = Format::sniff(bytes).ok_or(ProbeError::UnsupportedType)?;
    let (width, height, decode_bytes) = match format {
        Format::Jpeg => jpeg_header(bytes)?,
        Format::Png => png_header(bytes)?,
        Format::Webp => webp_header(bytes)?,
    };
    if width == 0 || height == 0 {
        return Err(bad("image has no pixels"));
    }
    Ok(Probe {
        format,
        width,
        height,
        decode_bytes,
    })
}

/// Whether `prefix`, the start of a file, holds all that `probe` reads of the whole file, so
/// that a reader can stop there: for a JPEG up to its first scan header (the frame header and
/// the scan's layout are before it), for a PNG up to its first image data chunk (every
/// metadata chunk the rules inflate or measure is before it), for a WebP its image header. A
/// prefix that is not an image holds all there is to tell.
pub fn head_complete(prefix: &[u8]) -> bool {
    match Format::sniff(prefix) {
        Some(Format::Jpeg) => meta::jpeg_segments(prefix).any(|(marker, _)| marker == 0xDA),
        Some(Format::Png) => {
            meta::png_chunks(prefix).any(|chunk| matches!(chunk.kind, b"IDAT" | b"IEND"))
        }
        // RIFF header, chunk header, then at most 10 bytes of image header (`webp_size`).
        Some(Format::Webp) => prefix.len() >= 30,
        None => prefix.len() >= 12,
    }
}

fn bad(message: &str) -> ProbeError {
    ProbeError::BadHeader(message.to_owned())
}

fn jpeg_header(bytes: &[u8]) -> Result<(u32, u32, u64), ProbeError> {
    let mut frame = None;
    for (marker, payload) in meta::jpeg_segments(bytes) {
        // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
        if frame.is_none() && matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC)
        {
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
            let width = u16::from_be_bytes([w1, w0]);
            // SOF2, 6, 10 and 14 are the progressive processes.
            let progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
            frame = Some((
                marker,
                payload,
                u32::from(width),
                u32::from(height),
                progressive,
            ));
        } else if marker == 0xDA {
            // First scan header: fewer components than the frame means the components come in
            // separate scans, which makes libjpeg keep every coefficient as a progressive does.
            let Some((_, sof, width, height, progressive)) = frame else {
                break;
            };
            let frame_components = sof.get(5).copied().unwrap_or(0);
            let scan_components = payload.first().copied().unwrap_or(0);
            let buffered = progressive || scan_components < frame_components;
            return Ok((
                width,
                height,
                jpeg_decode_bytes(sof, width, height, buffered),
            ));
        }
    }
    match frame {
        // No scan in the bytes at hand (a prefix): assume the worst, a buffered decode.
        Some((_, sof, width, height, _)) => {
            Ok((width, height, jpeg_decode_bytes(sof, width, height, true)))
        }
        None => Err(bad("JPEG has no frame header (truncated or not a JPEG)")),
    }
}

/// See the module doc. `sof` is the frame header's payload: precision, height, width, the
/// component count, then (id, sampling factors, table) per component.
fn jpeg_decode_bytes(sof: &[u8], width: u32, height: u32, buffered: bool) -> u64 {
    let pixels = u64::from(width) * u64::from(height);
    let components: Vec<(u64, u64)> = sof
        .get(6..)
        .unwrap_or_default()
        .chunks_exact(3)
        .take(usize::from(sof.get(5).copied().unwrap_or(0)))
        .map(|c| (u64::from(c[1] >> 4).max(1), u64::from(c[1] & 0x0F).max(1)))
        .collect();
    let output = match components.len() {
        0 | 1 => pixels,
        2 | 3 => pixels * 3,
        _ => pixels * (4 + 3),
    };
    if !buffered {
        return output;
    }
    let h_max = components.iter().map(|c| c.0).max().unwrap_or(1);
    let v_max = components.iter().map(|c| c.1).max().unwrap_or(1);
    let coefficients: u64 = components
        .iter()
        .map(|&(h, v)| {
            let blocks_w = (u64::from(width) * h).div_ceil(h_max * 8);
            let blocks_h = (u64::from(height) * v).div_ceil(v_max * 8);
            blocks_w * blocks_h * 64 * 2
        })
        .sum();
    output + coefficients
}

fn png_header(bytes: &[u8]) -> Result<(u32, u32, u64), ProbeError> {
    let ihdr = bytes
        .get(8..26)
        .ok_or_else(|| bad("PNG is truncated before its IHDR chunk"))?;
    if &ihdr[4..8] != b"IHDR" {
        return Err(bad("PNG does not start with an IHDR chunk"));
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (width, height) = (be(&ihdr[8..12]), be(&ihdr[12..16]));
    if width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(bad("PNG dimensions out of range"));
    }
    let (bit_depth, colour_type) = (ihdr[16], ihdr[17]);
    // (channels out of the decoder, whether an alpha channel may be there to strip)
    let (channels, alpha) = match colour_type {
        0 => (1, false),
        2 => (3, false),
        3 => (4, true), // palette, expanded to RGBA when it has transparency
        4 => (2, true),
        6 => (4, true),
        _ => return Err(bad("PNG has an unknown colour type")),
    };
    let wide = bit_depth == 16;
    let pixels = u64::from(width) * u64::from(height);
    let decoded = pixels * channels * if wide { 2 } else { 1 };
    let narrowed = if wide || alpha { pixels * channels } else { 0 };
    if let Some(chunk) = meta::png_oversized_chunk(bytes) {
        return Err(ProbeError::OversizedMetadata {
            kind: chunk.kind,
            limit: meta::MAX_METADATA_BYTES as u64,
        });
    }
    Ok((width, height, decoded + narrowed))
}

fn webp_header(bytes: &[u8]) -> Result<(u32, u32, u64), ProbeError> {
    let (width, height) = webp_size(bytes)?;
    // RGBA out of the decoder, then the RGB frame an opaque alpha is stripped into.
    let decode_bytes = u64::from(width) * u64::from(height) * (4 + 3);
    Ok((width, height, decode_bytes))
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
