//! Blocking store work (the embedded redb stores of `gallery serve`) run off the async
//! threads, so a slow disk never stalls request handling.

use std::sync::Arc;

/// Runs `work` on `shared` on tokio's blocking pool and answers its result.
pub async fn blocking<S, T>(
    shared: &Arc<S>,
    work: impl FnOnce(&S) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T>
where
    S: Send + Sync + 'static,
    T: Send + 'static,
{
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || work(&shared)).await?
}
