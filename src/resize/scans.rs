//! Progressive JPEGs decoded only as far as the DCT scale needs them (issue #11 point 2).
//!
//! A progressive JPEG sends its DCT coefficients in scans: a band of zigzag positions
//! (`Ss..=Se`) of some components, first at reduced precision (`Al`) and then refined one bit
//! at a time (`Ah` > 0). A decode scaled by 1/8 only reads each block's DC coefficient, and the
//! reduced IDCTs of 1/4 and 1/2 are dominated by the low frequencies, so the scans that only
//! carry high frequencies are wasted work: libjpeg-turbo Huffman-decodes every scan whatever the
//! scale. libjpeg's buffered-image mode could stop early, but the TurboJPEG API does not expose
//! it, so this module rewrites the stream instead: the scans the scale does not use are cut out
//! (found by their markers alone, no Huffman decoding: entropy-coded data never holds a marker),
//! and the same TurboJPEG decode reads what is left. Cutting can also drop a middle scan, which
//! stopping early cannot.
//!
//! A refinement scan adds one bit to every coefficient of its band, so it is kept only when every
//! earlier scan of those coefficients was kept (libjpeg warns, and the engine fails, on a broken
//! progression otherwise).
//!
//! The parser is bounded: at most `MAX_SCANS` scans, one output buffer no larger than the input,
//! no recursion. Anything it does not understand (a frame that is not progressive Huffman, a scan
//! naming an unknown component, a truncated stream) gives `None` and the caller decodes the
//! original bytes, so the decoder reports real corruption as before.

/// More scans than libjpeg-turbo itself accepts (the decoder's `SCAN_LIMIT`): no real photo
/// comes near, and past it the normal decode refuses the file anyway.
const MAX_SCANS: usize = 500;

/// The highest zigzag position a decode at 1/`denominator` scale still needs: the coefficients
/// a 2×2 or 4×4 block of output mostly rests on at 1/4 and 1/2. At 1/8 only the DC is read,
/// but the first AC band of each component is kept too: with no AC coefficient at all,
/// libjpeg-turbo smooths the DC across blocks, which a 1/8 decode of the whole stream does not
/// (and the pixels would then differ).
pub(crate) fn highest_coefficient(denominator: u32) -> u8 {
    match denominator {
        8.. => 1,
        4..=7 => 4,
        2 | 3 => 24,
        _ => 63,
    }
}

/// What to keep of a progressive stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keep {
    /// Scans whose band lies wholly above this zigzag position are dropped.
    pub highest: u8,
    /// Refinement scans that bring coefficients down to a precision below this many low bits
    /// are dropped (0 keeps every refinement; 1 drops the last bit).
    pub least_bit: u8,
}

/// The progressive JPEG `bytes` without the scans `keep` rules out, or `None` when the stream is
/// not progressive Huffman, nothing would be dropped, or it is not understood.
pub(crate) fn prune(bytes: &[u8], keep: Keep) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    // Whether every scan so far of (component slot, zigzag position) was kept.
    let mut intact = [[true; 64]; 4];
    let mut components: Vec<u8> = Vec::new();
    let mut progressive = false;
    let mut dropped = false;
    let mut scans = 0usize;
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut pos = 2;
    let mut copied_to = 0;
    loop {
        // At a marker: fill bytes (0xFF) may precede it.
        if *bytes.get(pos)? != 0xFF {
            return None;
        }
        while *bytes.get(pos)? == 0xFF {
            pos += 1;
        }
        let marker = *bytes.get(pos)?;
        let start = pos - 1;
        pos += 1;
        match marker {
            0xD9 => {
                out.extend_from_slice(&bytes[copied_to..=start + 1]);
                return (progressive && dropped).then_some(out);
            }
            0x01 | 0xD0..=0xD7 => continue,
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([*bytes.get(pos)?, *bytes.get(pos + 1)?]));
        let segment = bytes.get(pos + 2..(pos + length).max(pos + 2))?;
        let end = pos + length.max(2);
        match marker {
            0xC2 => {
                if progressive || segment.len() < 6 {
                    return None;
                }
                let count = usize::from(segment[5]);
                if count == 0 || count > 4 || segment.len() < 6 + 3 * count {
                    return None;
                }
                components = (0..count).map(|i| segment[6 + 3 * i]).collect();
                progressive = true;
            }
            // Any other frame type (baseline, extended, lossless, arithmetic, hierarchical):
            // nothing to prune, or nothing this parser knows.
            0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF | 0xDE | 0xDF => {
                return None
            }
            0xDA => {
                scans += 1;
                if !progressive || scans > MAX_SCANS {
                    return None;
                }
                let scan = Scan::parse(segment, &components)?;
                let data_end = entropy_end(bytes, end)?;
                let needed = scan.first <= keep.highest;
                let kept = needed
                    && (scan.refines == 0
                        || (scan.precision >= keep.least_bit
                            && scan.coefficients().all(|(c, k)| intact[c][k])));
                if kept {
                    pos = data_end;
                    continue;
                }
                for (c, k) in scan.coefficients() {
                    intact[c][k] = false;
                }
                out.extend_from_slice(&bytes[copied_to..start]);
                copied_to = data_end;
                dropped = true;
                pos = data_end;
                continue;
            }
            _ => {}
        }
        pos = end;
    }
}

