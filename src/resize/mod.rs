//! The resize engine, the worker's CPU hot path: photo bytes in, variant set out.
//!
//! `process()` sniffs the format, refuses pixel and memory bombs from the header alone (the pixel
//! limit, and the decode-memory budget computed as `probe` explains), decodes the photo
//! once, and makes every variant from that one decode, largest first, each smaller one cut from
//! the previous variant (never from the full frame: at equal quality that is several times less
//! work, and it is what vips and Pillow do too).
//!
//! # JPEG: libjpeg-turbo, DCT-domain downscaling, Y'CbCr all the way
//! JPEGs are decoded with libjpeg-turbo 3 (TurboJPEG API via `turbojpeg-sys`, bundled and built
//! with its SIMD code). Measured on this project's photos, one core, decode only (ms/image):
//!
//! | decoder (scales of the earlier 2× rule)      | real/ (2560×1600, 5K) | camera/ (12 MP, 50 MP) |
//! |----------------------------------------------|----------------------:|-----------------------:|
//! | libjpeg-turbo 3.1, planar Y'CbCr             | 56                    | 115                    |
//! | libjpeg-turbo 3.1, RGB                       | 58                    | 123                    |
//! | zune-jpeg 0.5 (full size only, no scaling)   | 77                    | 180                    |
//! | jpeg-decoder 0.3 (`Decoder::scale`)          | 82                    | 159                    |
//!
//! mozjpeg's decoder is a fork of libjpeg-turbo 2.x (same speed class at best, and its encoder
//! trades a lot of speed for size), so it brings nothing the bundled libjpeg-turbo 3 lacks.
//!
//! The decoder scales by 1/2, 1/4 or 1/8 in the DCT domain as long as the Lanczos3 pass that
//! fast_image_resize runs after it still shrinks by at least 1.5× (`jpeg::LANCZOS_MARGIN`). So
//! a 50 MP photo is decoded at 1/4 (3.2 MP) for a 1280 preview, a 12 MP one at 1/2, and neither
//! ever becomes a full-size frame. Measured on the shared photos with `resize::quality` (luma
//! PSNR of each variant against a full-size decode resized with Lanczos3; before: libvips' 2×):
//!
//! | decode rule                                   | worst drop, real/ | worst drop, camera/ |
//! |-----------------------------------------------|------------------:|--------------------:|
//! | nearest DCT scale above the target (Pillow)   | 3.10 dB           | 0.22 dB             |
//! | Lanczos pass ≥ 1.5× (chosen)                  | 0 (same scales)   | 0.22 dB             |
//! | nearest scale + `TJPARAM_FASTDCT`             | 20.3 dB           | 17.5 dB             |
//!
//! Decoding straight to the target leaves the reduced IDCT as the only filter, which is visibly
//! cruder than Lanczos3 on smooth photos (2560 → 1280 at 1/2); with a 1.575× (12 MP) or 1.59×
//! (50 MP) Lanczos pass after it the difference is within 0.22 dB. The fast integer IDCT's
//! output was far off in our scaled planar decode (not investigated further: earlier it had
//! also measured no faster than libjpeg-turbo 3's AVX2 accurate one), so it stays off.
//!
//! # Progressive JPEGs: only the scans the scale needs
//! libjpeg-turbo Huffman-decodes every scan of a progressive JPEG whatever the output scale, and
//! that is most of its time. A scaled decode therefore reads a shortened stream (`scans`): the
//! scans whose coefficients lie wholly above what the reduced IDCT mostly rests on (DC and the first AC
//! band at 1/8, zigzag ≤ 4 at 1/4, ≤ 24 at 1/2) and the last-bit refinement scans are cut out before
//! TurboJPEG sees the bytes (libjpeg's buffered-image mode would do the same, but TurboJPEG does
//! not expose it; cutting can also drop a middle scan). Measured with callgrind (instructions of
//! one `gallery bench` run of that photo, so decode, resize and encode) and `resize::quality`:
//!
//! | photo, scale                        | every scan | cut        | luma PSNR change |
//! |-------------------------------------|-----------:|-----------:|-----------------:|
//! | Flow_5k (libjpeg's script), 1/2     | 1,497 M    | 990 M (−34 %)  | +0.01 dB     |
//! | Volna_5k (another script), 1/2      | 1,809 M    | 1,179 M (−35 %) | −0.02 dB    |
//! | Flow_5k, 1/4, bands only            | 1,388 M    | 983 M (−29 %)  | −0.01 dB     |
//! | Flow_5k, 1/4, bands + last bit      | 1,388 M    | 649 M (−53 %)  | −0.02 dB     |
//!
//! At 1/2, libjpeg's standard script has no band above zigzag 24, so the gain there is the
//! last-bit refinements. A full-size decode keeps every scan: dropping the last bit there cost
//! up to 0.89 dB (Autumn). None of libvips, sharp, imgproxy or Immich does this.
//!
//! The JPEG is decoded to its native Y'CbCr planes rather than RGB: luma and the (still
//! subsampled) chroma planes are resized separately, straight to the 4:2:0 planes of the output
//! JPEG, and libjpeg-turbo encodes from those planes. This skips chroma upsampling and colour
//! conversion at full resolution, and halves the resize work (1.5 samples per pixel, not 3).
//! Resizing is linear and Y'CbCr is an affine map of R'G'B', so the result is the same as
//! resizing gamma-encoded RGB (what vips and Pillow do).
//!
//! Memory: a baseline JPEG decodes straight into
//! the scaled planes (50 MP photo: ~39 MiB peak for the whole job, input bytes included); a
//! progressive one makes libjpeg-turbo hold every DCT coefficient at full size (2 bytes per
//! sample, ~45 MiB for 15 MP), which the decode budget bounds (so does libjpeg-turbo's own
//! `TJPARAM_MAXMEMORY`, set to the budget).
//!
//! Decode warnings are errors (a truncated photo fails rather than becoming half grey), except
//! libjpeg's "extraneous bytes before marker", which cameras emit on valid photos.
//!
//! # Where the time goes, and what the speed-ups gave
//! Instructions (callgrind, stable on a busy machine) of one `gallery bench` run over each
//! shared set, preview 1280 + thumb 320 at q82, before and after the 1.5× rule and the scan cut:
//!
//! | set                          | before    | after     | change |
//! |------------------------------|----------:|----------:|-------:|
//! | real/ (10× 2560, 5× 5K)      | 8,134 M   | 6,997 M   | −14 %  |
//! | camera/ (4× 12 MP, 4× 50 MP) | 9,352 M   | 8,431 M   | −10 %  |
//!
//! Split by photo class (share of instructions, after): a 50 MP baseline photo at 1/4 spends
//! 82 % in libjpeg-turbo's Huffman decoding (`decode_mcu`), 6 % in the IDCT, 4 % resizing; a
//! 12 MP one at 1/2: 64 % Huffman, 12 % resize, 9 % IDCT, 3 % encode. A 2560-wide baseline 4:4:4
//! wallpaper (decoded at full size: a 2× Lanczos pass is the least that holds quality) spends
//! 36 % resizing (mostly the full-size chroma planes), 20 % Huffman, 16 % IDCT; a progressive one
//! 45 % in Huffman decoding of its scans (the refinements most), 19 % resizing. Huffman decoding
//! is sequential and cannot be skipped for a baseline file, so it is the camera set's floor
//! (`djpeg -scale 1/8`: 37 ms per 12 MP photo, 140 ms per 50 MP one, on a busy machine).
//!
//! # Other formats
//! PNG (1–16 bit, palette, alpha) and WebP (lossy and lossless) are decoded with the `image`
//! crate at full size (neither format can decode scaled); 16-bit samples are narrowed to 8 bits
//! before resizing. The decode budget is checked from the header first (bit depth and colour type
//! from IHDR), and the decoder's own allocations are capped at the budget too. PNG metadata a
//! decoder would inflate is bounded: an `iCCP` profile that inflates past 1 MiB, or an `eXIf`
//! chunk over 1 MiB, is refused from the header (`ProbeError::OversizedMetadata`); `zTXt` and
//! `iTXt` are never inflated, since the engine reads no text.
//!
//! # Orientation, ops, alpha, colour
//! * The EXIF orientation (all 8 values) and the rotate ops are folded into one transform that is
//!   applied to each small variant, never to the full frame.
//! * `grayscale` decodes JPEGs straight to luma (libjpeg-turbo skips the chroma IDCT) and drops
//!   colour from other formats before resizing; luma uses the BT.601 weights JPEG itself uses.
//! * Alpha is premultiplied during the resize (fast_image_resize), so transparent edges get no
//!   dark fringe. An alpha channel that is fully opaque everywhere is dropped.
//! * Output: opaque images become baseline JPEG, 4:2:0, quality from `Settings`. Images with real
//!   transparency become PNG (lossless alpha that every client decodes; WebP would be smaller but
//!   the `image` crate only writes lossless WebP and its encoder compresses worse than it reads).
//! * Colour: the source ICC profile is kept and embedded in every variant (browsers colour-manage
//!   tagged images), so no CMS is needed and nothing is lost. Only a profile that looks like one
//!   is kept: at most 1 MiB, its header's size field equal to its length, the `acsp` signature
//!   at offset 36. Anything else (an 8 MiB "profile" in a 64×48 JPEG, a truncated one) is not
//!   copied: the variants are then untagged, i.e. shown as sRGB, and the photo is still
//!   processed. A JPEG's APP2 chunks adding up to more than 1 MiB are not even reassembled.
//!   An sRGB profile is dropped, since
//!   untagged means sRGB anyway and it would cost ~3 KB per thumbnail. Grayscale output from a
//!   colour profile carries no profile. CMYK JPEGs are converted naively (Adobe inverted CMYK).
//! * Variants carry no EXIF, XMP or GPS: they are encoded from pixels with only the ICC profile.

