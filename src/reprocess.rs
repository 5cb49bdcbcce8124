//! Processing photos again that are already in the gallery, on the bulk lane: after the
//! variant list changed (`GALLERY_VARIANTS`), or to give failed photos another go. One use
//! case for `gallery reprocess` (its progress bar: `startup::reprocess`) and the admin API
//! (`routes::admin`), which also retries one failed photo on the upload lane (`retry`).
//!
//! Which photos (`Scope`): `Missing`, every photo lacking a variant of the current list (or
//! holding one made for another size, `VariantSpec::made_for`) and every failed photo; `All`,
//! every photo. With `since`, only photos created at or after it.
//!
//! The rule that makes a run safe to interrupt and to run again: a photo that is queued or
//! processing is skipped ("in flight"), whatever its lane: its job is on its way, and the
//! worker makes every variant of its list. A photo is queued in three steps: its record is
//! set to `queued` on the bulk lane and marked not yet queued, in one write
//! (`PhotoIndex::requeue`); its job is published; the mark is cleared. Cut off anywhere, a
//! run leaves each photo untouched, or queued with its job, or marked: the web role's sweep
//! for stranded photos (`ingest::requeue_stranded`) publishes the job of a photo marked for
//! longer than `GALLERY_STRANDED_AFTER_S`, on the lane its record names. So a second run
//! queues only what the first did not reach, and once the first run's jobs are done, a second
//! `Missing` run queues nothing. (`All` has no such end: each run queues every photo that is
//! not in flight again.) A job published twice anyway is harmless: the worker skips a photo
//! that is already done.
//!
//! Nobody is notified about bulk work (the notifier skips the bulk lane), and a reprocessed
//! photo gets its full share of attempts again (`Job::baseline`).

use chrono::{DateTime, NaiveDate, Utc};
use futures_util::stream::{self, StreamExt};

use crate::backends::Backends;
use crate::domain::{Job, Lane, Photo, PhotoId, Status, VariantSpec};
use crate::error_code::ErrorCode;

/// Photos queued at once: each waits for the broker's confirm, so a few side by side keep a
/// large gallery from taking a round trip per photo in turn.
const AT_ONCE: usize = 8;
/// Photos read per page of the index.
const PAGE: usize = 100;

/// Which photos a run reprocesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Those lacking a variant of the current list, and the failed ones.
    Missing,
    /// Every photo.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub scope: Scope,
    /// Only photos created at or after this.
    pub since: Option<DateTime<Utc>>,
}

/// Why a reprocessing or a retry was not done.
#[derive(Debug, thiserror::Error)]
pub enum ReprocessError {
    #[error("no photo with id '{0}'")]
    NotFound(String),
    #[error("photo {id} is {}, not failed: only a failed photo is retried", status.as_str())]
    NotFailed { id: PhotoId, status: Status },
    /// A backend failed at `step`; the cause is for the log, never for the client.
    #[error("{step} failed; try again later")]
    Unavailable {
        step: &'static str,
        #[source]
        cause: anyhow::Error,
    },
}

impl ReprocessError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ReprocessError::NotFound(_) => ErrorCode::NotFound,
            ReprocessError::NotFailed { .. } => ErrorCode::NotFailed,
            ReprocessError::Unavailable { .. } => ErrorCode::Unavailable,
        }
    }

    fn unavailable(step: &'static str) -> impl FnOnce(anyhow::Error) -> ReprocessError {
        move |cause| ReprocessError::Unavailable { step, cause }
    }
}

/// A `since` as people write it: a day (`2024-05-01`, from its start, UTC) or an RFC 3339
/// time (`2024-05-01T12:00:00+02:00`).
pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, String> {
    let raw = raw.trim();
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| format!("'{raw}' is not a date (2024-05-01) or a time (2024-05-01T12:00:00Z)"))
}

/// What a run does with one photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Queue,
    /// Queued or processing already: skipped, its job is on its way.
    InFlight,
    /// Outside the request, or nothing to do.
    Nothing,
}

fn need(photo: &Photo, request: &Request, variants: &[VariantSpec]) -> Need {
    if request.since.is_some_and(|since| photo.created_at < since) {
        return Need::Nothing;
    }
    if photo.status.in_flight() {
        return Need::InFlight;
    }
    let wanted = match request.scope {
        Scope::All => true,
        Scope::Missing => {
            photo.status == Status::Failed || variants.iter().any(|spec| !spec.made_for(photo))
        }
    };
    if wanted {
        Need::Queue
    } else {
        Need::Nothing
    }
}

/// The photos a run would queue, and those it skips because they are in flight; newest
/// first.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub queue: Vec<PhotoId>,
    pub in_flight: Vec<PhotoId>,
}

