//! Tests for the resize engine, on fixtures generated here: every format and bit depth, all 8
//! EXIF orientations and the ops (checked on pixels, not just sizes), alpha edges, extreme
//! sizes, corrupt input, pixel bombs, and a PSNR check against a slow exact reference resize.

use std::io::Cursor;

use image::{DynamicImage, GrayImage, ImageEncoder, RgbImage, RgbaImage};

use super::frame::Transform;
use super::*;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn specs(sizes: &[u32]) -> Vec<VariantSpec> {
    sizes
        .iter()
        .map(|&s| VariantSpec {
            name: s.to_string(),
            max_side: s,
        })
        .collect()
}

fn settings() -> Settings {
    Settings {
        jpeg_quality: 90,
        ..Settings::default()
    }
}

const RED: [u8; 3] = [220, 30, 30];
const GREEN: [u8; 3] = [30, 200, 30];
const BLUE: [u8; 3] = [30, 30, 220];
const WHITE: [u8; 3] = [235, 235, 235];

/// Four coloured quadrants: red top-left, green top-right, blue bottom-left, white bottom-right.
fn quadrants(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        image::Rgb(match (x < width / 2, y < height / 2) {
            (true, true) => RED,
            (false, true) => GREEN,
            (true, false) => BLUE,
            (false, false) => WHITE,
        })
    })
}

/// Photo-like test content: colour that varies slowly, fine detail mostly in brightness (as in
/// photographs, and as JPEG's 4:2:0 output assumes), plus a disc with a hard colour edge. The
/// fine texture is what exposes a bad filter or block aliasing from the DCT downscale.
fn photo_like(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        let (cx, cy) = (width as f32 * 0.6, height as f32 * 0.4);
        let disc = ((fx - cx).powi(2) + (fy - cy).powi(2)).sqrt() < height as f32 * 0.2;
        let texture =
            30.0 * (fx / 9.0).sin() * (fy / 13.0).cos() + 20.0 * ((fx + 2.0 * fy) / 5.0).sin();
        let r = 128.0 + 60.0 * (fx / 300.0).sin() * (fy / 400.0).cos();
        let g = 40.0 + 150.0 * fx / width as f32;
        let b = 128.0 + 50.0 * ((fx + fy) / 500.0).sin();
        let base = if disc { [g, 60.0, 190.0] } else { [r, g, b] };
        image::Rgb(base.map(|v| (v + texture).clamp(0.0, 255.0) as u8))
    })
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    jpeg_with(img, turbojpeg_sys::TJSAMP_TJSAMP_420, 95)
}

fn jpeg_with(img: &RgbImage, subsamp: turbojpeg_sys::TJSAMP, quality: u8) -> Vec<u8> {
    jpeg::encode_rgb_subsampled(img.as_raw(), img.width(), img.height(), subsamp, quality)
        .expect("fixture encodes")
}

fn jpeg_gray(img: &GrayImage) -> Vec<u8> {
    jpeg::encode_packed(img.as_raw(), img.width(), img.height(), 1, 95, None)
        .expect("fixture encodes")
}

/// A TIFF block holding only IFD0 with the Orientation tag.
fn exif_block(orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0*\0\0\0\x08\0\x01".to_vec();
    tiff.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    tiff
}

/// Inserts an APP1 EXIF segment right after SOI.
fn with_exif(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(exif_block(orientation));
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend(payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("fixture encodes");
    out
}

fn png_with_exif(img: &DynamicImage, orientation: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = image::codecs::png::PngEncoder::new(&mut out);
    encoder
        .set_exif_metadata(exif_block(orientation))
        .expect("png takes exif");
    encoder
        .write_image(
            img.as_bytes(),
            img.width(),
            img.height(),
            img.color().into(),
        )
        .expect("fixture encodes");
    out
}

fn webp_lossless(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::WebP)
        .expect("fixture encodes");
    out
}

/// 32×24 lossy WebP (cwebp via Pillow, q90) of the four quadrants: `image` cannot encode lossy.
const LOSSY_WEBP: &[u8] = &[
    82, 73, 70, 70, 148, 0, 0, 0, 87, 69, 66, 80, 86, 80, 56, 32, 136, 0, 0, 0, 48, 6, 0, 157, 1,
    42, 32, 0, 24, 0, 62, 45, 16, 134, 66, 161, 161, 13, 250, 0, 12, 1, 98, 89, 0, 39, 76, 183,
    168, 3, 240, 3, 242, 3, 144, 11, 176, 22, 128, 63, 128, 126, 0, 93, 255, 221, 128, 127, 64,
    236, 255, 4, 229, 135, 37, 198, 15, 64, 0, 254, 249, 10, 104, 251, 218, 147, 255, 69, 254, 13,
    120, 66, 54, 230, 186, 111, 100, 183, 255, 106, 89, 237, 74, 115, 56, 131, 24, 137, 194, 36,
    177, 122, 187, 35, 255, 253, 213, 255, 255, 115, 163, 191, 255, 221, 38, 137, 187, 53, 157,
    123, 201, 239, 18, 219, 145, 119, 239, 48, 3, 203, 255, 23, 176, 36, 23, 245, 12, 219, 196, 51,
    196, 95, 192, 0, 0, 0,
];

/// 32×24 lossy WebP with an alpha chunk: left half opaque near-white, right half transparent.
const LOSSY_ALPHA_WEBP: &[u8] = &[
    82, 73, 70, 70, 100, 0, 0, 0, 87, 69, 66, 80, 86, 80, 56, 88, 10, 0, 0, 0, 16, 0, 0, 0, 31, 0,
    0, 23, 0, 0, 65, 76, 80, 72, 19, 0, 0, 0, 1, 15, 48, 255, 17, 17, 66, 32, 144, 228, 47, 189,
    192, 0, 17, 253, 143, 226, 13, 0, 86, 80, 56, 32, 42, 0, 0, 0, 176, 2, 0, 157, 1, 42, 32, 0,
    24, 0, 62, 41, 16, 134, 66, 161, 161, 13, 250, 0, 12, 1, 66, 90, 64, 0, 44, 87, 253, 0, 0, 254,
    254, 158, 108, 191, 245, 192, 112, 0, 0, 0,
];

