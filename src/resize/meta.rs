//! Metadata read without decoding pixels: JPEG marker segments (frame header, EXIF orientation,
//! ICC profile chunks) and the decision whether an ICC profile is worth carrying into variants.
//! Everything here is bounds-checked and tolerant: bad metadata never fails a photo.

/// Marker segments of a JPEG up to the first scan: `(marker, payload)`. Stops quietly at
/// anything malformed; the header parser and the decoder report real corruption.
pub(crate) fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut pos = 2; // after SOI
    std::iter::from_fn(move || loop {
        // Markers may be preceded by fill bytes (0xFF); anything else is garbage to skip.
        while pos < bytes.len() && bytes[pos] != 0xFF {
            pos += 1;
        }
        while pos < bytes.len() && bytes[pos] == 0xFF {
            pos += 1;
        }
        let marker = *bytes.get(pos)?;
        pos += 1;
        match marker {
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = usize::from(u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]));
        let payload = bytes.get(pos + 2..pos + len.max(2))?;
        pos += len.max(2);
        return Some((marker, payload));
    })
}

/// EXIF orientation (1..=8) from a JPEG's APP1 segment, if there is one.
pub(crate) fn jpeg_orientation(bytes: &[u8]) -> Option<u16> {
    jpeg_segments(bytes)
        .filter(|(marker, _)| *marker == 0xE1)
        .find_map(|(_, payload)| payload.strip_prefix(b"Exif\0\0"))
        .and_then(exif_orientation)
}

/// The Orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block.
pub(crate) fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let big_endian = match tiff.get(0..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = tiff.get(at..at + 2)?;
        Some(if big_endian {
            u16::from_be_bytes([b[0], b[1]])
        } else {
            u16::from_le_bytes([b[0], b[1]])
        })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b = tiff.get(at..at + 4)?;
        let b = [b[0], b[1], b[2], b[3]];
        Some(if big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    (0..count).find_map(|i| {
        let entry = ifd + 2 + i * 12;
        // Type 3 = SHORT; the value sits in the first two bytes of the value field.
        (u16_at(entry)? == 0x0112 && u16_at(entry + 2)? == 3)
            .then(|| u16_at(entry + 8))
            .flatten()
            .filter(|v| (1..=8).contains(v))
    })
}

/// The ICC profile of a JPEG, reassembled from its APP2 chunks in sequence order.
pub(crate) fn jpeg_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, &[u8])> = jpeg_segments(bytes)
        .filter(|(marker, _)| *marker == 0xE2)
        .filter_map(|(_, payload)| {
            let rest = payload.strip_prefix(b"ICC_PROFILE\0")?;
            Some((*rest.first()?, rest.get(2..)?))
        })
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|(seq, _)| *seq);
    Some(
        chunks
            .into_iter()
            .flat_map(|(_, data)| data.iter().copied())
            .collect(),
    )
}

/// Whether a source profile should be embedded in the variants. sRGB is dropped because an
/// untagged image already means sRGB to every browser, and it would cost ~3 KB per thumbnail.
/// A colour profile cannot describe grayscale output, and anything unparsable is dropped.
pub(crate) fn icc_worth_keeping(icc: &[u8], gray_output: bool) -> bool {
    let Some(space) = icc.get(16..20) else {
        return false;
    };
    let expected: &[u8] = if gray_output { b"GRAY" } else { b"RGB " };
    space == expected && !(space == b"RGB " && icc_is_srgb(icc))
}

/// Recognises sRGB by the profile description ('desc' tag), which is how the common
/// IEC 61966-2.1 profiles (HP/Microsoft, Apple, Google, ICC v4) identify themselves.
fn icc_is_srgb(icc: &[u8]) -> bool {
    let be32 = |at: usize| -> Option<usize> {
        let b = icc.get(at..at + 4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
    };
    let Some(count) = be32(128) else {
        return false;
    };
    let desc = (0..count.min(256)).find_map(|i| {
        let entry = 132 + i * 12;
        if icc.get(entry..entry + 4)? != b"desc" {
            return None;
        }
        let (offset, size) = (be32(entry + 4)?, be32(entry + 8)?);
        icc.get(offset..offset.checked_add(size)?)
    });
    // v2 'desc' stores ASCII, v4 'mluc' UTF-16BE; dropping NULs reads both.
    desc.is_some_and(|d| {
        let text: Vec<u8> = d.iter().copied().filter(|&b| b != 0).collect();
        text.windows(4).any(|w| w == b"sRGB")
    })
}
