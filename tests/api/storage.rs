//! Object storage on its own: what is stored is read back byte for byte, whatever its size,
//! by `get` and by `get_sized`. The S3 store reads an object of known length in ranged parts
//! side by side (`storage::s3`), so the sizes sit on and around the part boundaries, with
//! more parts than it reads at once; and a length that is wrong still reads the object.

use bytes::Bytes;
use gallery::storage::{FsStore, ObjectStore, S3Store};

use crate::helpers::{temp_data_dir, test_settings};

const MIB: usize = 1 << 20;

/// Bytes that differ from position to position, so a part read twice, dropped or put out of
/// order shows.
fn pattern(length: usize, seed: u64) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..length).map(|_| rng.u8(..)).collect::<Vec<u8>>().into()
}

async fn read(store: &dyn ObjectStore, key: &str, said: Option<u64>) -> Option<Bytes> {
    let read = match said {
        None => store.get(key).await,
        Some(said) => store.get_sized(key, said).await,
    };
    read.unwrap_or_else(|e| panic!("get {key}, said to be {said:?} bytes: {e:#}"))
}

async fn reads_back_what_it_stored(store: &dyn ObjectStore) {
    store.prepare().await.expect("store ready");
    let sizes = [0, 1, MIB - 1, MIB, MIB + 1, 5 * MIB + 17, 9 * MIB + 3];
    for (seed, size) in sizes.into_iter().enumerate() {
        let key = format!("storage-test/{size}");
        let bytes = pattern(size, seed as u64);
        store
            .put(&key, bytes.clone(), "application/octet-stream")
            .await
            .unwrap_or_else(|e| panic!("put {size} bytes: {e:#}"));
        let length = size as u64;
        // Unsaid, the right length, then lengths a record could wrongly hold.
        let wrong = [length / 2, length + (3 << 20), u64::MAX / 2];
        for said in [None, Some(length)].into_iter().chain(wrong.map(Some)) {
            let read = read(store, &key, said)
                .await
                .unwrap_or_else(|| panic!("the object of {size} bytes is missing"));
            assert_eq!(read.len(), size, "{size} bytes read, said {said:?}");
            assert!(read == bytes, "{size} bytes read different, said {said:?}");
        }
        store.delete(&key).await.expect("delete");
    }
    for said in [None, Some(5 << 20)] {
        let missing = read(store, "storage-test/never-stored", said).await;
        assert!(
            missing.is_none(),
            "a missing object reads as None, said {said:?}"
        );
    }
}

#[tokio::test]
async fn s3_reads_back_every_size_whole() {
    let settings = test_settings();
    let store = S3Store::new(settings.backends.s3.as_ref().expect("S3")).expect("store");
    reads_back_what_it_stored(&store).await;
}

#[tokio::test]
async fn files_read_back_every_size_whole() {
    let root = temp_data_dir();
    reads_back_what_it_stored(&FsStore::new(&root)).await;
    let _ = std::fs::remove_dir_all(root);
}
