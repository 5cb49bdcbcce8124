//! Decoded pixels in the layouts the engine works in (JPEG-native Y'CbCr planes, a luma plane,
//! or interleaved 8-bit pixels), and what is done to them: resize, orient, drop colour. The
//! codecs (`jpeg`, `raster`) read and write frames; a frame knows nothing of them.

use fast_image_resize as fr;

use crate::domain::Op;

/// The resampling filter for every resize. Lanczos3 matches what vips and Pillow use for
/// thumbnails, so our variants look like theirs; its extra cost over CatmullRom is small next to
/// the decode.
fn filter() -> Result<fr::ResizeAlg, String> {
    let lanczos3 = fr::Filter::new("Lanczos3", lanczos3, 3.0).map_err(|e| e.to_string())?;
    Ok(fr::ResizeAlg::Convolution(fr::FilterType::Custom(lanczos3)))
}

/// Lanczos3, sinc(x)·sinc(x/3), as fast_image_resize's own but with one sine where it takes
/// two: sin(πx) = 3s − 4s³ for s = sin(πx/3). fast_image_resize computes the weights afresh
/// for every plane it resizes (six per photo), and the sines were 1.8 % of a 12 MP photo's
/// instructions (callgrind): 1.4 % fewer in all, the same variants to the byte on the shared
/// photos.
fn lanczos3(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    if !(-3.0..3.0).contains(&x) {
        return 0.0;
    }
    let s = (std::f64::consts::PI * x / 3.0).sin();
    let pi_x = std::f64::consts::PI * x;
    (3.0 * s - 4.0 * s * s * s) * 3.0 * s / (pi_x * pi_x)
}

/// One 8-bit channel. Rows are exactly `width` bytes, because fast_image_resize wants
/// contiguous rows; a frame may show only its top-left part (decoders pad planes to whole
/// chroma blocks).
#[derive(Debug, Clone)]
pub(crate) struct Plane {
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

impl Plane {
    pub fn new(width: u32, height: u32) -> Plane {
        Plane {
            data: vec![0; width as usize * height as usize],
            width,
            height,
        }
    }

    fn view(&self) -> Result<fr::images::ImageRef<'_>, String> {
        fr::images::ImageRef::new(self.width, self.height, &self.data, fr::PixelType::U8)
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Pixels {
    /// Luma plus two chroma planes subsampled by `sx`×`sy` (JPEG's native layout).
    Ycc {
        y: Plane,
        cb: Plane,
        cr: Plane,
        sx: u32,
        sy: u32,
    },
    Gray(Plane),
    /// Interleaved pixels, rows exactly `width` pixels: 2 = gray+alpha, 3 = RGB, 4 = RGBA.
    Packed {
        data: Vec<u8>,
        channels: u8,
    },
}

/// A decoded or resized image: `width`×`height` visible pixels.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub width: u32,
    pub height: u32,
    pub pixels: Pixels,
}

impl Frame {
    pub fn is_gray(&self) -> bool {
        match &self.pixels {
            Pixels::Gray(_) => true,
            Pixels::Packed { channels, .. } => *channels <= 2,
            Pixels::Ycc { .. } => false,
        }
    }

    /// Drops colour. Done before resizing: it commutes with a linear resize and leaves less to
    /// resize.
    pub fn into_gray(self) -> Frame {
        let pixels = match self.pixels {
            Pixels::Ycc { y, .. } => Pixels::Gray(y),
            Pixels::Packed { data, channels: 3 } => Pixels::Gray(Plane {
                data: data.chunks_exact(3).map(luma).collect(),
                width: self.width,
                height: self.height,
            }),
            Pixels::Packed { data, channels: 4 } => Pixels::Packed {
                data: data.chunks_exact(4).flat_map(|p| [luma(p), p[3]]).collect(),
                channels: 2,
            },
            other => other,
        };
        Frame { pixels, ..self }
    }