mod allocator;
mod frame;
#[cfg(any(test, feature = "test-hooks"))]
pub mod hostile;
mod jpeg;
mod meta;
mod probe;
pub mod quality;
mod raster;
mod scans;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use allocator::tune_allocator;
pub use probe::{head_complete, probe};

use frame::{Frame, Pixels, Transform};

use crate::domain::{Op, VariantSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
}

impl Format {
    pub fn content_type(&self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }

    pub fn extension(&self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
        }
    }

    /// The format the bytes really are, whatever the file name or the client claim.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else {
            None
        }
    }
}

/// What the header says, read without decoding any pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub format: Format,
    /// As stored in the file, before EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// The most memory the engine's decode holds at once for this image, at full scale, in
    /// bytes (how it is figured: `probe`'s module doc).
    pub decode_bytes: u64,
}

impl Probe {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error("unsupported file type (expected JPEG, PNG or WebP)")]
    UnsupportedType,
    #[error("unreadable image header: {0}")]
    BadHeader(String),
    #[error(
        "image metadata too large: its {kind} chunk holds more than the limit of {limit} bytes"
    )]
    OversizedMetadata { kind: &'static str, limit: u64 },
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub jpeg_quality: u8,
    pub max_pixels: u64,
    /// Budget for the memory one decode may hold (see `Probe::decode_bytes`), in bytes.
    pub max_decode_bytes: u64,
}