fn decode(variant: &Variant) -> DynamicImage {
    image::load_from_memory(&variant.bytes).expect("variant decodes")
}

fn run(bytes: &[u8], ops: &[Op], sizes: &[u32]) -> Processed {
    process(bytes, ops, &specs(sizes), &settings()).expect("processes")
}

/// Names the colour at each quadrant centre, in the order TL, TR, BL, BR.
fn corners(img: &RgbImage) -> [char; 4] {
    let (w, h) = (img.width(), img.height());
    [
        (w / 4, h / 4),
        (3 * w / 4, h / 4),
        (w / 4, 3 * h / 4),
        (3 * w / 4, 3 * h / 4),
    ]
    .map(|(x, y)| {
        let [r, g, b] = img.get_pixel(x, y).0.map(i32::from);
        match () {
            _ if r > 150 && g > 150 && b > 150 => 'w',
            _ if r > g + 80 && r > b + 80 => 'r',
            _ if g > r + 80 && g > b + 80 => 'g',
            _ if b > r + 80 && b > g + 80 => 'b',
            _ => '?',
        }
    })
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64.powi(2) / mse.max(1e-9)).log10()
}

// ---------------------------------------------------------------------------------------------
// Contract odds and ends

#[test]
fn ops_parse_serialize_and_reject_unknown() {
    for op in Op::ALL {
        assert_eq!(op.as_str().parse::<Op>(), Ok(op));
        assert_eq!(
            serde_json::to_string(&op).expect("serializes"),
            format!("\"{}\"", op.as_str())
        );
        assert_eq!(
            serde_json::from_str::<Op>(&format!("\"{}\"", op.as_str())).expect("parses"),
            op
        );
    }
    let err = "xyz".parse::<Op>().expect_err("unknown op");
    assert_eq!(
        err.to_string(),
        "unknown operation 'xyz' (expected rotate90, rotate180, rotate270, grayscale)"
    );
}

#[test]
fn formats_have_types_and_extensions() {
    assert_eq!(Format::Jpeg.content_type(), "image/jpeg");
    assert_eq!(Format::Png.content_type(), "image/png");
    assert_eq!(Format::Webp.content_type(), "image/webp");
    assert_eq!(
        [Format::Jpeg, Format::Png, Format::Webp].map(|f| f.extension()),
        ["jpg", "png", "webp"]
    );
}

#[test]
fn probe_reads_every_format_from_the_header() {
    let img = quadrants(48, 30);
    let cases: Vec<(Vec<u8>, Format)> = vec![
        (jpeg(&img), Format::Jpeg),
        (with_exif(&jpeg(&img), 6), Format::Jpeg),
        (png(&DynamicImage::ImageRgb8(img.clone())), Format::Png),
        (
            webp_lossless(&DynamicImage::ImageRgb8(img.clone())),
            Format::Webp,
        ),
    ];
    for (bytes, format) in cases {
        let p = probe(&bytes).expect("probes");
        assert_eq!((p.format, p.width, p.height), (format, 48, 30));
    }
    let lossy = probe(LOSSY_WEBP).expect("probes lossy webp");
    assert_eq!(
        (lossy.format, lossy.width, lossy.height),
        (Format::Webp, 32, 24)
    );
    let alpha = probe(LOSSY_ALPHA_WEBP).expect("probes VP8X webp");
    assert_eq!((alpha.width, alpha.height), (32, 24));
}

#[test]
fn the_head_a_reader_stops_at_probes_as_the_whole_file() {
    let img = quadrants(48, 30);
    let mut png_bytes = png(&DynamicImage::ImageRgb8(img.clone()));
    png_bytes.extend(vec![0; 100_000]); // as if the image data went on
    let cases = [
        with_exif(&jpeg(&img), 6),
        hostile::jpeg_with_icc(&jpeg(&img), &hostile::icc_profile(200_000)),
        png_bytes,
        hostile::png_iccp_bomb(1024),
        webp_lossless(&DynamicImage::ImageRgb8(img)),
        LOSSY_ALPHA_WEBP.to_vec(),
    ];
    for whole in cases {
        let end = (1..=whole.len())
            .find(|&end| head_complete(&whole[..end]))
            .expect("the header ends");
        assert_eq!(probe(&whole[..end]), probe(&whole), "head of {end} bytes");
    }
    assert!(head_complete(b"not an image"));
}

