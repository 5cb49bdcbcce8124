//! Hostile inputs, built by hand for the tests (the engine's own and the API suite's): small
//! files that would make a naive decoder allocate gigabytes. Only in test builds and with the
//! `test-hooks` feature; nothing here is used to serve photos.

use flate2::{Compress, Compression, Crc, FlushCompress};

/// A zlib stream that inflates to `repeats` copies of `unit`, made by compressing `unit` once
/// with a full flush (which resets the compressor's history, so the block stands alone) and
/// repeating that block: no need to compress gigabytes to make a gigabyte bomb.
pub fn zlib_repeating(unit: &[u8], repeats: usize) -> Vec<u8> {
    let mut raw = Compress::new(Compression::best(), false);
    let mut block = Vec::with_capacity(unit.len() / 100 + 1024);
    while (raw.total_in() as usize) < unit.len() {
        let at = raw.total_in() as usize;
        block.reserve(64 * 1024);
        raw.compress_vec(&unit[at..], &mut block, FlushCompress::Full)
            .expect("deflate");
    }
    block.reserve(64);
    raw.compress_vec(&[], &mut block, FlushCompress::Full)
        .expect("deflate flush");
    let mut tail = Vec::with_capacity(64);
    let mut last = Compress::new(Compression::best(), false);
    last.compress_vec(&[], &mut tail, FlushCompress::Finish)
        .expect("deflate finish");

    let mut out = vec![0x78, 0xDA];
    out.reserve(block.len() * repeats + tail.len() + 4);
    for _ in 0..repeats {
        out.extend_from_slice(&block);
    }
    out.extend_from_slice(&tail);
    out.extend_from_slice(&adler32_repeating(unit, repeats).to_be_bytes());
    out
}

/// Adler-32 of `unit` repeated, in O(unit + repeats): per unit, `a` grows by the byte sum and
/// `b` by `len × a` plus the sum of the unit's prefix sums.
fn adler32_repeating(unit: &[u8], repeats: usize) -> u32 {
    const MOD: u64 = 65521;
    let (mut sum, mut prefix_sums) = (0u64, 0u64);
    for &byte in unit {
        sum = (sum + u64::from(byte)) % MOD;
        prefix_sums = (prefix_sums + sum) % MOD;
    }
    let len = unit.len() as u64 % MOD;
    let (mut a, mut b) = (1u64, 0u64);
    for _ in 0..repeats {
        b = (b + len * a + prefix_sums) % MOD;
        a = (a + sum) % MOD;
    }
    ((b << 16) | a) as u32
}

/// Appends one PNG chunk with its length and CRC.
pub fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

fn ihdr(width: u32, height: u32, bit_depth: u8, colour_type: u8) -> Vec<u8> {
    let mut data = width.to_be_bytes().to_vec();
    data.extend_from_slice(&height.to_be_bytes());
    data.extend_from_slice(&[bit_depth, colour_type, 0, 0, 0]);
    data
}

/// A 1×1 RGB PNG whose `iCCP` chunk inflates to `inflated_mib` MiB of zeros (1024: a 1 MiB
/// file that inflates to 1 GiB).
pub fn png_iccp_bomb(inflated_mib: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr(1, 1, 8, 2));
    let mut iccp = b"bomb\0\0".to_vec();
    iccp.extend(zlib_repeating(&vec![0u8; 1 << 20], inflated_mib));
    png_chunk(&mut out, b"iCCP", &iccp);
    png_chunk(&mut out, b"IDAT", &zlib_repeating(&[0, 200, 100, 50], 1));
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// A `width`×`height` 16-bit RGBA PNG, all zeros (transparent black): a tiny file whose pixels
/// take 8 bytes each once decoded.
pub fn png_rgba16_zeros(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    png_chunk(&mut out, b"IHDR", &ihdr(width, height, 16, 6));
    // Each row: filter type 0, then 8 zero bytes per pixel.
    let row = vec![0u8; 1 + width as usize * 8];
    let idat = zlib_repeating(&row, height as usize);
    // Real encoders split the stream; a single chunk must stay under 2^31 bytes anyway.
    for piece in idat.chunks(1 << 20) {
        png_chunk(&mut out, b"IDAT", piece);
    }
    png_chunk(&mut out, b"IEND", &[]);
    out
}

/// `jpeg` with `profile` embedded as APP2 `ICC_PROFILE` chunks right after SOI, split as the
/// spec says (at most 65519 bytes of profile per chunk, sequence numbers from 1, chunk count).
pub fn jpeg_with_icc(jpeg: &[u8], profile: &[u8]) -> Vec<u8> {
    const PER_CHUNK: usize = 65519;
    let chunks: Vec<&[u8]> = profile.chunks(PER_CHUNK).collect();
    assert!(
        chunks.len() <= 255,
        "an ICC profile fits in 255 APP2 chunks"
    );
    let mut out = jpeg[..2].to_vec();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut payload = b"ICC_PROFILE\0".to_vec();
        payload.extend_from_slice(&[(i + 1) as u8, chunks.len() as u8]);
        payload.extend_from_slice(chunk);
        out.extend_from_slice(&[0xFF, 0xE2]);
        out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        out.extend(payload);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A plausible ICC header of `len` bytes for an RGB display profile: size field, `acsp`
/// signature, no tags. Not a usable profile, but one the engine's checks take for one.
pub fn icc_profile(len: usize) -> Vec<u8> {
    let mut icc = vec![0u8; len.max(132)];
    let len = icc.len() as u32;
    icc[0..4].copy_from_slice(&len.to_be_bytes());
    icc[12..16].copy_from_slice(b"mntr");
    icc[16..20].copy_from_slice(b"RGB ");
    icc[20..24].copy_from_slice(b"XYZ ");
    icc[36..40].copy_from_slice(b"acsp");
    icc
}

/// Peak and current resident memory of this process, in bytes (`VmHWM`, `VmRSS`).
pub fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches(" kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map_or(0, |kib| kib * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}