/// Default decode budget: 512 MiB.
pub const DEFAULT_MAX_DECODE_BYTES: u64 = 512 << 20;

impl Default for Settings {
    fn default() -> Self {
        Settings {
            jpeg_quality: 82,
            max_pixels: 100_000_000,
            max_decode_bytes: DEFAULT_MAX_DECODE_BYTES,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub content_type: &'static str,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Processed {
    /// The full-resolution size after EXIF orientation and the rotate ops.
    pub width: u32,
    pub height: u32,
    pub variants: Vec<Variant>,
    /// How long each step took, for the worker's metrics.
    pub timings: Timings,
}

/// The time `process` spent in each of its steps, every variant together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// Reading the header and decoding the pixels (colour dropped too, for `grayscale`).
    pub decode: Duration,
    /// Resizing and orienting every variant.
    pub resize: Duration,
    /// Encoding every variant.
    pub encode: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("image has {pixels} pixels, more than the limit of {limit}")]
    TooManyPixels { pixels: u64, limit: u64 },
    #[error("image needs {needs} bytes of memory to decode, more than the limit of {limit}")]
    TooLargeToDecode { needs: u64, limit: u64 },
    #[error("image is truncated or corrupt: {0}")]
    Decode(String),
    #[error("could not encode variant: {0}")]
    Encode(String),
}

/// Fits `width`×`height` inside a `max_side` square, keeping the aspect ratio, never upscaling.
pub fn fit_within(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max_side {
        return (width, height);
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).clamp(1, max_side.max(1));
    (scaled(width), scaled(height))
}