#[test]
fn probe_rejects_unknown_and_broken_headers() {
    assert_eq!(probe(b""), Err(ProbeError::UnsupportedType));
    assert_eq!(probe(b"GIF89a......"), Err(ProbeError::UnsupportedType));
    assert!(matches!(
        probe(&[0xFF, 0xD8, 0xFF]),
        Err(ProbeError::BadHeader(_))
    ));
    assert!(matches!(
        probe(b"\x89PNG\r\n\x1a\n\0\0"),
        Err(ProbeError::BadHeader(_))
    ));
    assert!(matches!(
        probe(b"RIFF\0\0\0\0WEBPVP8 "),
        Err(ProbeError::BadHeader(_))
    ));
    let msg = probe(b"RIFF\0\0\0\0WEBPVP8 ").expect_err("bad").to_string();
    assert!(msg.starts_with("unreadable image header: "), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Formats and bit depths

/// Checks a processed quadrant image came out the right size, type and colours.
fn assert_quadrants(p: &Processed, content_type: &str) {
    for v in &p.variants {
        assert_eq!(v.content_type, content_type, "variant {}", v.name);
        let img = decode(v).to_rgb8();
        assert_eq!((img.width(), img.height()), (v.width, v.height));
        assert_eq!(corners(&img), ['r', 'g', 'b', 'w'], "variant {}", v.name);
    }
}

#[test]
fn jpeg_rgb_in_every_subsampling() {
    let img = quadrants(96, 64);
    for subsamp in [
        turbojpeg_sys::TJSAMP_TJSAMP_420,
        turbojpeg_sys::TJSAMP_TJSAMP_422,
        turbojpeg_sys::TJSAMP_TJSAMP_444,
        turbojpeg_sys::TJSAMP_TJSAMP_440,
        turbojpeg_sys::TJSAMP_TJSAMP_411,
    ] {
        let p = run(&jpeg_with(&img, subsamp, 95), &[], &[64, 16]);
        assert_eq!((p.width, p.height), (96, 64));
        let sizes: Vec<_> = p.variants.iter().map(|v| (v.width, v.height)).collect();
        assert_eq!(sizes, [(64, 43), (16, 11)], "subsamp {subsamp}");
        assert_quadrants(&p, "image/jpeg");
    }
}

#[test]
fn jpeg_gray_stays_gray() {
    let img = GrayImage::from_fn(64, 40, |x, _| image::Luma([if x < 32 { 30 } else { 220 }]));
    let p = run(&jpeg_gray(&img), &[], &[32]);
    let out = decode(&p.variants[0]);
    assert_eq!(out.color(), image::ColorType::L8);
    let out = out.to_luma8();
    assert!(out.get_pixel(4, 10).0[0] < 50 && out.get_pixel(28, 10).0[0] > 200);
}

#[test]
fn png_8_and_16_bit_rgb_and_gray() {
    let rgb = quadrants(80, 50);
    let cases = [
        DynamicImage::ImageRgb8(rgb.clone()),
        DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(rgb.clone()).to_rgb16()),
        // RGBA that is fully opaque must still become a JPEG.
        DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(rgb.clone()).to_rgba8()),
        DynamicImage::ImageRgba16(DynamicImage::ImageRgb8(rgb.clone()).to_rgba16()),
    ];
    for img in cases {
        let p = run(&png(&img), &[], &[40, 10]);
        assert_eq!((p.width, p.height), (80, 50));
        assert_quadrants(&p, "image/jpeg");
    }
    for gray in [
        DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(rgb.clone()).to_luma8()),
        DynamicImage::ImageLuma16(DynamicImage::ImageRgb8(rgb.clone()).to_luma16()),
    ] {
        let p = run(&png(&gray), &[], &[40]);
        assert_eq!(p.variants[0].content_type, "image/jpeg");
        assert_eq!(decode(&p.variants[0]).color(), image::ColorType::L8);
    }
}

/// Left half opaque white, right half fully transparent *black*: a resize that does not
/// premultiply drags the black into the edge pixels.
fn half_transparent(width: u32, height: u32) -> RgbaImage {
    RgbaImage::from_fn(width, height, |x, _| {
        image::Rgba(if x < width / 2 {
            [255, 255, 255, 255]
        } else {
            [0, 0, 0, 0]
        })
    })
}

fn assert_no_dark_fringe(img: &RgbaImage) {
    let mut partial = 0;
    for p in img.pixels() {
        let [r, g, b, a] = p.0;
        if a > 8 {
            assert!(r >= 235 && g >= 235 && b >= 235, "dark fringe: {:?}", p.0);
        }
        if a > 0 && a < 255 {
            partial += 1;
        }
    }
    assert!(partial > 0, "the edge should be soft after a downscale");
}

#[test]
fn alpha_png_8_and_16_bit_keeps_transparency_without_fringes() {
    let img = half_transparent(64, 16);
    for source in [
        DynamicImage::ImageRgba8(img.clone()),
        DynamicImage::ImageRgba16(DynamicImage::ImageRgba8(img.clone()).to_rgba16()),
    ] {
        let p = run(&png(&source), &[], &[21, 9]);
        for v in &p.variants {
            assert_eq!(v.content_type, "image/png");
            assert_no_dark_fringe(&decode(v).to_rgba8());
        }
    }
    // Gray + alpha takes the same path with two channels.
    let la = DynamicImage::ImageRgba8(img).to_luma_alpha8();
    let p = run(&png(&DynamicImage::ImageLumaA8(la)), &[], &[21]);
    assert_eq!(p.variants[0].content_type, "image/png");
    assert_no_dark_fringe(&decode(&p.variants[0]).to_rgba8());
}

#[test]
fn webp_lossless_and_lossy() {
    let img = quadrants(64, 48);
    let p = run(&webp_lossless(&DynamicImage::ImageRgb8(img)), &[], &[32]);
    assert_quadrants(&p, "image/jpeg");
    let p = run(LOSSY_WEBP, &[], &[16, 8]);
    assert_eq!((p.width, p.height), (32, 24));
    assert_quadrants(&p, "image/jpeg");

    let rgba = DynamicImage::ImageRgba8(half_transparent(64, 16));
    let p = run(&webp_lossless(&rgba), &[], &[21]);
    assert_eq!(p.variants[0].content_type, "image/png");
    assert_no_dark_fringe(&decode(&p.variants[0]).to_rgba8());

    let p = run(LOSSY_ALPHA_WEBP, &[], &[16]);
    assert_eq!(p.variants[0].content_type, "image/png");
    let out = decode(&p.variants[0]).to_rgba8();
    assert_eq!(out.get_pixel(2, 6).0[3], 255);
    assert_eq!(out.get_pixel(14, 6).0[3], 0);
}

// ---------------------------------------------------------------------------------------------
// Orientation and ops

/// EXIF orientations 6 and 8 undo each other; every other value is its own inverse.
fn inverse_exif(orientation: u16) -> u16 {
    match orientation {
        6 => 8,
        8 => 6,
        o => o,
    }
}

/// The stored pixels that, shown with `orientation`, look like `upright` (using the `image`
/// crate's independent implementation of the EXIF transforms).
fn stored_for(upright: &RgbImage, orientation: u16) -> DynamicImage {
    let mut stored = DynamicImage::ImageRgb8(upright.clone());
    let o = image::metadata::Orientation::from_exif(inverse_exif(orientation) as u8)
        .expect("valid orientation");
    stored.apply_orientation(o);
    stored
}