/// A scan header (SOS payload).
struct Scan {
    /// Component slots (indexes into the frame's components), in scan order.
    slots: Vec<usize>,
    first: u8,
    last: u8,
    /// `Ah`: non-zero for a refinement scan.
    refines: u8,
    /// `Al`: the low bits still missing after this scan.
    precision: u8,
}

impl Scan {
    fn parse(segment: &[u8], components: &[u8]) -> Option<Scan> {
        let count = usize::from(*segment.first()?);
        if count == 0 || count > 4 || segment.len() != 1 + 2 * count + 3 {
            return None;
        }
        let slots = (0..count)
            .map(|i| components.iter().position(|&id| id == segment[1 + 2 * i]))
            .collect::<Option<Vec<_>>>()?;
        let at = 1 + 2 * count;
        let (first, last, bits) = (segment[at], segment[at + 1], segment[at + 2]);
        if first > last || last > 63 || (first == 0 && last != 0) {
            return None;
        }
        Some(Scan {
            slots,
            first,
            last,
            refines: bits >> 4,
            precision: bits & 0x0F,
        })
    }

    fn coefficients(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.slots.iter().flat_map(move |&c| {
            (usize::from(self.first)..=usize::from(self.last)).map(move |k| (c, k))
        })
    }
}

/// Where the entropy-coded data starting at `from` ends: the first marker that is not a
/// restart marker (0xFF followed by anything but 0x00, 0xFF or RST0-7).
fn entropy_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        from += memchr::memchr(0xFF, bytes.get(from..)?)?;
        match *bytes.get(from + 1)? {
            0x00 | 0xD0..=0xD7 => from += 2,
            0xFF => from += 1,
            _ => return Some(from),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::jpeg;

    /// A photo-like progressive JPEG (libjpeg's standard script: DC, then AC bands, then
    /// refinements), made here so the tests depend on no tool.
    fn progressive(width: u32, height: u32) -> Vec<u8> {
        let rgb: Vec<u8> = (0..height)
            .flat_map(|y| {
                (0..width).flat_map(move |x| {
                    let (fx, fy) = (x as f32, y as f32);
                    let texture = 40.0 * (fx / 3.0).sin() * (fy / 5.0).cos();
                    [
                        (120.0 + texture + fx / 8.0).clamp(0.0, 255.0) as u8,
                        (90.0 - texture + fy / 6.0).clamp(0.0, 255.0) as u8,
                        (140.0 + texture / 2.0).clamp(0.0, 255.0) as u8,
                    ]
                })
            })
            .collect();
        jpeg::encode_rgb_progressive(&rgb, width, height, 90).expect("fixture encodes")
    }

    /// The scan headers of a stream, as `(components, Ss, Se, Ah, Al)`.
    fn scan_headers(bytes: &[u8]) -> Vec<(usize, u8, u8, u8, u8)> {
        let mut found = Vec::new();
        let mut pos = 2;
        while pos + 4 <= bytes.len() {
            if bytes[pos] != 0xFF || bytes[pos + 1] == 0xFF {
                pos += 1;
                continue;
            }
            let marker = bytes[pos + 1];
            if marker == 0xD9 {
                break;
            }
            let length = usize::from(u16::from_be_bytes([bytes[pos + 2], bytes[pos + 3]]));
            let segment = &bytes[pos + 4..pos + 2 + length];
            pos += 2 + length;
            if marker == 0xDA {
                let n = usize::from(segment[0]);
                let at = 1 + 2 * n;
                let (ss, se, a) = (segment[at], segment[at + 1], segment[at + 2]);
                found.push((n, ss, se, a >> 4, a & 15));
                pos = entropy_end(bytes, pos).expect("scan ends");
            }
        }
        found
    }

    const EVERYTHING: Keep = Keep {
        highest: 63,
        least_bit: 0,
    };

    #[test]
    fn a_one_eighth_decode_reads_fewer_scans_and_gives_the_same_pixels() {
        let original = progressive(640, 480);
        let scans = scan_headers(&original);
        assert!(scans.len() >= 8, "standard script: {scans:?}");
        let pruned = prune(
            &original,
            Keep {
                highest: highest_coefficient(8),
                least_bit: 0,
            },
        )
        .expect("AC scans dropped");
        let kept = scan_headers(&pruned);
        assert!(kept.iter().all(|&(_, ss, _, _, _)| ss <= 1), "{kept:?}");
        assert!(kept.len() < scans.len(), "{kept:?}");
        assert!(
            pruned.len() < original.len(),
            "{} of {}",
            pruned.len(),
            original.len()
        );
        // 1/8 scale reads nothing but DC, so the pixels are exactly the same.
        assert_eq!(
            jpeg::decode_rgb_scaled(&pruned, 8).expect("pruned decodes without warning"),
            jpeg::decode_rgb_scaled(&original, 8).expect("original decodes")
        );
    }

    #[test]
    fn refinements_are_kept_only_on_top_of_everything_they_refine() {
        let original = progressive(640, 480);
        for highest in [0, 4, 24] {
            for least_bit in [0, 1, 2] {
                let keep = Keep { highest, least_bit };
                let Some(pruned) = prune(&original, keep) else {
                    continue;
                };
                let kept = scan_headers(&pruned);
                // Every kept refinement's band was covered by kept scans of every earlier bit.
                for (i, &(_, ss, se, ah, al)) in kept.iter().enumerate() {
                    assert!(ss <= highest, "{keep:?}: band {ss}..{se} kept");
                    if ah > 0 {
                        assert!(al >= least_bit, "{keep:?}: refinement to bit {al} kept");
                        // (Components are not told apart here: the script's chroma bands
                        // never share a precision with the luma band they sit beside.)
                        let covered = (ss..=se).all(|k| {
                            kept[..i]
                                .iter()
                                .any(|&(_, s, e, _, l)| s <= k && k <= e && l == ah)
                        });
                        assert!(covered, "{keep:?}: refinement {ss}..{se} lacks its history");
                    }
                }
                for denom in [1, 2, 4, 8] {
                    jpeg::decode_rgb_scaled(&pruned, denom)
                        .unwrap_or_else(|e| panic!("{keep:?} at 1/{denom}: {e}"));
                }
            }
        }
    }

    #[test]
    fn streams_with_nothing_to_drop_or_not_understood_are_left_alone() {
        let original = progressive(64, 48);
        assert_eq!(prune(&original, EVERYTHING), None, "nothing to drop");
        let rgb = vec![128u8; 64 * 48 * 3];
        let baseline = jpeg::encode_packed(&rgb, 64, 48, 3, 90, None).expect("encodes");
        let dc = Keep {
            highest: 0,
            least_bit: 0,
        };
        assert_eq!(prune(&baseline, dc), None, "baseline");
        assert_eq!(prune(b"", dc), None);
        assert_eq!(prune(b"\xFF\xD8", dc), None);
        assert_eq!(prune(b"\xFF\xD8\xFF", dc), None);
        assert_eq!(
            prune(b"\xFF\xD8\xFF\xC2\xFF\xFF", dc),
            None,
            "length past the end"
        );
        assert_eq!(prune(b"\xFF\xD8\xFF\xD9", dc), None, "no frame");
        // A scan before any frame, a scan of a component the frame lacks, a bad band.
        assert_eq!(
            prune(
                b"\xFF\xD8\xFF\xDA\x00\x08\x01\x01\x00\x00\x00\x00\xFF\xD9",
                dc
            ),
            None
        );
        let frame = b"\xFF\xD8\xFF\xC2\x00\x0B\x08\x00\x10\x00\x10\x01\x01\x11\x00";
        for scan in [
            &b"\xFF\xDA\x00\x08\x01\x07\x00\x00\x00\x00"[..],
            b"\xFF\xDA\x00\x08\x01\x01\x00\x05\x01\x00",
            b"\xFF\xDA\x00\x08\x01\x01\x00\x09\x40\x00",
            b"\xFF\xDA\x00\x08\x00\x01\x00\x00\x00\x00",
            b"\xFF\xDA\x00\x0A\x05\x01\x00\x00\x00\x00",
        ] {
            let stream = [&frame[..], scan, b"\x12\x34\xFF\xD9"].concat();
            assert_eq!(prune(&stream, dc), None, "{scan:02X?}");
        }
        // Too many scans: left to the decoder, which refuses them.
        let mut bomb = frame.to_vec();
        for _ in 0..=MAX_SCANS {
            bomb.extend_from_slice(b"\xFF\xDA\x00\x08\x01\x01\x00\x00\x00\x00\x55");
        }
        bomb.extend_from_slice(b"\xFF\xD9");
        assert_eq!(prune(&bomb, dc), None);
    }

    #[test]
    fn hostile_streams_never_panic_and_never_grow() {
        let original = progressive(96, 64);
        let dc = Keep {
            highest: 0,
            least_bit: 0,
        };
        // Every truncation: a stream cut before its EOI is left to the decoder.
        for end in 0..original.len() - 1 {
            assert_eq!(prune(&original[..end], dc), None, "cut at {end}");
        }
        // Bytes flipped anywhere: whatever comes out is no longer than what went in.
        let mut rng = fastrand::Rng::with_seed(11);
        for _ in 0..2000 {
            let mut bytes = original.clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..bytes.len());
                bytes[at] = rng.u8(..);
            }
            if let Some(out) = prune(&bytes, dc) {
                assert!(out.len() <= bytes.len());
            }
        }
    }
}
