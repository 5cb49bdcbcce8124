//! `gallery bench DIR`: runs exactly the worker's `resize::process()` over every image in a
//! folder and prints one line of throughput and peak memory, so the engine can be compared with
//! vipsthumbnail and Pillow (`shared/bench/peers.sh`) on the same photos and the same core.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::domain::VariantSpec;
use crate::resize::{self, Settings};

#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    pub images: usize,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Source megapixels (as stored) processed per second.
    pub megapixels_per_second: f64,
    /// VmHWM of this process, in KiB; None where /proc is unavailable.
    pub peak_rss_kib: Option<u64>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gallery: {} images in {:.2} s = {:.2} img/s, {:.1} MP/s, peak RSS {}",
            self.images,
            self.seconds,
            self.images_per_second,
            self.megapixels_per_second,
            match self.peak_rss_kib {
                Some(kib) => format!("{:.1} MiB", kib as f64 / 1024.0),
                None => "unknown".to_owned(),
            }
        )
    }
}

/// Processes every JPEG/PNG/WebP in `dir` with variants named by size (e.g. "1280", "320"),
/// `threads` images at a time, optionally writing the variants to `out`. Prints the report line.
pub fn run(
    dir: &Path,
    sizes: &[u32],
    threads: usize,
    out: Option<&Path>,
) -> anyhow::Result<BenchReport> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                matches!(
                    e.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "webp"
                )
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no JPEG, PNG or WebP files in {}", dir.display());
    }
    if let Some(out) = out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    }
    let specs: Vec<VariantSpec> = sizes
        .iter()
        .map(|&size| VariantSpec::new(&size.to_string(), size))
        .collect();
    let settings = Settings::default();

    let next = AtomicUsize::new(0);
    let megapixels = Mutex::new(0f64);
    let start = Instant::now();
    // Files are read inside the timed loop, one at a time per thread, as the worker would: the
    // peers read theirs inside their timings too, and holding all of them would inflate RSS.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    while let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let bytes = std::fs::read(path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        let probe = resize::probe(&bytes)
                            .with_context(|| format!("probing {}", path.display()))?;
                        let processed = resize::process(&bytes, &[], &specs, &settings)
                            .with_context(|| format!("processing {}", path.display()))?;
                        if let Ok(mut mp) = megapixels.lock() {
                            *mp += probe.pixels() as f64 / 1e6;
                        }
                        if let Some(out) = out {
                            write_variants(out, path, &processed)?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for worker in workers {
            worker
                .join()
                .map_err(|_| anyhow::anyhow!("bench worker panicked"))??;
        }
        Ok(())
    })?;
    let seconds = start.elapsed().as_secs_f64();
    let megapixels = megapixels.into_inner().unwrap_or_default();
    let report = BenchReport {
        images: files.len(),
        seconds,
        images_per_second: files.len() as f64 / seconds,
        megapixels_per_second: megapixels / seconds,
        peak_rss_kib: peak_rss_kib(),
    };
    println!("{report}");
    Ok(report)
}

fn write_variants(out: &Path, source: &Path, processed: &resize::Processed) -> anyhow::Result<()> {
    let stem = source
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("image");
    for variant in &processed.variants {
        let ext = if variant.content_type == "image/png" {
            "png"
        } else {
            "jpg"
        };
        let path = out.join(format!("{stem}.{}.{ext}", variant.name));
        std::fs::write(&path, &variant.bytes)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Peak resident set size (VmHWM) from /proc/self/status.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}