#[test]
fn all_eight_exif_orientations_come_out_upright() {
    let upright = quadrants(64, 40);
    for orientation in 1..=8u16 {
        let stored = stored_for(&upright, orientation);
        let jpeg_bytes = with_exif(&jpeg(&stored.to_rgb8()), orientation);
        let png_bytes = png_with_exif(&stored, orientation);
        for (kind, bytes) in [("jpeg", jpeg_bytes), ("png", png_bytes)] {
            let p = run(&bytes, &[], &[1000, 32]);
            assert_eq!(
                (p.width, p.height),
                (64, 40),
                "{kind} orientation {orientation}"
            );
            let sizes: Vec<_> = p.variants.iter().map(|v| (v.width, v.height)).collect();
            assert_eq!(
                sizes,
                [(64, 40), (32, 20)],
                "{kind} orientation {orientation}"
            );
            for v in &p.variants {
                assert_eq!(
                    corners(&decode(v).to_rgb8()),
                    ['r', 'g', 'b', 'w'],
                    "{kind} orientation {orientation} variant {}",
                    v.name
                );
            }
        }
    }
}

#[test]
fn rotate_ops_turn_clockwise_and_compose_with_exif() {
    let upright = quadrants(64, 40);
    let bytes = jpeg(&upright);
    let png_bytes = png(&DynamicImage::ImageRgb8(upright.clone()));
    type Case<'a> = (&'a [Op], (u32, u32), [char; 4]);
    let cases: [Case; 5] = [
        (&[Op::Rotate90], (40, 64), ['b', 'r', 'w', 'g']),
        (&[Op::Rotate180], (64, 40), ['w', 'b', 'g', 'r']),
        (&[Op::Rotate270], (40, 64), ['g', 'w', 'r', 'b']),
        (
            &[Op::Rotate90, Op::Rotate90],
            (64, 40),
            ['w', 'b', 'g', 'r'],
        ),
        (
            &[Op::Rotate90, Op::Grayscale, Op::Rotate270],
            (64, 40),
            ['?'; 4],
        ),
    ];
    for (ops, size, expected) in cases {
        for source in [&bytes, &png_bytes] {
            let p = run(source, ops, &[1000, 20]);
            assert_eq!((p.width, p.height), size, "{ops:?}");
            if expected[0] != '?' {
                for v in &p.variants {
                    assert_eq!(corners(&decode(v).to_rgb8()), expected, "{ops:?}");
                }
            }
        }
    }
    // A photo shot sideways (EXIF 6) and rotated back by hand ends where it was stored.
    let stored = stored_for(&upright, 6);
    let sideways = with_exif(&jpeg(&stored.to_rgb8()), 6);
    let p = run(&sideways, &[Op::Rotate270], &[100]);
    assert_eq!((p.width, p.height), (stored.width(), stored.height()));
    assert_eq!(
        corners(&decode(&p.variants[0]).to_rgb8()),
        corners(&stored.to_rgb8())
    );
}

#[test]
fn transforms_compose_like_the_exif_table() {
    // Rotating 90° four times, or 180° twice, is the identity; EXIF 6 then 270° is too.
    let r90 = Transform::IDENTITY.then_ops(&[Op::Rotate90; 4]);
    assert!(r90.is_identity());
    assert!(Transform::IDENTITY
        .then_ops(&[Op::Rotate180, Op::Rotate180])
        .is_identity());
    assert!(Transform::from_exif(6)
        .then_ops(&[Op::Rotate270])
        .is_identity());
    assert_eq!(
        Transform::from_exif(3),
        Transform::IDENTITY.then_ops(&[Op::Rotate180])
    );
    assert_eq!(
        Transform::from_exif(8),
        Transform::IDENTITY.then_ops(&[Op::Rotate270])
    );
    assert_eq!(Transform::from_exif(0), Transform::IDENTITY);
    assert_eq!(Transform::from_exif(9), Transform::IDENTITY);
}

#[test]
fn grayscale_op_on_every_format() {
    let img = quadrants(64, 40);
    let rgba = DynamicImage::ImageRgba8(half_transparent(64, 40));
    let cases: [(Vec<u8>, image::ColorType, &str); 4] = [
        (jpeg(&img), image::ColorType::L8, "image/jpeg"),
        (
            png(&DynamicImage::ImageRgb8(img.clone())),
            image::ColorType::L8,
            "image/jpeg",
        ),
        (
            webp_lossless(&DynamicImage::ImageRgb8(img.clone())),
            image::ColorType::L8,
            "image/jpeg",
        ),
        (png(&rgba), image::ColorType::La8, "image/png"),
    ];
    for (bytes, color, content_type) in cases {
        let p = run(&bytes, &[Op::Grayscale], &[32]);
        let v = &p.variants[0];
        assert_eq!(v.content_type, content_type);
        assert_eq!(decode(v).color(), color);
    }
    // Red and blue quadrants must map to different BT.601 luma values.
    let p = run(&jpeg(&img), &[Op::Grayscale], &[64]);
    let out = decode(&p.variants[0]).to_luma8();
    let (red, blue) = (out.get_pixel(16, 10).0[0], out.get_pixel(16, 30).0[0]);
    assert!((i32::from(red) - 86).abs() < 8, "red luma {red}");
    assert!((i32::from(blue) - 50).abs() < 8, "blue luma {blue}");
}

// ---------------------------------------------------------------------------------------------
// Sizes

#[test]
fn one_pixel_and_extreme_aspect_ratios() {
    let one = quadrants(1, 1);
    for bytes in [jpeg(&one), png(&DynamicImage::ImageRgb8(one.clone()))] {
        let p = run(&bytes, &[Op::Rotate90], &[1280, 320]);
        assert_eq!((p.width, p.height), (1, 1));
        assert!(p.variants.iter().all(|v| (v.width, v.height) == (1, 1)));
    }
    let long = RgbImage::from_fn(10000, 1, |x, _| image::Rgb([(x % 256) as u8, 100, 50]));
    for bytes in [jpeg(&long), png(&DynamicImage::ImageRgb8(long.clone()))] {
        let p = run(&bytes, &[], &[1280, 320]);
        let sizes: Vec<_> = p.variants.iter().map(|v| (v.width, v.height)).collect();
        assert_eq!(sizes, [(1280, 1), (320, 1)]);
        let p = run(&bytes, &[Op::Rotate270], &[320]);
        assert_eq!((p.width, p.height), (1, 10000));
        assert_eq!((p.variants[0].width, p.variants[0].height), (1, 320));
        assert_eq!(decode(&p.variants[0]).dimensions_tuple(), (1, 320));
    }
    // Odd sizes exercise the 4:2:0 padding on encode.
    let odd = quadrants(101, 67);
    let p = run(&jpeg(&odd), &[Op::Rotate90], &[99, 33]);
    for v in &p.variants {
        assert_eq!(decode(v).dimensions_tuple(), (v.width, v.height));
        assert_eq!(corners(&decode(v).to_rgb8()), ['b', 'r', 'w', 'g']);
    }
}