/// Reads the whole index, a page at a time, for what `request` asks.
pub async fn plan(
    backends: &Backends,
    variants: &[VariantSpec],
    request: &Request,
) -> Result<Plan, ReprocessError> {
    let mut plan = Plan::default();
    let mut cursor = None;
    loop {
        let page = backends
            .index
            .list(PAGE, cursor.as_ref())
            .await
            .map_err(ReprocessError::unavailable("listing the photos"))?;
        for photo in page.photos {
            match need(&photo, request, variants) {
                Need::Queue => plan.queue.push(photo.id),
                Need::InFlight => plan.in_flight.push(photo.id),
                Need::Nothing => {}
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(plan),
        }
    }
}

/// Queues the planned photos on the bulk lane, a few at a time, reading each afresh: one
/// that changed since the plan (in flight now, no longer in need, gone) is left alone.
/// `queued` hears of each photo queued, with the count so far. Answers the photos queued; on
/// a failure, stops and answers it (what was queued stays queued; a run again carries on).
pub async fn enqueue(
    backends: &Backends,
    variants: &[VariantSpec],
    request: &Request,
    ids: &[PhotoId],
    mut queued: impl FnMut(usize),
) -> Result<Vec<PhotoId>, ReprocessError> {
    let mut done = Vec::new();
    let mut each = stream::iter(ids.iter().cloned())
        .map(|id| requeue_if_needed(backends, variants, request, id))
        .buffer_unordered(AT_ONCE);
    while let Some(outcome) = each.next().await {
        if let Some(photo) = outcome? {
            done.push(photo.id);
            queued(done.len());
        }
    }
    Ok(done)
}

/// Queues the photo on the bulk lane if, read now, it still needs it.
async fn requeue_if_needed(
    backends: &Backends,
    variants: &[VariantSpec],
    request: &Request,
    id: PhotoId,
) -> Result<Option<Photo>, ReprocessError> {
    let photo = backends
        .index
        .get(&id)
        .await
        .map_err(ReprocessError::unavailable("reading the photo"))?;
    match photo {
        Some(photo) if need(&photo, request, variants) == Need::Queue => {
            requeue(backends, &photo, Lane::Bulk).await
        }
        _ => Ok(None),
    }
}

/// What a run did: the photos it queued, and those it left because they were in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub queued: usize,
    pub in_flight: usize,
}

/// `plan`, then `enqueue`, in one go (the admin API).
pub async fn run(
    backends: &Backends,
    variants: &[VariantSpec],
    request: &Request,
) -> Result<Summary, ReprocessError> {
    let plan = plan(backends, variants, request).await?;
    let queued = enqueue(backends, variants, request, &plan.queue, |_| {}).await?;
    tracing::info!(
        queued = queued.len(),
        in_flight = plan.in_flight.len(),
        "photos queued for reprocessing"
    );
    Ok(Summary {
        queued: queued.len(),
        in_flight: plan.in_flight.len(),
    })
}

/// Queues one failed photo again, on the upload lane: someone is waiting for it.
pub async fn retry(backends: &Backends, id: &str) -> Result<Photo, ReprocessError> {
    let not_found = || ReprocessError::NotFound(id.to_owned());
    let id = PhotoId::parse(id).map_err(|_| not_found())?;
    let photo = backends
        .index
        .get(&id)
        .await
        .map_err(ReprocessError::unavailable("reading the photo"))?
        .ok_or_else(not_found)?;
    if photo.status != Status::Failed {
        return Err(ReprocessError::NotFailed {
            id,
            status: photo.status,
        });
    }
    requeue(backends, &photo, Lane::Upload)
        .await?
        .ok_or_else(not_found)
}

/// Queues `photo` on `lane`: recorded as queued and marked, published, unmarked (see the
/// module's doc). Answers the photo as queued, or `None` when it is gone.
async fn requeue(
    backends: &Backends,
    photo: &Photo,
    lane: Lane,
) -> Result<Option<Photo>, ReprocessError> {
    let mut queued = photo.clone();
    queued.status = Status::Queued;
    queued.lane = lane;
    queued.error = None;
    let recorded = backends
        .index
        .requeue(&queued)
        .await
        .map_err(ReprocessError::unavailable("recording the photo as queued"))?;
    if !recorded {
        return Ok(None);
    }
    // As an upload does: announced on the job's channel first, so pages see `photo.queued`
    // before a worker's `photo.processing`, and both wait for their confirms together.
    let job = Job::of(&queued);
    let (_, published) = tokio::join!(backends.announce(&queued), backends.queue.publish(&job));
    if let Err(error) = published {
        // Put back as it was, so the next run sees it as it is. Should that fail too, the
        // mark stays, and the sweep queues it.
        let restored = async {
            backends.index.update(photo).await?;
            backends.index.queued(&photo.id).await
        };
        match restored.await {
            Ok(()) => backends.announce(photo).await,
            Err(undo) => {
                tracing::warn!(id = %photo.id, "could not put a photo back after its job failed to queue (the sweep will queue it): {undo:#}")
            }
        }
        return Err(ReprocessError::unavailable("queueing the photo")(error));
    }
    if let Err(error) = backends.index.queued(&queued.id).await {
        // The job is queued: the sweep will queue it once more, which a worker skips.
        tracing::warn!(id = %queued.id, "could not clear the photo's not-yet-queued mark: {error:#}");
    }
    Ok(Some(queued))
}