    /// Resizes to exactly `width`×`height` with the high-quality filter (alpha premultiplied).
    /// Y'CbCr sources come out as 4:2:0 planes, the layout the JPEG encoder takes.
    pub fn resize(
        &self,
        resizer: &mut fr::Resizer,
        width: u32,
        height: u32,
    ) -> Result<Frame, String> {
        let pixels = match &self.pixels {
            Pixels::Gray(plane) => Pixels::Gray(self.resize_plane(
                resizer,
                plane,
                (1, 1),
                (width, height),
                1,
                (width, height),
            )?),
            Pixels::Ycc { y, cb, cr, sx, sy } => {
                let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
                Pixels::Ycc {
                    y: self.resize_plane(
                        resizer,
                        y,
                        (1, 1),
                        (width, height),
                        1,
                        (width, height),
                    )?,
                    cb: self.resize_plane(resizer, cb, (*sx, *sy), (cw, ch), 2, (width, height))?,
                    cr: self.resize_plane(resizer, cr, (*sx, *sy), (cw, ch), 2, (width, height))?,
                    sx: 2,
                    sy: 2,
                }
            }
            Pixels::Packed { data, channels } => {
                let pixel_type = match channels {
                    2 => fr::PixelType::U8x2,
                    3 => fr::PixelType::U8x3,
                    _ => fr::PixelType::U8x4,
                };
                let src = fr::images::ImageRef::new(self.width, self.height, data, pixel_type)
                    .map_err(|e| e.to_string())?;
                let mut dst = fr::images::Image::new(width, height, pixel_type);
                if (width, height) == (self.width, self.height) {
                    dst.buffer_mut().copy_from_slice(src.buffer());
                } else {
                    // mul_div_alpha (on by default) premultiplies, so transparent pixels'
                    // colour cannot bleed into the edge as a dark fringe.
                    resizer
                        .resize(
                            &src,
                            &mut dst,
                            &fr::ResizeOptions::new().resize_alg(filter()?),
                        )
                        .map_err(|e| e.to_string())?;
                }
                Pixels::Packed {
                    data: dst.into_vec(),
                    channels: *channels,
                }
            }
        };
        Ok(Frame {
            width,
            height,
            pixels,
        })
    }

    /// Resizes one plane that samples this frame every `sx`×`sy` pixels into a `dw`×`dh` plane
    /// that samples the `out_w`×`out_h` result every `step` pixels on both axes. The crop box
    /// keeps the two aligned on the image's visible area, whatever block padding either has.
    fn resize_plane(
        &self,
        resizer: &mut fr::Resizer,
        plane: &Plane,
        (sx, sy): (u32, u32),
        (dw, dh): (u32, u32),
        step: u32,
        (out_w, out_h): (u32, u32),
    ) -> Result<Plane, String> {
        // The source area, in this plane's samples, that the destination plane covers. It
        // can reach past the visible area by a fraction of a sample when the output size is
        // odd, hence the clamp.
        let span = |d: u32, visible: u32, out: u32, s: u32| {
            f64::from(d * step) * f64::from(visible) / f64::from(out) / f64::from(s)
        };
        let crop_w = span(dw, self.width, out_w, sx).min(f64::from(plane.width));
        let crop_h = span(dh, self.height, out_h, sy).min(f64::from(plane.height));
        let mut dst = Plane::new(dw, dh);
        if (dw, dh) == (plane.width, plane.height)
            && crop_w == f64::from(dw)
            && crop_h == f64::from(dh)
        {
            dst.data.copy_from_slice(&plane.data);
            return Ok(dst);
        }
        let mut dst_view =
            fr::images::Image::from_slice_u8(dw, dh, &mut dst.data, fr::PixelType::U8)
                .map_err(|e| e.to_string())?;
        let options = fr::ResizeOptions::new()
            .resize_alg(filter()?)
            .crop(0.0, 0.0, crop_w, crop_h);
        resizer
            .resize(&plane.view()?, &mut dst_view, &options)
            .map_err(|e| e.to_string())?;
        Ok(dst)
    }

    /// Applies an orientation transform (to a small variant, so a plain loop is cheap enough);
    /// None when there is nothing to do.
    pub fn transformed(&self, t: Transform) -> Option<Frame> {
        if t.is_identity() {
            return None;
        }
        let (width, height) = t.output_size(self.width, self.height);
        let pixels = match &self.pixels {
            Pixels::Gray(p) => Pixels::Gray(transform_plane(p, self.width, self.height, t)),
            Pixels::Ycc { y, cb, cr, sx, sy } => {
                let (sx, sy) = (*sx, *sy);
                let (cw, ch) = (self.width.div_ceil(sx), self.height.div_ceil(sy));
                let (sx, sy) = if t.transpose { (sy, sx) } else { (sx, sy) };
                Pixels::Ycc {
                    y: transform_plane(y, self.width, self.height, t),
                    cb: transform_plane(cb, cw, ch, t),
                    cr: transform_plane(cr, cw, ch, t),
                    sx,
                    sy,
                }
            }
            Pixels::Packed { data, channels } => Pixels::Packed {
                data: match channels {
                    2 => transform_packed::<2>(data, self.width, self.height, t),
                    3 => transform_packed::<3>(data, self.width, self.height, t),
                    _ => transform_packed::<4>(data, self.width, self.height, t),
                },
                channels: *channels,
            },
        };
        Some(Frame {
            width,
            height,
            pixels,
        })
    }
}

/// BT.601 luma, the weights JPEG's own Y'CbCr uses, so a grayscale PNG matches a grayscale JPEG.
fn luma(p: &[u8]) -> u8 {
    let (r, g, b) = (u32::from(p[0]), u32::from(p[1]), u32::from(p[2]));
    ((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16) as u8
}

/// One of the 8 symmetries of a rectangle: optionally transpose, then mirror left-right, then
/// mirror top-bottom. EXIF orientations and the rotate ops compose into one of these, so a
/// variant is transformed once however many rotations were asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Transform {
    pub transpose: bool,
    pub flip_x: bool,
    pub flip_y: bool,
}

impl Transform {
    pub const IDENTITY: Transform = Transform {
        transpose: false,
        flip_x: false,
        flip_y: false,
    };
    const ROTATE90: [[i8; 2]; 2] = [[0, -1], [1, 0]];
    const ROTATE180: [[i8; 2]; 2] = [[-1, 0], [0, -1]];
    const ROTATE270: [[i8; 2]; 2] = [[0, 1], [-1, 0]];

