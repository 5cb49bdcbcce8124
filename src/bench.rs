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
    /// The quality pass's figures, when it ran.
    pub quality: Option<QualityReport>,
}

/// The worst figures of the quality pass (`resize::quality`), measured after the timed loop.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityReport {
    /// The lowest luma PSNR of any variant, in dB, and which (`SET/FILE VARIANT`).
    pub worst_psnr_db: f64,
    pub worst_psnr_of: String,
    /// The largest drop below the recorded figure (negative: every variant gained), and which;
    /// None when no photo of the folder has a recorded figure.
    pub worst_drop: Option<(f64, String)>,
    /// The same for the chroma PSNR, where a chroma figure is recorded.
    pub worst_chroma_drop: Option<(f64, String)>,
}

impl fmt::Display for QualityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quality: worst luma PSNR {:.2} dB ({})",
            self.worst_psnr_db, self.worst_psnr_of
        )?;
        match &self.worst_drop {
            Some((db, of)) => write!(
                f,
                ", worst drop below the recorded figure {db:.2} dB ({of}; allowed {:.1})",
                resize::quality::ALLOWED_DROP_DB
            ),
            None => write!(f, ", no recorded figures for these photos"),
        }?;
        if let Some((db, of)) = &self.worst_chroma_drop {
            write!(f, ", worst chroma drop {db:.2} dB ({of})")?;
        }
        Ok(())
    }
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

/// What to measure besides throughput.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// Write the variants here, to look at them.
    pub out: Option<&'a Path>,
    /// After the timed loop, measure every JPEG variant's quality (`resize::quality`).
    pub quality: bool,
    /// Print each photo's decode, resize and encode times (from `resize::Timings`).
    pub per_photo: bool,
    /// Also write each variant's figure here as CSV (`photo,variant,psnr_db`), the format of
    /// the recorded figures.
    pub quality_csv: Option<&'a Path>,
}

/// Processes every JPEG/PNG/WebP in `dir` with variants named by size (e.g. "1280", "320"),
/// `threads` images at a time. Prints the report line, then the quality line when asked.
pub fn run(
    dir: &Path,
    sizes: &[u32],
    threads: usize,
    options: &Options<'_>,
) -> anyhow::Result<BenchReport> {
    let out = options.out;
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
                        if options.per_photo {
                            let t = processed.timings;
                            println!(
                                "{}: decode {:.1} ms, resize {:.1} ms, encode {:.1} ms",
                                path.display(),
                                t.decode.as_secs_f64() * 1e3,
                                t.resize.as_secs_f64() * 1e3,
                                t.encode.as_secs_f64() * 1e3
                            );
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
    let mut report = BenchReport {
        images: files.len(),
        seconds,
        images_per_second: files.len() as f64 / seconds,
        megapixels_per_second: megapixels / seconds,
        // Read before the quality pass, whose full-size reference decodes would count too.
        peak_rss_kib: peak_rss_kib(),
        quality: None,
    };
    println!("{report}");
    if options.quality {
        let quality = quality_pass(dir, &files, &specs, &settings, options.quality_csv)?;
        println!("{quality}");
        report.quality = Some(quality);
    }
    Ok(report)
}

/// Runs the engine again over `files`, untimed, and measures each JPEG variant.
fn quality_pass(
    dir: &Path,
    files: &[PathBuf],
    specs: &[VariantSpec],
    settings: &Settings,
    csv: Option<&Path>,
) -> anyhow::Result<QualityReport> {
    let set = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let mut lines = String::from("photo,variant,psnr_db,chroma_psnr_db\n");
    let mut worst_psnr: Option<(f64, String)> = None;
    let mut worst_drop: Option<(f64, String)> = None;
    let mut worst_chroma_drop: Option<(f64, String)> = None;
    let keep_worst = |worst: &mut Option<(f64, String)>, drop: f64, of: &str| {
        if !matches!(worst, Some((db, _)) if *db >= drop) {
            *worst = Some((drop, of.to_owned()));
        }
    };
    for path in files {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if resize::Format::sniff(&bytes) != Some(resize::Format::Jpeg) {
            continue;
        }
        let processed = resize::process(&bytes, &[], specs, settings)
            .with_context(|| format!("processing {}", path.display()))?;
        let figures = resize::quality::measure(&bytes, &processed)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("measuring {}", path.display()))?;
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let photo = format!("{set}/{file}");
        for figure in figures {
            let of = format!("{photo} {}", figure.name);
            lines.push_str(&format!(
                "{photo},{},{:.2},{:.2}\n",
                figure.name, figure.psnr_db, figure.chroma_psnr_db
            ));
            // The lowest PSNR is the worst: kept as the largest "drop" below zero.
            keep_worst(&mut worst_psnr, -figure.psnr_db, &of);
            if let Some(recorded) = resize::quality::recorded(&photo, &figure.name) {
                keep_worst(&mut worst_drop, recorded.psnr_db - figure.psnr_db, &of);
                if let Some(chroma) = recorded.chroma_psnr_db {
                    keep_worst(&mut worst_chroma_drop, chroma - figure.chroma_psnr_db, &of);
                }
            }
        }
    }
    if let Some(csv) = csv {
        std::fs::write(csv, lines).with_context(|| format!("writing {}", csv.display()))?;
    }
    let Some((lowest, worst_psnr_of)) = worst_psnr else {
        bail!("no JPEG in {} to measure quality on", dir.display());
    };
    Ok(QualityReport {
        worst_psnr_db: -lowest,
        worst_psnr_of,
        worst_drop,
        worst_chroma_drop,
    })
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
