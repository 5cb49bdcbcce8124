//! How close a variant is to what an exact resize would give, so that speed-ups of the engine
//! can be held to a quality bar (issue #11): the luma PSNR (and, apart, the chroma PSNR) of each
//! variant against a reference
//! made from a full-size decode (libjpeg-turbo, accurate IDCT, smooth chroma upsampling)
//! resized straight to the variant's size with Lanczos3, uncompressed, with the EXIF orientation
//! applied the same way. JPEG sources only: those are the photos the bar is recorded for.
//!
//! The figures the engine reached on the shared photo sets are recorded beside this file in
//! `engine-psnr.csv` (`RECORDED`, built into the binary): luma before any of the issue's
//! speed-ups, chroma as the engine reached it after the DCT-scale and scan-cut speed-ups (the
//! issue's bar is luma, but a later speed-up must not buy its figures with colour). Measured
//! with it and not kept: a 2× box pre-shrink of every plane before the Lanczos pass (vips'
//! shrink, then reduce) cost up to 0.41 dB luma and 0.19 dB chroma on thumbnails and saved no
//! instructions (the box pass cost what the shorter Lanczos pass saved).
//! `gallery bench` prints the worst drops against them and a unit test fails when any variant
//! drops by more than `ALLOWED_DROP_DB` in either.

use fast_image_resize as fr;

use super::frame::{Frame, Pixels, Transform};
use super::{jpeg, meta, Format, Processed};

/// The per-photo figures: `photo,variant,psnr_db,chroma_psnr_db`, photo as `SET/FILE`.
pub const RECORDED: &str = include_str!("engine-psnr.csv");

/// How far below its recorded figure a variant's PSNR may fall.
pub const ALLOWED_DROP_DB: f64 = 0.5;

/// One variant's figure.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantQuality {
    pub name: String,
    pub width: u32,
    pub height: u32,
    /// Luma PSNR against the reference, in dB.
    pub psnr_db: f64,
    /// PSNR of Cb and Cr together against the reference's, in dB.
    pub chroma_psnr_db: f64,
}

/// A variant's figures as recorded in `RECORDED`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recorded {
    pub psnr_db: f64,
    /// Absent for rows recorded before chroma was measured.
    pub chroma_psnr_db: Option<f64>,
}

/// Measures every JPEG variant of `processed` (made from `source` without ops) against the
/// reference. Slow (a full-size decode and resize): never inside a timed loop.
pub fn measure(source: &[u8], processed: &Processed) -> Result<Vec<VariantQuality>, String> {
    if Format::sniff(source) != Some(Format::Jpeg) {
        return Err("the quality measure takes JPEG sources only".into());
    }
    let (width, height, rgb) = jpeg::decode_rgb_full(source)?;
    let transform = Transform::from_exif(meta::jpeg_orientation(source).unwrap_or(1));
    let full = fr::images::ImageRef::new(width, height, &rgb, fr::PixelType::U8x3)
        .map_err(|e| e.to_string())?;
    let mut resizer = fr::Resizer::new();
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    processed
        .variants
        .iter()
        .filter(|v| v.content_type == "image/jpeg")
        .map(|variant| {
            // Resizing in the stored orientation and transforming after gives the same
            // pixels as the other way round (the filter is symmetric) for far less work.
            let (sw, sh) = transform.stored_size(variant.width, variant.height);
            let mut small = fr::images::Image::new(sw, sh, fr::PixelType::U8x3);
            resizer
                .resize(&full, &mut small, &options)
                .map_err(|e| e.to_string())?;
            let small = Frame {
                width: sw,
                height: sh,
                pixels: Pixels::Packed {
                    data: small.into_vec(),
                    channels: 3,
                },
            };
            let reference = small.transformed(transform).unwrap_or(small);
            let Pixels::Packed {
                data: reference, ..
            } = reference.pixels
            else {
                return Err("reference is not RGB".into());
            };
            let (vw, vh, ours) = jpeg::decode_rgb_full(&variant.bytes)?;
            if (vw, vh) != (variant.width, variant.height) {
                return Err(format!("variant {} decodes to {vw}x{vh}", variant.name));
            }
            Ok(VariantQuality {
                name: variant.name.clone(),
                width: vw,
                height: vh,
                psnr_db: psnr(&ours, &reference, |p| [luma(p)]),
                chroma_psnr_db: psnr(&ours, &reference, chroma),
            })
        })
        .collect()
}

/// BT.601 full-range Y' of an RGB pixel, as JPEG defines it.
fn luma(p: &[u8]) -> f64 {
    0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
}

/// BT.601 full-range Cb and Cr of an RGB pixel, as JPEG defines them.
fn chroma(p: &[u8]) -> [f64; 2] {
    let (r, g, b) = (f64::from(p[0]), f64::from(p[1]), f64::from(p[2]));
    [
        -0.168_736 * r - 0.331_264 * g + 0.5 * b,
        0.5 * r - 0.418_688 * g - 0.081_312 * b,
    ]
}

/// PSNR over the `N` channels `channels` derives from each pixel of two RGB buffers of the
/// same size.
fn psnr<const N: usize>(a: &[u8], b: &[u8], channels: impl Fn(&[u8]) -> [f64; N]) -> f64 {
    let (sum, count) =
        a.chunks_exact(3)
            .zip(b.chunks_exact(3))
            .fold((0.0, 0usize), |(sum, n), (p, q)| {
                let (p, q) = (channels(p), channels(q));
                let error: f64 = p.iter().zip(&q).map(|(x, y)| (x - y).powi(2)).sum();
                (sum + error, n + N)
            });
    let mse = sum / count.max(1) as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
}

/// The recorded figures for `photo` (`SET/FILE`) and `variant`, if there are any.
pub fn recorded(photo: &str, variant: &str) -> Option<Recorded> {
    RECORDED.lines().skip(1).find_map(|line| {
        let mut fields = line.split(',');
        let (p, v, db) = (fields.next()?, fields.next()?, fields.next()?);
        if p != photo || v != variant {
            return None;
        }
        Some(Recorded {
            psnr_db: db.trim().parse().ok()?,
            chroma_psnr_db: fields.next().and_then(|db| db.trim().parse().ok()),
        })
    })
}