    /// The transform that shows a photo stored with EXIF `Orientation` upright. Values outside
    /// 1..=8 are treated as 1, as browsers do.
    pub fn from_exif(orientation: u16) -> Transform {
        let m = match orientation {
            2 => [[-1, 0], [0, 1]],
            3 => Self::ROTATE180,
            4 => [[1, 0], [0, -1]],
            5 => [[0, 1], [1, 0]],
            6 => Self::ROTATE90,
            7 => [[0, -1], [-1, 0]],
            8 => Self::ROTATE270,
            _ => [[1, 0], [0, 1]],
        };
        Self::from_matrix(m)
    }

    /// Follows this transform by the rotate ops, in order (grayscale does not move pixels).
    pub fn then_ops(self, ops: &[Op]) -> Transform {
        ops.iter().fold(self, |t, op| {
            let r = match op {
                Op::Rotate90 => Self::ROTATE90,
                Op::Rotate180 => Self::ROTATE180,
                Op::Rotate270 => Self::ROTATE270,
                Op::Grayscale => return t,
            };
            Self::from_matrix(mul(r, t.matrix()))
        })
    }

    pub fn is_identity(&self) -> bool {
        *self == Self::IDENTITY
    }

    /// Size after the transform of a `width`×`height` image.
    pub fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if self.transpose {
            (height, width)
        } else {
            (width, height)
        }
    }

    /// Size before the transform that gives a `width`×`height` result.
    pub fn stored_size(&self, width: u32, height: u32) -> (u32, u32) {
        self.output_size(width, height)
    }

    /// The matrix acting on centred (x right, y down) coordinates.
    fn matrix(&self) -> [[i8; 2]; 2] {
        let sx = if self.flip_x { -1 } else { 1 };
        let sy = if self.flip_y { -1 } else { 1 };
        if self.transpose {
            [[0, sx], [sy, 0]]
        } else {
            [[sx, 0], [0, sy]]
        }
    }

    fn from_matrix(m: [[i8; 2]; 2]) -> Transform {
        if m[0][0] == 0 {
            Transform {
                transpose: true,
                flip_x: m[0][1] < 0,
                flip_y: m[1][0] < 0,
            }
        } else {
            Transform {
                transpose: false,
                flip_x: m[0][0] < 0,
                flip_y: m[1][1] < 0,
            }
        }
    }
}

fn mul(a: [[i8; 2]; 2], b: [[i8; 2]; 2]) -> [[i8; 2]; 2] {
    let mut m = [[0; 2]; 2];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = a[i][0] * b[0][j] + a[i][1] * b[1][j];
        }
    }
    m
}

/// Transforms the visible `width`×`height` part of a plane into a tight plane.
fn transform_plane(plane: &Plane, width: u32, height: u32, t: Transform) -> Plane {
    let mut tight = Vec::with_capacity(width as usize * height as usize);
    for row in plane
        .data
        .chunks_exact(plane.width as usize)
        .take(height as usize)
    {
        tight.extend_from_slice(&row[..width as usize]);
    }
    let (ow, oh) = t.output_size(width, height);
    Plane {
        data: transform_packed::<1>(&tight, width, height, t),
        width: ow,
        height: oh,
    }
}

/// Moves every `N`-byte pixel of a tight `width`×`height` buffer to its transformed place.
fn transform_packed<const N: usize>(src: &[u8], width: u32, height: u32, t: Transform) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let (ow, oh) = if t.transpose { (h, w) } else { (w, h) };
    let mut dst = vec![0u8; src.len()];
    for (y, row) in src.chunks_exact(w * N).enumerate().take(h) {
        for (x, px) in row.chunks_exact(N).enumerate() {
            let (mut dx, mut dy) = if t.transpose { (y, x) } else { (x, y) };
            if t.flip_x {
                dx = ow - 1 - dx;
            }
            if t.flip_y {
                dy = oh - 1 - dy;
            }
            let at = (dy * ow + dx) * N;
            dst[at..at + N].copy_from_slice(px);
        }
    }
    dst
}
