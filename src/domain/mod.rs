//! The gallery's vocabulary: ids, file names, content hashes, photo records and their status,
//! the operations and variants a photo gets, processing jobs and events, and the people who own
//! photos.
//! Constructors reject invalid values so the rest of the code can trust what it holds. Nothing
//! here depends on another module of the crate: the engine, the backends and the routes all
//! speak these types.

mod content_hash;
mod event;
mod file_name;
mod id;
mod job;
mod op;
mod photo;
mod user;
mod variant;

pub use content_hash::ContentHash;
pub use event::{Event, EventKind};
pub use file_name::FileName;
pub use id::{InvalidId, PhotoId, RecordId, UserId};
pub use job::{Job, Lane};
pub use op::{Op, UnknownOp};
pub use photo::{Notify, Photo, Status, VariantInfo};
pub use user::{clean_name, Email, Lang, Owner, Role, User};
pub use variant::VariantSpec;
