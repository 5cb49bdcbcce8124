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
    /// The original's length in bytes, from the photo's record, so the worker can read it in
    /// parts at once (`ObjectStore::get_sized`). Jobs from before it read it whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_bytes: Option<u64>,
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
            original_bytes: Some(photo.bytes).filter(|&bytes| bytes > 0),
        }
    }

    pub fn next_attempt(&self) -> Self {
        Job {
            attempt: self.attempt + 1,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_from_before_the_original_length_reads_it_whole() {
        let id = PhotoId::new();
        let older =
            format!(r#"{{"photo_id":"{id}","ops":[],"attempt":2,"lane":"bulk","baseline":1}}"#);
        let job: Job = serde_json::from_str(&older).expect("an older job parses");
        assert_eq!(job.original_bytes, None);
        assert_eq!((job.attempt, job.lane, job.baseline), (2, Lane::Bulk, 1));
        let sized = Job {
            original_bytes: Some(3_693_928),
            ..job
        };
        let json = serde_json::to_string(&sized).expect("json");
        assert_eq!(serde_json::from_str::<Job>(&json).expect("parses"), sized);
    }
}