/// Decodes once, orients, applies `ops` in order and makes every variant in `specs`.
/// Synchronous and CPU-bound: async callers run it on a blocking thread.
pub fn process(
    bytes: &[u8],
    ops: &[Op],
    specs: &[VariantSpec],
    settings: &Settings,
) -> Result<Processed, ProcessError> {
    let mut timings = Timings::default();
    let decoding = Instant::now();
    let probe = probe(bytes)?;
    if probe.pixels() > settings.max_pixels {
        return Err(ProcessError::TooManyPixels {
            pixels: probe.pixels(),
            limit: settings.max_pixels,
        });
    }
    // Checked again here although uploads are checked too: a job queued under a larger limit,
    // or by an older version, must not take the worker down.
    if probe.decode_bytes > settings.max_decode_bytes {
        return Err(ProcessError::TooLargeToDecode {
            needs: probe.decode_bytes,
            limit: settings.max_decode_bytes,
        });
    }
    let gray = ops.contains(&Op::Grayscale);
    let orientation = match probe.format {
        Format::Jpeg => meta::jpeg_orientation(bytes),
        // PNG and WebP carry EXIF in their own chunks; the raster decoder reads it.
        Format::Png | Format::Webp => None,
    };

    // Targets are computed in the stored orientation so the resize can run before the
    // (cheap, small) transform; the transform is only known for JPEG before decoding, so for
    // other formats it is settled after the decode below.
    let mut decoded = match probe.format {
        Format::Jpeg => {
            let transform = Transform::from_exif(orientation.unwrap_or(1)).then_ops(ops);
            let largest = largest_target(&probe, specs, transform);
            let d = jpeg::decode(bytes, &probe, largest, gray, settings)
                .map_err(ProcessError::Decode)?;
            Decoded {
                frame: d.frame,
                transform,
                icc: d.icc,
            }
        }
        Format::Png | Format::Webp => {
            let d = raster::decode(bytes, probe.format, settings.max_decode_bytes)?;
            Decoded {
                frame: d.frame,
                transform: Transform::from_exif(d.orientation).then_ops(ops),
                icc: d.icc,
            }
        }
    };
    if gray {
        decoded.frame = decoded.frame.into_gray();
    }
    timings.decode = decoding.elapsed();
    let icc = decoded
        .icc
        .as_deref()
        .filter(|icc| meta::icc_worth_keeping(icc, decoded.frame.is_gray()));

    let (width, height) = decoded.transform.output_size(probe.width, probe.height);
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(specs[i].max_side));

    let mut resizer = fast_image_resize::Resizer::new();
    let mut made: Vec<Option<Variant>> = specs.iter().map(|_| None).collect();
    // The previous (larger) variant before orientation: the source for the next smaller one.
    let mut previous: Option<Frame> = None;
    for i in order {
        let spec = &specs[i];
        let (out_w, out_h) = fit_within(width, height, spec.max_side);
        let (stored_w, stored_h) = decoded.transform.stored_size(out_w, out_h);
        let source = previous.as_ref().unwrap_or(&decoded.frame);
        let resizing = Instant::now();
        let small = source
            .resize(&mut resizer, stored_w, stored_h)
            .map_err(ProcessError::Encode)?;
        let transformed = small.transformed(decoded.transform);
        let oriented = transformed.as_ref().unwrap_or(&small);
        let encoding = Instant::now();
        timings.resize += encoding - resizing;
        let (bytes, content_type) = encode(oriented, settings.jpeg_quality, icc)?;
        timings.encode += encoding.elapsed();
        made[i] = Some(Variant {
            name: spec.name.clone(),
            width: oriented.width,
            height: oriented.height,
            content_type,
            bytes,
        });
        previous = Some(small);
    }
    Ok(Processed {
        width,
        height,
        variants: made.into_iter().flatten().collect(),
        timings,
    })
}

/// Encodes a finished variant: JPEG when opaque, PNG when it has alpha.
fn encode(
    frame: &Frame,
    quality: u8,
    icc: Option<&[u8]>,
) -> Result<(Vec<u8>, &'static str), ProcessError> {
    let (width, height) = (frame.width, frame.height);
    let bytes = match &frame.pixels {
        Pixels::Packed { data, channels } if *channels == 2 || *channels == 4 => {
            let bytes = raster::encode_png(data, width, height, *channels, icc)?;
            return Ok((bytes, "image/png"));
        }
        Pixels::Ycc { y, cb, cr, .. } => {
            jpeg::encode_ycc420(y, cb, cr, width, height, quality, icc)
        }
        Pixels::Gray(plane) => jpeg::encode_packed(&plane.data, width, height, 1, quality, icc),
        Pixels::Packed { data, channels } => {
            jpeg::encode_packed(data, width, height, *channels, quality, icc)
        }
    };
    bytes
        .map(|b| (b, "image/jpeg"))
        .map_err(ProcessError::Encode)
}

struct Decoded {
    frame: Frame,
    transform: Transform,
    icc: Option<Vec<u8>>,
}

/// The largest variant's size in the stored orientation: what the decoder must still cover.
/// With no variants at all the photo is still decoded (at the smallest scale) to validate it.
fn largest_target(probe: &Probe, specs: &[VariantSpec], transform: Transform) -> (u32, u32) {
    let (w, h) = transform.output_size(probe.width, probe.height);
    specs
        .iter()
        .map(|spec| {
            let (ow, oh) = fit_within(w, h, spec.max_side);
            transform.stored_size(ow, oh)
        })
        .max_by_key(|&(w, h)| u64::from(w) * u64::from(h))
        .unwrap_or((1, 1))
}
