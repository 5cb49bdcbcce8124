//! PNG and WebP: decoded at full size with the `image` crate (neither format can decode at a
//! reduced scale), narrowed to 8-bit, with a fully opaque alpha channel dropped so such images
//! still become JPEG variants. Also the PNG encoder for variants that keep transparency.

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType, PngDecoder, PngEncoder};
use image::codecs::webp::WebPDecoder;
use image::{DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder};

use super::frame::{Frame, Pixels, Plane};
use super::{Format, ProcessError};

pub(crate) struct Decoded {
    pub frame: Frame,
    /// EXIF orientation value, 1 when absent or unreadable.
    pub orientation: u16,
    pub icc: Option<Vec<u8>>,
}

/// Decodes with the decoders' own allocations capped at `max_decode_bytes`. The limits go in
/// at construction: the PNG decoder reads (and inflates) header chunks right away, and limits
/// set later never reach the `png` crate.
pub(crate) fn decode(
    bytes: &[u8],
    format: Format,
    max_decode_bytes: u64,
) -> Result<Decoded, ProcessError> {
    let cursor = Cursor::new(bytes);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_decode_bytes);
    match format {
        Format::Png => from_decoder(
            PngDecoder::with_limits(cursor, limits.clone()).map_err(decode_error)?,
            limits,
        ),
        _ => from_decoder(WebPDecoder::new(cursor).map_err(decode_error)?, limits),
    }
}

fn decode_error(e: image::ImageError) -> ProcessError {
    ProcessError::Decode(e.to_string())
}

fn from_decoder(
    mut decoder: impl ImageDecoder,
    limits: image::Limits,
) -> Result<Decoded, ProcessError> {
    // The decode budget was checked from our own header parse; this keeps the decoder's
    // allocations within it too, should its idea of the image ever differ from ours.
    decoder.set_limits(limits).map_err(decode_error)?;
    // Broken metadata is not worth failing a photo over: assume upright and untagged.
    let orientation = decoder
        .orientation()
        .map(|o| u16::from(o.to_exif()))
        .unwrap_or(1);
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    Ok(Decoded {
        frame: to_frame(image),
        orientation,
        icc,
    })
}

fn to_frame(image: DynamicImage) -> Frame {
    let (width, height) = (image.width(), image.height());
    let gray = |data: Vec<u8>| {
        Pixels::Gray(Plane {
            data,
            width,
            height,
        })
    };
    let pixels = match image {
        DynamicImage::ImageLuma8(b) => gray(b.into_raw()),
        DynamicImage::ImageLuma16(_) => gray(image.to_luma8().into_raw()),
        DynamicImage::ImageLumaA8(_) | DynamicImage::ImageLumaA16(_) => {
            let data = match image {
                DynamicImage::ImageLumaA8(b) => b.into_raw(),
                other => other.to_luma_alpha8().into_raw(),
            };
            if opaque::<2>(&data) {
                gray(strip_alpha::<2>(&data))
            } else {
                Pixels::Packed { data, channels: 2 }
            }
        }
        DynamicImage::ImageRgb8(b) => Pixels::Packed {
            data: b.into_raw(),
            channels: 3,
        },
        other if !other.color().has_alpha() => Pixels::Packed {
            data: other.to_rgb8().into_raw(),
            channels: 3,
        },
        other => {
            let data = match other {
                DynamicImage::ImageRgba8(b) => b.into_raw(),
                other => other.to_rgba8().into_raw(),
            };
            if opaque::<4>(&data) {
                Pixels::Packed {
                    data: strip_alpha::<4>(&data),
                    channels: 3,
                }
            } else {
                Pixels::Packed { data, channels: 4 }
            }
        }
    };
    Frame {
        width,
        height,
        pixels,
    }
}

fn opaque<const N: usize>(data: &[u8]) -> bool {
    data.chunks_exact(N).all(|p| p[N - 1] == 255)
}

fn strip_alpha<const N: usize>(data: &[u8]) -> Vec<u8> {
    data.chunks_exact(N)
        .flat_map(|p| p[..N - 1].iter().copied())
        .collect()
}

/// PNG for variants with transparency. Fast compression: these are small images and the worker's
/// time is better spent elsewhere; adaptive filtering still keeps them reasonably compact.
pub(crate) fn encode_png(
    data: &[u8],
    width: u32,
    height: u32,
    channels: u8,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, ProcessError> {
    let color = match channels {
        1 => ExtendedColorType::L8,
        2 => ExtendedColorType::La8,
        3 => ExtendedColorType::Rgb8,
        _ => ExtendedColorType::Rgba8,
    };
    let mut out = Vec::new();
    let mut encoder =
        PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive);
    if let Some(icc) = icc {
        // Not every encoder build embeds profiles; a variant without one is still correct
        // for sRGB-ish sources, so this is not worth failing over.
        let _ = encoder.set_icc_profile(icc.to_vec());
    }
    encoder
        .write_image(data, width, height, color)
        .map_err(|e| ProcessError::Encode(e.to_string()))?;
    Ok(out)
}
