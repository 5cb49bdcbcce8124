//! How a process that runs the engine asks glibc's allocator to treat the engine's buffers.
//!
//! Every photo allocates the same few large buffers (the original's bytes, 3.5–14 MB for the
//! shared camera photos; the decoded planes; the variants) and frees them when it is done.
//! glibc serves a large allocation from a fresh mapping until its sliding threshold has grown
//! past it, and hands free memory at the top of its heap back to the kernel beyond twice that
//! threshold, so the next photo faults in (and the kernel zeroes) much the same memory again:
//! 14,900 page faults over the 8 camera photos. With buffers up to 32 MiB taken from the heap
//! from the start (`M_MMAP_THRESHOLD`; 32 MiB is also where glibc's sliding threshold stops)
//! and up to 64 MiB of free heap kept (`M_TRIM_THRESHOLD`): 6,300 faults, and the set runs
//! 0.7–4.4 % faster on one core (three alternating `gallery bench` runs), peak RSS unchanged.
//! The real set runs 5 % faster, its peak RSS 112 → 128 MiB: a progressive photo's coefficient
//! buffers now stay in the heap for the next photo. The memory kept is what earlier photos
//! used, so a worker's RSS between jobs stays near its peak (a 50 MP drain at concurrency 2:
//! 134 MiB for `gallery worker`, 153 MiB for `gallery serve`).
//!
//! That memory is kept per arena, and glibc makes up to 8 arenas per core, one for each thread
//! that finds the others busy: over a day the engine's buffers pass through most of them (the
//! blocking pool's threads come and go), and each keeps what they left. So the arenas are
//! capped at one per core. Measured on 2 cores, `gallery serve --concurrency 2` given ten
//! bursts of every shared photo (23) 12 s apart (the pipeline bench's `bursts` line): RSS
//! after the bursts 312, 449, 538, 604, 637, 661, 680, 695, 713, 731 MiB and still growing with
//! glibc's default; 88-112 MiB throughout (peak 226) with the cap, at the same drain rate and
//! CPU per photo; the 50 MP drain's peak 111 → 76-86 MiB.

/// Sets the allocator's thresholds and arena count; call at the start of the process, before
/// other threads.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |cores| cores.get());
        let arenas = std::os::raw::c_int::try_from(cores).unwrap_or(8);
        // SAFETY: mallopt only sets three of glibc's tuning parameters; called before the
        // process starts threads, as glibc asks.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
            libc::mallopt(libc::M_ARENA_MAX, arenas);
        }
    }
}
