//! `Job`: what the web role asks a worker to do with one stored photo, and the `Lane` it waits
//! in: new uploads always go ahead of bulk work (reprocessing).

use serde::{Deserialize, Serialize};

use super::{Op, Photo, PhotoId};

/// Which line a job waits in. A worker takes a bulk job only when no upload job waits, so a
/// new upload waits at most one job's time behind any amount of bulk work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    /// New uploads, and a single photo retried by an admin: someone is waiting for it.
    #[default]
    Upload,
    /// Reprocessing many photos at once (`gallery reprocess`): nobody waits for one of them.
    Bulk,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Upload, Lane::Bulk];

    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Upload => "upload",
            Lane::Bulk => "bulk",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub photo_id: PhotoId,
    pub ops: Vec<Op>,
    /// 1 for the first try; a retry is published with the next number.
    pub attempt: u32,
    /// Where the job waits; its retries wait in the same lane. Jobs from before lanes were
    /// uploads.
    #[serde(default)]
    pub lane: Lane,
    /// The photo's `deliveries` when this job was made: only the starts beyond it count
    /// against the attempt limit, so a photo processed before (reprocessed, or retried after
    /// it failed) gets its full share of attempts again.
    #[serde(default)]
    pub baseline: u32,
}

impl Job {
    /// The job that processes `photo` as it is recorded now: its ops, on the lane its record
    /// names, counting attempts from its deliveries so far. Every job starts here (an
    /// upload's, a reprocessed photo's, a stranded one's), so they all agree.
    pub fn of(photo: &Photo) -> Self {
        Job {
            photo_id: photo.id.clone(),
            ops: photo.ops.clone(),
            attempt: 1,
            lane: photo.lane,
            baseline: photo.deliveries,
        }
    }

    pub fn next_attempt(&self) -> Self {
        Job {
            attempt: self.attempt + 1,
            ..self.clone()
        }
    }
}