/// Where a run's photos stand: those still queued or processing, and how many of the others
/// failed. A photo deleted meanwhile counts as finished.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub waiting: Vec<PhotoId>,
    pub failed: usize,
}

/// Reads back from the index how the photos `ids` are doing.
pub async fn progress(backends: &Backends, ids: &[PhotoId]) -> anyhow::Result<Progress> {
    let mut progress = Progress::default();
    for id in ids {
        match backends.index.get(id).await? {
            Some(photo) if photo.status.in_flight() => progress.waiting.push(photo.id),
            Some(photo) if photo.status == Status::Failed => progress.failed += 1,
            _ => {}
        }
    }
    Ok(progress)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::VariantInfo;

    fn photo(status: Status, variants: &[(&str, u32, u32)]) -> Photo {
        Photo {
            id: PhotoId::new(),
            filename: "a.jpg".into(),
            content_type: "image/jpeg".into(),
            bytes: 1,
            width: 1600,
            height: 1200,
            status,
            ops: vec![],
            created_at: "2024-05-01T10:00:00Z".parse().expect("time"),
            error: None,
            attempts: 1,
            deliveries: 1,
            variants: variants
                .iter()
                .map(|(name, width, height)| {
                    let info = VariantInfo {
                        width: *width,
                        height: *height,
                        content_type: "image/jpeg".into(),
                        bytes: 1,
                        digest: None,
                    };
                    ((*name).to_owned(), info)
                })
                .collect::<BTreeMap<_, _>>(),
            lane: Lane::Upload,
            notify: Default::default(),
            owner: None,
            sha256: None,
        }
    }

    const MISSING: Request = Request {
        scope: Scope::Missing,
        since: None,
    };

    #[test]
    fn missing_means_a_variant_absent_or_of_another_size_or_failed() {
        let list = VariantSpec::parse_list("preview:1280,thumb:320").expect("list");
        let complete = [("preview", 1280, 960), ("thumb", 320, 240)];
        assert_eq!(
            need(&photo(Status::Done, &complete), &MISSING, &list),
            Need::Nothing
        );
        let with_mini = VariantSpec::parse_list("preview:1280,thumb:320,mini:96").expect("list");
        assert_eq!(
            need(&photo(Status::Done, &complete), &MISSING, &with_mini),
            Need::Queue
        );
        let bigger_thumb = VariantSpec::parse_list("preview:1280,thumb:400").expect("list");
        assert_eq!(
            need(&photo(Status::Done, &complete), &MISSING, &bigger_thumb),
            Need::Queue
        );
        assert_eq!(
            need(&photo(Status::Failed, &[]), &MISSING, &list),
            Need::Queue
        );
        for status in [Status::Queued, Status::Processing] {
            assert_eq!(need(&photo(status, &[]), &MISSING, &list), Need::InFlight);
        }
        let all = Request {
            scope: Scope::All,
            since: None,
        };
        assert_eq!(
            need(&photo(Status::Done, &complete), &all, &list),
            Need::Queue
        );
    }

    #[test]
    fn a_small_photo_keeps_its_own_size_and_since_keeps_newer_photos() {
        let list = VariantSpec::parse_list("preview:1280,thumb:320").expect("list");
        let mut small = photo(Status::Done, &[("preview", 300, 200), ("thumb", 300, 200)]);
        (small.width, small.height) = (300, 200);
        assert_eq!(need(&small, &MISSING, &list), Need::Nothing);

        let failed = photo(Status::Failed, &[]);
        let since = |raw: &str| Request {
            since: Some(parse_since(raw).expect("since")),
            ..MISSING
        };
        assert_eq!(need(&failed, &since("2024-05-01"), &list), Need::Queue);
        assert_eq!(
            need(&failed, &since("2024-05-01T10:00:00Z"), &list),
            Need::Queue
        );
        assert_eq!(need(&failed, &since("2024-05-02"), &list), Need::Nothing);
        assert_eq!(
            need(&failed, &since("2024-05-01T12:00:00+02:00"), &list),
            Need::Queue,
            "10:00 UTC is 12:00 in UTC+2"
        );
        assert!(parse_since("May 1st")
            .expect_err("refused")
            .contains("May 1st"));
    }
}
