//! The gallery's vocabulary: photo ids, photo records and their status, processing jobs.
//! Constructors reject invalid values so the rest of the code can trust what it holds.

mod event;
mod job;
mod photo;
mod photo_id;

pub use event::{Event, EventKind};
pub use job::Job;
pub use photo::{Notify, Photo, Status, VariantInfo};
pub use photo_id::PhotoId;
