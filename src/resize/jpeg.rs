//! JPEG decode and encode through libjpeg-turbo's TurboJPEG 3 API (`turbojpeg-sys`, bundled
//! build). The safe `turbojpeg` crate lacks planar decode, the pixel limit and ICC profiles, so
//! this is a small wrapper of its own; every `unsafe` block passes buffers sized from the
//! library's own plane-size functions.

use std::ffi::CStr;
use std::os::raw::{c_int, c_uchar};
use std::ptr;

use turbojpeg_sys as tj;

use super::frame::{Frame, Pixels, Plane};
use super::{meta, scans, Probe};

/// A libjpeg-turbo instance, destroyed on drop.
struct Handle(tj::tjhandle);

impl Handle {
    fn new(kind: tj::TJINIT) -> Result<Handle, String> {
        // SAFETY: tj3Init has no preconditions; a null return is handled.
        let raw = unsafe { tj::tj3Init(kind as c_int) };
        if raw.is_null() {
            Err("could not initialise libjpeg-turbo".into())
        } else {
            Ok(Handle(raw))
        }
    }

    fn set(&mut self, param: tj::TJPARAM, value: c_int) -> Result<(), String> {
        // SAFETY: the handle is valid for our lifetime.
        if unsafe { tj::tj3Set(self.0, param as c_int, value) } == 0 {
            Ok(())
        } else {
            Err(self.message())
        }
    }

    fn get(&self, param: tj::TJPARAM) -> c_int {
        // SAFETY: as above.
        unsafe { tj::tj3Get(self.0, param as c_int) }
    }

    fn message(&self) -> String {
        // SAFETY: tj3GetErrorStr returns a NUL-terminated string owned by the handle.
        unsafe { CStr::from_ptr(tj::tj3GetErrorStr(self.0)) }
            .to_string_lossy()
            .into_owned()
    }