trait Dimensions {
    fn dimensions_tuple(&self) -> (u32, u32);
}

impl Dimensions for DynamicImage {
    fn dimensions_tuple(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
}

#[test]
fn never_upscales() {
    let img = quadrants(100, 50);
    for bytes in [jpeg(&img), png(&DynamicImage::ImageRgb8(img.clone()))] {
        let p = run(&bytes, &[], &[1280, 320, 80]);
        let sizes: Vec<_> = p.variants.iter().map(|v| (v.width, v.height)).collect();
        assert_eq!(sizes, [(100, 50), (100, 50), (80, 40)]);
        assert_eq!(
            p.variants
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>(),
            ["1280", "320", "80"]
        );
    }
    assert_eq!(fit_within(100, 50, 1280), (100, 50));
    assert_eq!(fit_within(10000, 1, 320), (320, 1));
}

#[test]
fn variants_come_back_in_the_order_asked() {
    let p = run(&jpeg(&quadrants(200, 100)), &[], &[50, 150, 100]);
    let names: Vec<_> = p.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["50", "150", "100"]);
    let sizes: Vec<_> = p.variants.iter().map(|v| v.width).collect();
    assert_eq!(sizes, [50, 150, 100]);
}

#[test]
fn dct_scale_leaves_the_lanczos_pass_a_margin() {
    assert_eq!(jpeg::scale_denominator(8160, 5100, (1280, 800)), 4);
    assert_eq!(jpeg::scale_denominator(2560, 1600, (1280, 800)), 1);
    assert_eq!(jpeg::scale_denominator(5120, 2880, (1280, 720)), 2);
    assert_eq!(jpeg::scale_denominator(4032, 2520, (1280, 800)), 2);
    assert_eq!(jpeg::scale_denominator(8000, 6000, (500, 375)), 8);
    assert_eq!(jpeg::scale_denominator(8000, 6000, (1000, 750)), 4);
}

#[test]
fn big_jpeg_is_never_a_full_size_frame() {
    // 4000×3000: a 400 px variant is cut from a 1/4 decode (1000×750; 1/8 would leave the
    // Lanczos pass less than 1.5×), a 250 px one from a 1/8 decode (500×375).
    let img = RgbImage::from_fn(4000, 3000, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, 90])
    });
    let bytes = jpeg(&img);
    let probe = probe(&bytes).expect("probes");
    for (target, frame) in [((400, 300), (1000, 750)), ((250, 187), (500, 375))] {
        let decoded =
            jpeg::decode(&bytes, &probe, target, false, &Settings::default()).expect("decodes");
        assert_eq!((decoded.frame.width, decoded.frame.height), frame);
    }
    let p = run(&bytes, &[], &[300]);
    assert_eq!((p.width, p.height), (4000, 3000));
    assert_eq!((p.variants[0].width, p.variants[0].height), (300, 225));
}

// ---------------------------------------------------------------------------------------------
// Hostile input

#[test]
fn truncated_files_fail_clearly() {
    let img = photo_like(200, 120);
    let dynamic = DynamicImage::ImageRgb8(img.clone());
    let cases = [
        jpeg(&img),
        with_exif(&jpeg(&img), 6),
        png(&dynamic),
        webp_lossless(&dynamic),
        LOSSY_WEBP.to_vec(),
    ];
    for bytes in cases {
        let cut = &bytes[..bytes.len() * 2 / 3];
        let err = process(cut, &[], &specs(&[64]), &settings()).expect_err("truncated must fail");
        match &err {
            ProcessError::Decode(_) => {
                assert!(
                    err.to_string()
                        .starts_with("image is truncated or corrupt: "),
                    "{err}"
                )
            }
            ProcessError::Probe(ProbeError::BadHeader(_)) => {}
            other => panic!("unexpected error {other:?}"),
        }
    }
}

#[test]
fn corrupt_and_cut_files_never_panic() {
    let img = photo_like(64, 48);
    let dynamic = DynamicImage::ImageRgb8(img.clone());
    let fixtures = [
        with_exif(&jpeg(&img), 6),
        png(&dynamic),
        webp_lossless(&dynamic),
        LOSSY_WEBP.to_vec(),
        LOSSY_ALPHA_WEBP.to_vec(),
    ];
    for bytes in &fixtures {
        let step = (bytes.len() / 60).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let _ = process(
                &bytes[..cut],
                &[Op::Rotate90],
                &specs(&[32, 8]),
                &settings(),
            );
        }
        for at in (0..bytes.len()).step_by(step) {
            let mut broken = bytes.clone();
            broken[at] ^= 0x5A;
            let _ = process(&broken, &[Op::Grayscale], &specs(&[32, 8]), &settings());
        }
    }
}

