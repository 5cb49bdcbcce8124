//! `Job`: what the web role asks a worker to do with one stored photo.

use serde::{Deserialize, Serialize};

use super::{Op, PhotoId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub photo_id: PhotoId,
    pub ops: Vec<Op>,
    /// 1 for the first try; a retry is published with the next number.
    pub attempt: u32,
}

impl Job {
    pub fn first(photo_id: PhotoId, ops: Vec<Op>) -> Self {
        Job {
            photo_id,
            ops,
            attempt: 1,
        }
    }

    pub fn next_attempt(&self) -> Self {
        Job {
            attempt: self.attempt + 1,
            ..self.clone()
        }
    }
}