    /// Turns a TurboJPEG return code into a result. Warnings fail too (a truncated file
    /// "succeeds" with grey fill otherwise), except stray bytes between markers, which many
    /// cameras write into valid photos.
    fn check(&self, rc: c_int) -> Result<(), String> {
        if rc == 0 {
            return Ok(());
        }
        let message = self.message();
        // SAFETY: as above.
        let warning = unsafe { tj::tj3GetErrorCode(self.0) } == tj::TJERR_TJERR_WARNING as c_int;
        if warning && message.contains("extraneous bytes") {
            Ok(())
        } else {
            Err(message)
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: created by tj3Init, destroyed once.
        unsafe { tj::tj3Destroy(self.0) }
    }
}

pub(crate) struct Decoded {
    pub frame: Frame,
    pub icc: Option<Vec<u8>>,
}

/// Libjpeg-turbo's guard against progressive-scan bombs; real photos use about 10 scans.
const SCAN_LIMIT: c_int = 500;

/// How much the Lanczos pass after a DCT-scaled decode must still shrink. Measured on the
/// shared photos (luma PSNR against a full decode resized with Lanczos3): decoding straight to
/// the target (factor 1, Pillow's draft mode) costs up to 3.1 dB on smooth 2560-wide photos,
/// since the reduced IDCT alone is a cruder filter; a factor of 1.575 (12 MP at 1/2) or
/// 1.59 (50 MP at 1/4) costs at most 0.22 dB against libvips' 2 (what the engine used before).
const LANCZOS_MARGIN: f64 = 1.5;

/// The DCT scale (1, 2, 4 or 8) that still leaves the Lanczos pass a `LANCZOS_MARGIN` shrink
/// over `target` on both axes, so it has real work to do and block aliasing is smoothed.
pub(crate) fn scale_denominator(width: u32, height: u32, target: (u32, u32)) -> u32 {
    let shrink = (f64::from(width) / f64::from(target.0.max(1)))
        .min(f64::from(height) / f64::from(target.1.max(1)));
    [8, 4, 2]
        .into_iter()
        .find(|&d| shrink >= f64::from(d) * LANCZOS_MARGIN)
        .unwrap_or(1)
}

/// What a decode at 1/`denom` scale keeps of a progressive JPEG. Full size keeps every scan
/// (dropping the last bit there cost up to 0.89 dB); scaled decodes drop the scans above the
/// coefficients the reduced IDCT mostly rests on and the last-bit refinements, which cost at
/// most 0.05 dB on the shared photos (the scaled IDCT and the Lanczos pass average it away).
fn scans_to_keep(denom: u32) -> scans::Keep {
    scans::Keep {
        highest: scans::highest_coefficient(denom),
        least_bit: u8::from(denom > 1),
    }
}

/// Decodes at the largest DCT scale that still covers `target` (stored orientation) with the
/// `LANCZOS_MARGIN`, to planar Y'CbCr when the file allows, else to luma (`gray`) or RGB.
pub(crate) fn decode(
    bytes: &[u8],
    probe: &Probe,
    target: (u32, u32),
    gray: bool,
    settings: &super::Settings,
) -> Result<Decoded, String> {
    let mut h = Handle::new(tj::TJINIT_TJINIT_DECOMPRESS)?;
    h.set(tj::TJPARAM_TJPARAM_SCANLIMIT, SCAN_LIMIT)?;
    // The caller already refused too many pixels from our own header parse; this keeps the
    // library honest if its parse ever disagrees.
    h.set(
        tj::TJPARAM_TJPARAM_MAXPIXELS,
        c_int::try_from(settings.max_pixels).unwrap_or(c_int::MAX),
    )?;
    // Caps libjpeg's whole-image buffers (progressive and multi-scan coefficients) at the
    // decode budget, in MiB; the header check already refused images over it.
    h.set(
        tj::TJPARAM_TJPARAM_MAXMEMORY,
        c_int::try_from(settings.max_decode_bytes.div_ceil(1 << 20).max(1)).unwrap_or(c_int::MAX),
    )?;
    // SAFETY: bytes outlives the call; the length is the slice's.
    h.check(unsafe { tj::tj3DecompressHeader(h.0, bytes.as_ptr(), bytes.len() as tj::size_t) })?;
    let (width, height) = (
        h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    if (width, height) != (probe.width as c_int, probe.height as c_int) {
        return Err(format!(
            "header says {}x{} but the decoder sees {width}x{height}",
            probe.width, probe.height
        ));
    }
    let subsamp = h.get(tj::TJPARAM_TJPARAM_SUBSAMP);
    let colorspace = h.get(tj::TJPARAM_TJPARAM_COLORSPACE);
    let lossless = h.get(tj::TJPARAM_TJPARAM_LOSSLESS) != 0;

    let denom = if lossless {
        1
    } else {
        scale_denominator(probe.width, probe.height, target)
    };
    if denom > 1 {
        let factor = tj::tjscalingfactor {
            num: 1,
            denom: denom as c_int,
        };
        // SAFETY: valid handle; 1/2, 1/4 and 1/8 are always supported.
        h.check(unsafe { tj::tj3SetScalingFactor(h.0, factor) })?;
    }
    let (sw, sh) = (probe.width.div_ceil(denom), probe.height.div_ceil(denom));
    // A scaled decode of a progressive JPEG reads only the scans it needs (`scans`).
    let pruned = (denom > 1 && !lossless && h.get(tj::TJPARAM_TJPARAM_PROGRESSIVE) != 0)
        .then(|| scans::prune(bytes, scans_to_keep(denom)))
        .flatten();

    let layout = Layout {
        width: sw,
        height: sh,
        subsamp,
        colorspace,
        gray,
    };
    let frame = match pruned
        .as_deref()
        .map(|pruned| decode_frame(&h, pruned, &layout))
    {
        Some(Ok(frame)) => frame,
        // Whatever the shortened stream trips on is judged on the original bytes.
        _ => decode_frame(&h, bytes, &layout)?,
    };
    Ok(Decoded {
        frame,
        icc: meta::jpeg_icc(bytes),
    })
}

/// The decoded image's size (already scaled) and the header facts that pick its layout.
struct Layout {
    width: u32,
    height: u32,
    subsamp: c_int,
    colorspace: c_int,
    gray: bool,
}

/// Decodes `bytes` (with the handle's scaling factor) to planar Y'CbCr when the file allows,
/// else to luma (`gray`) or RGB.
fn decode_frame(h: &Handle, bytes: &[u8], layout: &Layout) -> Result<Frame, String> {
    let &Layout {
        width: sw,
        height: sh,
        subsamp,
        colorspace,
        gray,
    } = layout;
    let planar = (colorspace == tj::TJCS_TJCS_YCbCr as c_int
        || colorspace == tj::TJCS_TJCS_GRAY as c_int)
        && subsamp >= 0
        && !gray;
    let frame = if planar {
        decode_planes(h, bytes, sw, sh, subsamp)?
    } else if gray {
        let data = decode_packed(h, bytes, sw, sh, tj::TJPF_TJPF_GRAY, 1)?;
        Frame {
            width: sw,
            height: sh,
            pixels: Pixels::Gray(Plane {
                data,
                width: sw,
                height: sh,
            }),
        }
    } else if colorspace == tj::TJCS_TJCS_CMYK as c_int || colorspace == tj::TJCS_TJCS_YCCK as c_int
    {
        let cmyk = decode_packed(h, bytes, sw, sh, tj::TJPF_TJPF_CMYK, 4)?;
        // Adobe writes inverted CMYK (what Photoshop and every camera-adjacent tool emits), so
        // each stored value is already "1 - ink"; multiplying by K gives the channel.
        let data = cmyk
            .chunks_exact(4)
            .flat_map(|p| {
                let k = u32::from(p[3]);
                [0, 1, 2].map(|i| ((u32::from(p[i]) * k + 127) / 255) as u8)
            })
            .collect();
        Frame {
            width: sw,
            height: sh,
            pixels: Pixels::Packed { data, channels: 3 },
        }
    } else {
        let data = decode_packed(h, bytes, sw, sh, tj::TJPF_TJPF_RGB, 3)?;
        Frame {
            width: sw,
            height: sh,
            pixels: Pixels::Packed { data, channels: 3 },
        }
    };
    Ok(frame)
}

fn decode_planes(
    h: &Handle,
    bytes: &[u8],
    width: u32,
    height: u32,
    subsamp: c_int,
) -> Result<Frame, String> {
    let components = if subsamp == tj::TJSAMP_TJSAMP_GRAY as c_int {
        1
    } else {
        3
    };
    let mut planes = Vec::with_capacity(components);
    for id in 0..components as c_int {
        // SAFETY: pure size computations.
        let (pw, ph) = unsafe {
            (
                tj::tj3YUVPlaneWidth(id, width as c_int, subsamp),
                tj::tj3YUVPlaneHeight(id, height as c_int, subsamp),
            )
        };
        if pw <= 0 || ph <= 0 {
            return Err("unsupported chroma subsampling".into());
        }
        planes.push(Plane::new(pw as u32, ph as u32));
    }
    let mut pointers: Vec<*mut c_uchar> = planes.iter_mut().map(|p| p.data.as_mut_ptr()).collect();
    let mut strides: Vec<c_int> = planes.iter().map(|p| p.width as c_int).collect();
    pointers.resize(3, ptr::null_mut());
    strides.resize(3, 0);
    // SAFETY: each plane is exactly the scaled plane size libjpeg-turbo computes for this
    // header and scaling factor, and the strides are those widths.
    h.check(unsafe {
        tj::tj3DecompressToYUVPlanes8(
            h.0,
            bytes.as_ptr(),
            bytes.len() as tj::size_t,
            pointers.as_mut_ptr(),
            strides.as_mut_ptr(),
        )
    })?;
    let mut planes = planes.into_iter();
    let (Some(y), cb, cr) = (planes.next(), planes.next(), planes.next()) else {
        return Err("no luma plane".into());
    };
    let pixels = match (cb, cr) {
        (Some(cb), Some(cr)) => {
            // Chroma planes sample the (padded) luma plane every sx×sy pixels.
            let sx = (y.width / cb.width.max(1)).max(1);
            let sy = (y.height / cb.height.max(1)).max(1);
            Pixels::Ycc { y, cb, cr, sx, sy }
        }
        _ => Pixels::Gray(y),
    };
    Ok(Frame {
        width,
        height,
        pixels,
    })
}

fn decode_packed(
    h: &Handle,
    bytes: &[u8],
    width: u32,
    height: u32,
    format: tj::TJPF,
    channels: usize,
) -> Result<Vec<u8>, String> {
    let mut data = vec![0u8; width as usize * height as usize * channels];
    let pitch = width as usize * channels;
    // SAFETY: data holds exactly height rows of pitch bytes of the scaled size.
    h.check(unsafe {
        tj::tj3Decompress8(
            h.0,
            bytes.as_ptr(),
            bytes.len() as tj::size_t,
            data.as_mut_ptr(),
            pitch as c_int,
            format as c_int,
        )
    })?;
    Ok(data)
}

/// Decodes a whole JPEG at full size to packed RGB with the accurate IDCT and smooth chroma
/// upsampling, no scaling: the reference the quality measure compares variants against.
pub(crate) fn decode_rgb_full(bytes: &[u8]) -> Result<(u32, u32, Vec<u8>), String> {
    decode_rgb_scaled(bytes, 1)
}

/// Decodes a whole JPEG at 1/`denom` scale (1, 2, 4 or 8) to packed RGB, warnings failing as
/// in `decode`.
pub(crate) fn decode_rgb_scaled(bytes: &[u8], denom: u32) -> Result<(u32, u32, Vec<u8>), String> {
    let mut h = Handle::new(tj::TJINIT_TJINIT_DECOMPRESS)?;
    h.set(tj::TJPARAM_TJPARAM_SCANLIMIT, SCAN_LIMIT)?;
    // SAFETY: bytes outlives the call; the length is the slice's.
    h.check(unsafe { tj::tj3DecompressHeader(h.0, bytes.as_ptr(), bytes.len() as tj::size_t) })?;
    let (width, height) = (
        h.get(tj::TJPARAM_TJPARAM_JPEGWIDTH),
        h.get(tj::TJPARAM_TJPARAM_JPEGHEIGHT),
    );
    let (Ok(width), Ok(height), Ok(scale_denom)) = (
        u32::try_from(width),
        u32::try_from(height),
        c_int::try_from(denom),
    ) else {
        return Err("bad JPEG size or scale".into());
    };
    let factor = tj::tjscalingfactor {
        num: 1,
        denom: scale_denom,
    };
    // SAFETY: valid handle; libjpeg-turbo refuses a factor it does not support.
    h.check(unsafe { tj::tj3SetScalingFactor(h.0, factor) })?;
    let (sw, sh) = (width.div_ceil(denom), height.div_ceil(denom));
    let data = decode_packed(&h, bytes, sw, sh, tj::TJPF_TJPF_RGB, 3)?;
    Ok((sw, sh, data))
}

fn compressor(quality: u8, subsamp: tj::TJSAMP, icc: Option<&[u8]>) -> Result<Handle, String> {
    let mut h = Handle::new(tj::TJINIT_TJINIT_COMPRESS)?;
    h.set(
        tj::TJPARAM_TJPARAM_QUALITY,
        c_int::from(quality.clamp(1, 100)),
    )?;
    h.set(tj::TJPARAM_TJPARAM_SUBSAMP, subsamp as c_int)?;
    if let Some(icc) = icc {
        // SAFETY: libjpeg-turbo copies the profile; it does not write through the pointer.
        h.check(unsafe {
            tj::tj3SetICCProfile(h.0, icc.as_ptr() as *mut c_uchar, icc.len() as tj::size_t)
        })?;
    }
    Ok(h)
}

/// Copies a buffer libjpeg-turbo allocated into a Vec and frees it.
fn take_output(
    rc: c_int,
    h: &Handle,
    buf: *mut c_uchar,
    len: tj::size_t,
) -> Result<Vec<u8>, String> {
    let result = h.check(rc).map(|()| {
        if buf.is_null() {
            Vec::new()
        } else {
            // SAFETY: on success buf holds len bytes written by the library.
            unsafe { std::slice::from_raw_parts(buf, len as usize) }.to_vec()
        }
    });
    // SAFETY: buf is null or was allocated by libjpeg-turbo for this call.
    unsafe { tj::tj3Free(buf.cast()) };
    result
}

/// Encodes tight 4:2:0 planes (luma `width`×`height`, chroma rounded up) as a JPEG.
pub(crate) fn encode_ycc420(
    y: &Plane,
    cb: &Plane,
    cr: &Plane,
    width: u32,
    height: u32,
    quality: u8,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let h = compressor(quality, tj::TJSAMP_TJSAMP_420, icc)?;
    // libjpeg-turbo reads luma rounded up to whole chroma samples; pad odd sizes by
    // repeating the last column and row.
    let (pw, ph) = (width.next_multiple_of(2), height.next_multiple_of(2));
    let padded;
    let luma = if (pw, ph) == (y.width, y.height) {
        y
    } else {
        padded = pad_plane(y, pw, ph);
        &padded
    };
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    if (cb.width, cb.height) != (cw, ch) || (cr.width, cr.height) != (cw, ch) {
        return Err("chroma planes do not match the luma plane".into());
    }
    let planes = [luma.data.as_ptr(), cb.data.as_ptr(), cr.data.as_ptr()];
    let strides = [pw as c_int, cw as c_int, cw as c_int];
    let mut buf: *mut c_uchar = ptr::null_mut();
    let mut len: tj::size_t = 0;
    // SAFETY: the planes are pw×ph and cw×ch with those strides, the sizes libjpeg-turbo
    // reads for a width×height 4:2:0 image; it allocates the output itself.
    let rc = unsafe {
        tj::tj3CompressFromYUVPlanes8(
            h.0,
            planes.as_ptr(),
            width as c_int,
            strides.as_ptr(),
            height as c_int,
            &mut buf,
            &mut len,
        )
    };
    take_output(rc, &h, buf, len)
}

/// Encodes interleaved gray (1 channel) or RGB (3 channels) pixels as a JPEG.
pub(crate) fn encode_packed(
    data: &[u8],
    width: u32,
    height: u32,
    channels: u8,
    quality: u8,
    icc: Option<&[u8]>,
) -> Result<Vec<u8>, String> {
    let (format, subsamp) = match channels {
        1 => (tj::TJPF_TJPF_GRAY, tj::TJSAMP_TJSAMP_GRAY),
        3 => (tj::TJPF_TJPF_RGB, tj::TJSAMP_TJSAMP_420),
        n => return Err(format!("cannot encode {n}-channel pixels as JPEG")),
    };
    let pitch = width as usize * usize::from(channels);
    if data.len() < pitch * height as usize {
        return Err("pixel buffer too small".into());
    }
    let h = compressor(quality, subsamp, icc)?;
    let mut buf: *mut c_uchar = ptr::null_mut();
    let mut len: tj::size_t = 0;
    // SAFETY: data holds height rows of pitch bytes (checked above).
    let rc = unsafe {
        tj::tj3Compress8(
            h.0,
            data.as_ptr(),
            width as c_int,
            pitch as c_int,
            height as c_int,
            format as c_int,
            &mut buf,
            &mut len,
        )
    };
    take_output(rc, &h, buf, len)
}

fn pad_plane(plane: &Plane, width: u32, height: u32) -> Plane {
    let (w, pw) = (plane.width as usize, width as usize);
    let mut out = Vec::with_capacity(pw * height as usize);
    for row in plane.data.chunks_exact(w.max(1)) {
        out.extend_from_slice(row);
        let last = row.last().copied().unwrap_or(0);
        out.resize(out.len() + (pw - w), last);
    }
    while out.len() < pw * height as usize {
        let start = out.len() - pw;
        out.extend_from_within(start..start + pw);
    }
    Plane {
        data: out,
        width,
        height,
    }
}

/// Test fixtures: RGB pixels as a JPEG with a chosen chroma subsampling (TJSAMP_*).
#[cfg(test)]
pub(crate) fn encode_rgb_subsampled(
    data: &[u8],
    width: u32,
    height: u32,
    subsamp: tj::TJSAMP,
    quality: u8,
) -> Result<Vec<u8>, String> {
    encode_rgb_fixture(data, width, height, subsamp, quality, false)
}

/// Test fixtures: RGB pixels as a progressive JPEG (libjpeg's standard scan script, 4:2:0).
#[cfg(test)]
pub(crate) fn encode_rgb_progressive(
    data: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, String> {
    encode_rgb_fixture(data, width, height, tj::TJSAMP_TJSAMP_420, quality, true)
}

#[cfg(test)]
fn encode_rgb_fixture(
    data: &[u8],
    width: u32,
    height: u32,
    subsamp: tj::TJSAMP,
    quality: u8,
    progressive: bool,
) -> Result<Vec<u8>, String> {
    let mut h = compressor(quality, subsamp, None)?;
    if progressive {
        h.set(tj::TJPARAM_TJPARAM_PROGRESSIVE, 1)?;
    }
    let mut buf: *mut c_uchar = ptr::null_mut();
    let mut len: tj::size_t = 0;
    assert!(data.len() >= width as usize * height as usize * 3);
    // SAFETY: as in encode_packed; the assert above checks the buffer's size.
    let rc = unsafe {
        tj::tj3Compress8(
            h.0,
            data.as_ptr(),
            width as c_int,
            (width * 3) as c_int,
            height as c_int,
            tj::TJPF_TJPF_RGB as c_int,
            &mut buf,
            &mut len,
        )
    };
    take_output(rc, &h, buf, len)
}