#[test]
fn pixel_bombs_are_refused_from_the_header() {
    // 60000×60000 = 3.6 gigapixels, in a few dozen bytes: no pixel buffer may be allocated.
    let mut jpeg_bomb = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8];
    jpeg_bomb.extend_from_slice(&60000u16.to_be_bytes());
    jpeg_bomb.extend_from_slice(&60000u16.to_be_bytes());
    jpeg_bomb.extend_from_slice(&[3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9]);

    let mut png_bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png_bomb.extend_from_slice(&60000u32.to_be_bytes());
    png_bomb.extend_from_slice(&60000u32.to_be_bytes());
    png_bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);

    let mut webp_bomb = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    webp_bomb.extend_from_slice(&59999u32.to_le_bytes()[..3]);
    webp_bomb.extend_from_slice(&59999u32.to_le_bytes()[..3]);

    for bomb in [jpeg_bomb, png_bomb, webp_bomb] {
        let p = probe(&bomb).expect("header parses");
        assert_eq!((p.width, p.height), (60000, 60000));
        let err = process(&bomb, &[], &specs(&[1280]), &Settings::default()).expect_err("bomb");
        assert_eq!(
            err,
            ProcessError::TooManyPixels {
                pixels: 3_600_000_000,
                limit: 100_000_000
            }
        );
        assert_eq!(
            err.to_string(),
            "image has 3600000000 pixels, more than the limit of 100000000"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Quality

/// Slow exact reference: full decode (by the `image` crate's own decoders) with EXIF
/// orientation applied; `reference_resize` then goes straight to the variant size with Lanczos3.
fn reference_full(bytes: &[u8]) -> DynamicImage {
    let mut decoder = image::ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .expect("format")
        .into_decoder()
        .expect("decoder");
    let orientation = image::ImageDecoder::orientation(&mut decoder).expect("orientation");
    let mut full = DynamicImage::from_decoder(decoder).expect("reference decode");
    full.apply_orientation(orientation);
    DynamicImage::ImageRgb8(full.to_rgb8())
}

/// Through `DynamicImage` so the generic resize is compiled (optimised) inside `image`.
fn reference_resize(full: &DynamicImage, width: u32, height: u32) -> RgbImage {
    full.resize_exact(width, height, image::imageops::FilterType::Lanczos3)
        .to_rgb8()
}

#[test]
fn variants_match_a_slow_exact_reference() {
    let img = photo_like(1600, 1200);
    let stored = stored_for(&img, 6).to_rgb8();
    let cases = [
        ("jpeg 4:2:0", jpeg(&img)),
        (
            "jpeg 4:4:4",
            jpeg_with(&img, turbojpeg_sys::TJSAMP_TJSAMP_444, 95),
        ),
        ("jpeg exif 6", with_exif(&jpeg(&stored), 6)),
        ("png", png(&DynamicImage::ImageRgb8(img.clone()))),
    ];
    // For JPEG, 400 comes from a 1/2 decode, 200 from 1/4 and 100 from 1/8.
    let sizes = [400, 200, 100];
    let quality = Settings {
        jpeg_quality: 92,
        ..Settings::default()
    };
    for (name, bytes) in cases {
        let full = reference_full(&bytes);
        let check = |v: &Variant, what: &str| {
            let db = psnr(
                &decode(v).to_rgb8(),
                &reference_resize(&full, v.width, v.height),
            );
            assert!(db >= 32.0, "{name} {what} {}: PSNR {db:.1} dB", v.name);
        };
        // The chain (each variant from the previous one) as the worker runs it...
        let p = process(&bytes, &[], &specs(&sizes), &quality).expect("processes");
        p.variants.iter().for_each(|v| check(v, "chained variant"));
        // ...and each DCT scale on its own.
        for size in sizes {
            let p = process(&bytes, &[], &specs(&[size]), &quality).expect("processes");
            check(&p.variants[0], "single variant");
        }
    }
}

#[test]
fn progressive_jpegs_decoded_scaled_from_fewer_scans_keep_their_quality() {
    let img = photo_like(1600, 1200);
    let baseline = jpeg_with(&img, turbojpeg_sys::TJSAMP_TJSAMP_420, 92);
    let progressive = jpeg::encode_rgb_progressive(img.as_raw(), 1600, 1200, 92).expect("encodes");
    let full = reference_full(&baseline);
    // 800 comes from a full decode (every scan), 400 from 1/2, 200 from 1/4, 100 from 1/8.
    for size in [800, 400, 200, 100] {
        let psnr_of = |bytes: &[u8]| {
            let p = process(bytes, &[], &specs(&[size]), &settings()).expect("processes");
            let v = &p.variants[0];
            psnr(
                &decode(v).to_rgb8(),
                &reference_resize(&full, v.width, v.height),
            )
        };
        let (from_baseline, from_progressive) = (psnr_of(&baseline), psnr_of(&progressive));
        assert!(
            from_progressive >= from_baseline - 0.5,
            "{size}: progressive {from_progressive:.2} dB, baseline {from_baseline:.2} dB"
        );
    }
    // A progressive file cut short still fails, whatever the scale would have read of it.
    let cut = &progressive[..progressive.len() * 9 / 10];
    for size in [800, 100] {
        let err = process(cut, &[], &specs(&[size]), &settings()).expect_err("cut short");
        assert!(matches!(err, ProcessError::Decode(_)), "{size}: {err}");
    }
}

#[test]
fn icc_profiles_are_kept_unless_srgb() {
    let mut fake = hostile::icc_profile(132);
    assert!(meta::icc_worth_keeping(&fake, false));
    assert!(!meta::icc_worth_keeping(&fake, true));
    // A 'desc' tag naming sRGB marks the profile as redundant.
    fake[128..132].copy_from_slice(&1u32.to_be_bytes());
    fake.extend_from_slice(b"desc");
    fake.extend_from_slice(&144u32.to_be_bytes());
    fake.extend_from_slice(&20u32.to_be_bytes());
    fake.extend_from_slice(b"desc\0\0\0\0\0\0\0\x0csRGB IEC6");
    let len = fake.len() as u32;
    fake[0..4].copy_from_slice(&len.to_be_bytes());
    assert!(!meta::icc_worth_keeping(&fake, false));

    // A non-sRGB profile survives into the JPEG variants.
    let p3 = hostile::icc_profile(200);
    let tagged = hostile::jpeg_with_icc(&jpeg(&quadrants(32, 32)), &p3);
    assert_eq!(meta::jpeg_icc(&tagged).as_deref(), Some(p3.as_slice()));
    let p = run(&tagged, &[], &[16]);
    assert_eq!(
        meta::jpeg_icc(&p.variants[0].bytes).as_deref(),
        Some(p3.as_slice())
    );
    // Grayscale output drops a colour profile.
    let p = run(&tagged, &[Op::Grayscale], &[16]);
    assert_eq!(meta::jpeg_icc(&p.variants[0].bytes), None);
}

#[test]
fn icc_profiles_that_are_not_profiles_or_too_big_are_not_copied() {
    let good = hostile::icc_profile(300);
    assert!(meta::icc_worth_keeping(&good, false));
    let mut wrong_size = good.clone();
    wrong_size[0..4].copy_from_slice(&299u32.to_be_bytes());
    let mut no_signature = good.clone();
    no_signature[36..40].copy_from_slice(b"abcd");
    let cut = good[..200].to_vec();
    let huge = hostile::icc_profile((1 << 20) + 1);
    for (what, icc) in [
        ("size field", wrong_size),
        ("signature", no_signature),
        ("truncated", cut),
        ("over 1 MiB", huge),
    ] {
        assert!(!meta::icc_worth_keeping(&icc, false), "{what}");
    }

    // A 64×48 JPEG carrying an 8 MiB well-formed-looking profile: processed, profile dropped,
    // every variant small. It is not even reassembled (over the metadata limit).
    let stuffed = hostile::jpeg_with_icc(&jpeg(&quadrants(64, 48)), &hostile::icc_profile(8 << 20));
    assert!(stuffed.len() > 8 << 20);
    assert_eq!(meta::jpeg_icc(&stuffed), None);
    let p = run(&stuffed, &[], &[1280, 320]);
    for v in &p.variants {
        eprintln!(
            "8 MiB ICC profile in, variant {} is {} bytes",
            v.name,
            v.bytes.len()
        );
        assert!(
            v.bytes.len() < 64 * 1024,
            "{} is {} bytes",
            v.name,
            v.bytes.len()
        );
        assert_eq!(meta::jpeg_icc(&v.bytes), None);
    }
    // Just under the limit, a well-formed profile is still kept.
    let big_ok = hostile::icc_profile(900 * 1024);
    let tagged = hostile::jpeg_with_icc(&jpeg(&quadrants(64, 48)), &big_ok);
    let p = run(&tagged, &[], &[32]);
    assert_eq!(
        meta::jpeg_icc(&p.variants[0].bytes).as_deref(),
        Some(big_ok.as_slice())
    );
}

// ---------------------------------------------------------------------------------------------
// Decode memory

#[test]
fn decode_memory_is_figured_from_the_header() {
    let mib = 1u64 << 20;
    // PNG: width × height × channels × bytes per sample, plus the 8-bit copy when one is made.
    let rgba16 = probe(&hostile::png_rgba16_zeros(1000, 1000)).expect("probes");
    assert_eq!(rgba16.decode_bytes, 1_000_000 * (8 + 4));
    let rgb8 = probe(&png(&DynamicImage::ImageRgb8(quadrants(100, 50)))).expect("probes");
    assert_eq!(rgb8.decode_bytes, 5_000 * 3);
    let gray16 = probe(&png(&DynamicImage::ImageLuma16(image::ImageBuffer::new(
        10, 10,
    ))))
    .expect("probes");
    assert_eq!(gray16.decode_bytes, 100 * (2 + 1));

    // JPEG: samples at full size; progressive adds 2 bytes per coefficient (4:2:0 here: 1.5
    // samples per pixel, in whole 8×8 blocks).
    let base = jpeg(&quadrants(64, 48));
    let baseline = probe(&base).expect("probes");
    assert_eq!(baseline.decode_bytes, 64 * 48 * 3);
    let mut progressive = base.clone();
    let sof = progressive
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("SOF0");
    progressive[sof + 1] = 0xC2;
    let coefficients = (64 * 48 + 2 * 32 * 24) * 2;
    assert_eq!(
        probe(&progressive).expect("probes").decode_bytes,
        64 * 48 * 3 + coefficients
    );

    // The 10000×10000 16-bit RGBA bomb is refused by the engine under the default budget.
    let bomb = hostile::png_rgba16_zeros(10_000, 10_000);
    eprintln!("10000×10000 16-bit RGBA PNG: {} bytes", bomb.len());
    assert!(bomb.len() < 2 * mib as usize);
    let err = process(&bomb, &[], &specs(&[1280, 320]), &Settings::default()).expect_err("bomb");
    assert_eq!(
        err,
        ProcessError::TooLargeToDecode {
            needs: 1_200_000_000,
            limit: 512 * mib
        }
    );
    // ...and by a budget below what a small image needs.
    let small = png(&DynamicImage::ImageRgb8(quadrants(100, 50)));
    let tight = Settings {
        max_decode_bytes: 10_000,
        ..Settings::default()
    };
    assert!(matches!(
        process(&small, &[], &specs(&[32]), &tight),
        Err(ProcessError::TooLargeToDecode {
            needs: 15_000,
            limit: 10_000
        })
    ));
}

#[test]
fn png_metadata_that_inflates_past_a_mebibyte_is_refused_from_the_header() {
    let bomb = hostile::png_iccp_bomb(1024);
    eprintln!("1×1 PNG with a 1 GiB iCCP: {} bytes", bomb.len());
    let oversized = ProbeError::OversizedMetadata {
        kind: "iCCP",
        limit: 1 << 20,
    };
    assert_eq!(probe(&bomb), Err(oversized.clone()));
    assert_eq!(
        process(&bomb, &[], &specs(&[32]), &settings()).expect_err("refused"),
        ProcessError::Probe(oversized)
    );
    // An iCCP that inflates to less is no problem (all zeros: not a profile, so not copied).
    let fine = hostile::png_iccp_bomb(1);
    let p = run(&fine, &[], &[32]);
    assert_eq!(p.variants[0].content_type, "image/jpeg");
    assert_eq!(meta::jpeg_icc(&p.variants[0].bytes), None);
}

/// Runs `hostile_png_child` in a process of its own (tests share one process, so their memory
/// would mix) and returns how far its peak RSS rose above its RSS before the call.
fn peak_growth_in_child(case: &str) -> u64 {
    let exe = std::env::current_exe().expect("test binary");
    let out = std::process::Command::new(exe)
        .args(["--exact", "resize::tests::hostile_png_child"])
        .args(["--nocapture", "--test-threads=1"])
        .env("GALLERY_HOSTILE_CASE", case)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}");
    stdout
        .lines()
        .find_map(|l| l.split_once("peak growth: "))
        .and_then(|(_, n)| n.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no figure from the child: {stdout}"))
}

#[test]
fn hostile_pngs_do_not_grow_the_process() {
    for case in ["iccp-bomb", "rgba16-bomb"] {
        let growth = peak_growth_in_child(case);
        eprintln!(
            "{case}: resize::process raised peak RSS by {:.1} MiB",
            growth as f64 / f64::from(1 << 20)
        );
        assert!(growth < 64 << 20, "{case}: grew by {growth} bytes");
    }
}

#[test]
fn an_accepted_image_stays_within_its_decode_figure() {
    // 3000×3000 16-bit RGBA: the worst layout per pixel, accepted under the default budget.
    let figure = probe(&hostile::png_rgba16_zeros(3000, 3000))
        .expect("probes")
        .decode_bytes;
    let growth = peak_growth_in_child("rgba16-accepted");
    eprintln!(
        "rgba16-accepted: decode figure {:.1} MiB, peak RSS rose by {:.1} MiB",
        figure as f64 / f64::from(1 << 20),
        growth as f64 / f64::from(1 << 20)
    );
    assert!(growth < figure + (64 << 20), "grew by {growth} bytes");
}

/// The hostile cases, refused or not. Alone (the parents above set GALLERY_HOSTILE_CASE and
/// run it in a process of its own) it measures one case's peak memory; in the ordinary run it
/// checks every case's outcome, sharing the process with other tests, so it prints no figure.
#[test]
fn hostile_png_child() {
    let cases = [
        ("iccp-bomb", true),
        ("rgba16-bomb", true),
        ("rgba16-accepted", false),
    ];
    let measured = std::env::var("GALLERY_HOSTILE_CASE").ok();
    for (case, refused) in cases {
        if measured.as_deref().is_some_and(|m| m != case) {
            continue;
        }
        let bytes = match case {
            "iccp-bomb" => hostile::png_iccp_bomb(1024),
            "rgba16-bomb" => hostile::png_rgba16_zeros(10_000, 10_000),
            _ => hostile::png_rgba16_zeros(3000, 3000),
        };
        // Forget the peak so far (building the input), so the figure is the call's own.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let (_, before) = hostile::memory();
        let outcome = process(&bytes, &[], &VariantSpec::standard(), &Settings::default());
        let (peak, _) = hostile::memory();
        assert_eq!(outcome.is_err(), refused, "{case}: {:?}", outcome.err());
        if measured.is_some() {
            println!("peak growth: {}", peak.saturating_sub(before));
        }
    }
}

#[test]
fn variants_carry_no_exif() {
    let bytes = with_exif(&jpeg(&quadrants(64, 40)), 6);
    let p = run(&bytes, &[], &[32]);
    assert!(meta::jpeg_orientation(&bytes).is_some());
    assert_eq!(meta::jpeg_orientation(&p.variants[0].bytes), None);
    assert!(!p.variants[0].bytes.windows(6).any(|w| w == b"Exif\0\0"));
}

// ---------------------------------------------------------------------------------------------
// Quality held on the shared photo sets (issue #11)

/// Every variant of every shared photo (`make test-deps` fetches them into target/photos) stays
/// within `quality::ALLOWED_DROP_DB` of the luma PSNR recorded before the engine's speed-ups,
/// and of the chroma PSNR where one is recorded.
#[test]
fn shared_photos_keep_their_recorded_quality() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/photos");
    let mut photos: Vec<(String, std::path::PathBuf)> = Vec::new();
    for set in ["real", "camera"] {
        let dir = root.join(set);
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "the shared photos are missing ({}: {e}); `make test-deps` fetches them",
                dir.display()
            )
        });
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "jpg") {
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .expect("file name");
                photos.push((format!("{set}/{name}"), path));
            }
        }
    }
    let recorded: Vec<(&str, &str)> = quality::RECORDED
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            Some((fields.next()?, fields.next()?))
        })
        .collect();
    for (photo, _) in &recorded {
        assert!(
            photos.iter().any(|(p, _)| p == photo),
            "{photo} has a recorded figure but is not in {}: fetch the photos again \
             (`rm -r target/photos && make test-deps`)",
            root.display()
        );
    }
    let settings = Settings::default();
    let sizes = specs(&[1280, 320]);
    // Two photos at a time: the full-size reference decodes dominate, and they are C code.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some((photo, path)) =
                    photos.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    let bytes = std::fs::read(path).expect("photo reads");
                    let processed = process(&bytes, &[], &sizes, &settings).expect("processes");
                    let figures = quality::measure(&bytes, &processed).expect("measures");
                    assert_eq!(figures.len(), 2, "{photo}: both variants measured");
                    for figure in figures {
                        let Some(before) = quality::recorded(photo, &figure.name) else {
                            failures.lock().expect("lock").push(format!(
                                "{photo} {}: no recorded figure (add it to \
                                 src/resize/engine-psnr.csv)",
                                figure.name
                            ));
                            continue;
                        };
                        let measured = [
                            ("luma", figure.psnr_db, Some(before.psnr_db)),
                            ("chroma", figure.chroma_psnr_db, before.chroma_psnr_db),
                        ];
                        for (what, now, before) in measured {
                            let Some(before) = before else { continue };
                            if now < before - quality::ALLOWED_DROP_DB {
                                failures.lock().expect("lock").push(format!(
                                    "{photo} {}: {what} PSNR {now:.2} dB, recorded \
                                     {before:.2} dB (allowed drop {} dB)",
                                    figure.name,
                                    quality::ALLOWED_DROP_DB
                                ));
                            }
                        }
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("lock");
    assert!(
        failures.is_empty(),
        "quality dropped:\n{}",
        failures.join("\n")
    );
}
