//! Metadata read without decoding pixels: JPEG marker segments (frame header, EXIF orientation,
//! ICC profile chunks), PNG metadata chunks that a decoder would inflate, and the decision
//! whether an ICC profile is worth carrying into variants. Everything here is bounds-checked
//! and tolerant: bad metadata never fails a photo, oversized metadata is dropped or refused.

/// The most any one metadata item (an ICC profile, a PNG metadata chunk once inflated) may
/// weigh. Real ICC profiles are 0.5–600 KB; past this a profile is either an attack or a
/// payload no thumbnail should carry.
pub(crate) const MAX_METADATA_BYTES: usize = 1 << 20;

/// Marker segments of a JPEG up to and including the first scan header (SOS, whose payload is
/// only the scan header): `(marker, payload)`. Stops quietly at anything malformed; the header
/// parser and the decoder report real corruption.
pub(crate) fn jpeg_segments(bytes: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    let mut pos = 2; // after SOI
    let mut done = false;
    std::iter::from_fn(move || loop {
        if done {
            return None;
        }
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
            0xD9 => return None,
            // Entropy-coded data follows the scan header: nothing past it is a segment.
            0xDA => done = true,
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

/// The ICC profile of a JPEG, reassembled from its APP2 chunks in sequence order. `None` when
/// there is none or it would be larger than `MAX_METADATA_BYTES` (never reassembled, then).
pub(crate) fn jpeg_icc(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, &[u8])> = jpeg_segments(bytes)
        .filter(|(marker, _)| *marker == 0xE2)
        .filter_map(|(_, payload)| {
            let rest = payload.strip_prefix(b"ICC_PROFILE\0")?;
            Some((*rest.first()?, rest.get(2..)?))
        })
        .collect();
    let total: usize = chunks.iter().map(|(_, data)| data.len()).sum();
    if chunks.is_empty() || total > MAX_METADATA_BYTES {
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

/// Whether a source profile should be embedded in the variants. Only a well-formed profile of
/// at most `MAX_METADATA_BYTES` is (its header's size field matches its length and it carries
/// the `acsp` signature): anything else is dropped, so a variant never grows by a payload that
/// only pretends to be a profile. sRGB is dropped because an untagged image already means sRGB
/// to every browser, and it would cost ~3 KB per thumbnail. A colour profile cannot describe
/// grayscale output.
pub(crate) fn icc_worth_keeping(icc: &[u8], gray_output: bool) -> bool {
    if !icc_well_formed(icc) {
        return false;
    }
    let Some(space) = icc.get(16..20) else {
        return false;
    };
    let expected: &[u8] = if gray_output { b"GRAY" } else { b"RGB " };
    space == expected && !(space == b"RGB " && icc_is_srgb(icc))
}

/// An ICC header: 128 bytes plus a tag count, its size field equal to the actual length, the
/// `acsp` file signature at offset 36, and not over `MAX_METADATA_BYTES`.
fn icc_well_formed(icc: &[u8]) -> bool {
    let declared = icc
        .get(0..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    icc.len() >= 132
        && icc.len() <= MAX_METADATA_BYTES
        && declared == Some(icc.len())
        && icc.get(36..40) == Some(b"acsp".as_slice())
}

/// Why a PNG is refused for its metadata: a chunk a decoder would hold in memory, inflated,
/// larger than `MAX_METADATA_BYTES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OversizedChunk {
    pub kind: &'static str,
}

/// Checks the metadata chunks before the first IDAT that a decoder would keep in memory:
/// `iCCP` (the `png` crate inflates it while reading the header, with no limit of its own
/// below the whole-image budget) is inflated here into a small buffer, counting, and stopped
/// past `MAX_METADATA_BYTES`; `eXIf` is held raw, so its length is checked. `zTXt` and `iTXt`
/// are never inflated by the engine (it reads no text), so they cost no more than their bytes.
/// A truncated or corrupt chunk is not refused here: the decoder reports real corruption, and a
/// prefix of the file is enough to check what it holds.
pub(crate) fn png_oversized_chunk(bytes: &[u8]) -> Option<OversizedChunk> {
    for chunk in png_chunks(bytes) {
        match chunk.kind {
            b"IDAT" | b"IEND" => return None,
            b"eXIf" if chunk.len > MAX_METADATA_BYTES => {
                return Some(OversizedChunk { kind: "eXIf" })
            }
            b"iCCP" => {
                // Profile name (1-79 bytes), NUL, compression method (0 = zlib), zlib stream.
                let name_end = chunk.data.iter().take(80).position(|&b| b == 0)?;
                let stream = chunk.data.get(name_end + 2..)?;
                if inflates_past(stream, MAX_METADATA_BYTES) {
                    return Some(OversizedChunk { kind: "iCCP" });
                }
            }
            _ => {}
        }
    }
    None
}

/// One chunk of a PNG: its type, its declared length, and as much of its data as `bytes` holds.
pub(crate) struct PngChunk<'a> {
    pub kind: &'a [u8],
    pub len: usize,
    pub data: &'a [u8],
}

/// The chunks of a PNG after the signature, in order, until `bytes` ends (a prefix stops at
/// the first chunk whose header it does not hold; the last one's data may be cut).
pub(crate) fn png_chunks(bytes: &[u8]) -> impl Iterator<Item = PngChunk<'_>> {
    let mut pos = Some(8); // after the signature
    std::iter::from_fn(move || {
        let at = pos?;
        let header = bytes.get(at..at + 8)?;
        let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let data_start = at + 8;
        let available = bytes.get(data_start..)?;
        pos = data_start
            .checked_add(len)
            .and_then(|end| end.checked_add(4)); // data and CRC
        Some(PngChunk {
            kind: &header[4..8],
            len,
            data: &available[..len.min(available.len())],
        })
    })
}

/// Whether a zlib stream inflates to more than `limit` bytes, found with one 32 KiB buffer and
/// at most `limit` bytes of inflate work. A corrupt or cut stream answers `false`.
fn inflates_past(stream: &[u8], limit: usize) -> bool {
    let mut inflater = flate2::Decompress::new(true);
    let mut sink = vec![0u8; 32 * 1024];
    loop {
        let consumed = inflater.total_in() as usize;
        let before = (inflater.total_in(), inflater.total_out());
        let Some(input) = stream.get(consumed..) else {
            return false;
        };
        match inflater.decompress(input, &mut sink, flate2::FlushDecompress::None) {
            Ok(flate2::Status::StreamEnd) | Err(_) => return false,
            Ok(_) => {}
        }
        if inflater.total_out() as usize > limit {
            return true;
        }
        if (inflater.total_in(), inflater.total_out()) == before {
            return false; // cut short: nothing more to read
        }
    }
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
