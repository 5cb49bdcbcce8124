//! Bulk import: the API records each original's SHA-256 and finds photos by it, and
//! `gallery import` uploads a folder through the API, skipping what the gallery already has,
//! so an import killed half way and run again uploads nothing twice.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{
    jpeg_fixture, signal, spawn_app, spawn_web_only_with, temp_data_dir, Api, BackendSet,
};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The ids `GET /api/photos?sha256=HASH` answers, newest first.
async fn ids_with_hash(api: &Api, hash: &str) -> Vec<String> {
    api.list(&format!("?sha256={hash}")).await["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|photo| photo["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn photos_are_found_by_the_sha256_of_their_original(set: BackendSet) {
    let app = spawn_app(set).await;
    let bytes = jpeg_fixture(640, 480);
    let hash = sha256_hex(&bytes);
    assert_eq!(ids_with_hash(&app, &hash).await, Vec::<String>::new());

    let first = app.upload_ok("a.jpg", bytes.clone(), None).await;
    // Processing rewrites the record: the hash stays.
    let photo = app.wait_done(&first).await;
    assert_eq!(photo["sha256"], hash.as_str(), "{photo}");
    assert_eq!(ids_with_hash(&app, &hash).await, [first.as_str()]);
    assert_eq!(
        ids_with_hash(&app, &hash.to_ascii_uppercase()).await,
        [first.as_str()],
        "either case"
    );
    let other = jpeg_fixture(64, 48);
    assert_eq!(ids_with_hash(&app, &sha256_hex(&other)).await.len(), 0);

    // The same file again is a second photo (uploads are not refused for it): both found.
    let second = app.upload_ok("again.jpg", bytes.clone(), None).await;
    assert_eq!(
        ids_with_hash(&app, &hash).await,
        [second.clone(), first.clone()]
    );
    assert_eq!(
        app.list(&format!("?sha256={hash}&limit=1")).await["photos"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Deleting a photo forgets its hash.
    let response = app
        .client
        .delete(app.url(&format!("/api/photos/{second}")))
        .send()
        .await
        .expect("delete");
    assert_eq!(response.status(), 204);
    assert_eq!(ids_with_hash(&app, &hash).await, [first]);

    for bad in ["abc", &"z".repeat(64), &"a".repeat(65)] {
        let response = app
            .client
            .get(app.url(&format!("/api/photos?sha256={bad}")))
            .send()
            .await
            .expect("list");
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "bad_sha256", "{body}");
    }
    let response = app
        .anonymous()
        .client
        .get(app.url(&format!("/api/photos?sha256={hash}")))
        .send()
        .await
        .expect("list");
    assert_eq!(response.status(), 401, "only for logged-in callers");
}

on_both_backends!(photos_are_found_by_the_sha256_of_their_original);

/// How many real photos the import test sends, and how many it kills the first run after.
const PHOTOS: usize = 40;
const KILL_AFTER: usize = 15;

/// The real photos of `../shared/photos` (fetched once per machine into `target/photos`):
/// the wallpapers, the small ones.
fn real_photos() -> Vec<PathBuf> {
    // Both backend sets' tests may ask at once; the script is not safe to run twice at once.
    static FETCHING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = FETCHING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::new("bash")
        .arg(root.join("../shared/photos/fetch.sh"))
        .arg(root.join("target/photos"))
        .current_dir(root)
        .output()
        .expect("run ../shared/photos/fetch.sh");
    assert!(
        output.status.success(),
        "../shared/photos/fetch.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let real = root.join("target/photos/real");
    let mut photos: Vec<PathBuf> = std::fs::read_dir(&real)
        .expect("target/photos/real")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            // The 5K ones are 2 to 5 MB each: the 2560×1600 ones keep the test quick.
            name.ends_with(".jpg") && !name.contains("_5k")
        })
        .collect();
    photos.sort();
    assert!(photos.len() >= 4, "too few photos in {}", real.display());
    photos
}

/// A JPEG with a comment segment (COM) right after its start: the same photo, other bytes.
fn with_comment(jpeg: &[u8], comment: &str) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(comment.as_bytes());
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A folder as people have them: `PHOTOS` distinct real photos spread over subfolders (the
/// wallpapers, and copies of them that differ by a JPEG comment), three files that are not
/// photos the gallery takes, and a text file the import leaves alone. Answers the folder and
/// the photos' hashes.
fn photo_folder() -> (PathBuf, Vec<String>) {
    let sources = real_photos();
    let dir = temp_data_dir();
    let places = ["", "2023", "2024/summer", "2024"];
    let mut hashes = Vec::new();
    for n in 0..PHOTOS {
        let source = &sources[n % sources.len()];
        let copy = n / sources.len();
        let place = dir.join(places[copy % places.len()]);
        std::fs::create_dir_all(&place).expect("folder");
        let stem = source.file_stem().and_then(|s| s.to_str()).expect("name");
        // One extension in capitals, as some cameras write them.
        let extension = if copy == 3 { "JPG" } else { "jpg" };
        let bytes = std::fs::read(source).expect("photo");
        let bytes = match copy {
            0 => bytes,
            copy => with_comment(&bytes, &format!("copy {copy}")),
        };
        hashes.push(sha256_hex(&bytes));
        std::fs::write(place.join(format!("{stem}-{copy}.{extension}")), bytes).expect("write");
    }
    std::fs::write(dir.join("notes.jpg"), b"a shopping list, not a photo").expect("write");
    std::fs::write(dir.join("empty.png"), b"").expect("write");
    // A JPEG's start and then nothing: its header never says how large it is.
    let cut = [
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
    ];
    std::fs::write(dir.join("2024/cut.jpg"), cut).expect("write");
    std::fs::write(dir.join("2023/readme.txt"), b"not an image").expect("write");
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), PHOTOS, "the photos are distinct");
    (dir, hashes)
}

/// `gallery import DIR --server ADDRESS`, its stdout a pipe, with only `env` of the
/// `GALLERY_*` variables.
fn start_import(api: &Api, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gallery"));
    for (name, _) in std::env::vars() {
        if name.starts_with("GALLERY_") {
            command.env_remove(name);
        }
    }
    command
        .arg("import")
        .arg(dir)
        .args(["--server", &api.address])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gallery import")
}

/// The lines a child writes to stdout, as they come (read on a thread of their own).
fn stdout_lines(child: &mut Child) -> Receiver<String> {
    let stdout = child.stdout.take().expect("stdout");
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    receive
}

/// Runs an import to its end (2 minutes at most): its exit status and stdout.
async fn run_import(
    api: &Api,
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (ExitStatus, String) {
    let mut child = start_import(api, dir, args, env);
    let lines = stdout_lines(&mut child);
    let started = Instant::now();
    // Polled, not waited on: the gallery answering it runs on this very thread.
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the import never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let mut stdout = String::new();
    // The reader thread ends with the pipe, after the last line.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        stdout.push_str(&line);
        stdout.push('\n');
    }
    assert!(stderr.is_empty(), "the import wrote to stderr: {stderr}");
    (status, stdout)
}

/// The lines of `output` that start with `word`.
fn lines_starting<'a>(output: &'a str, word: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter(|line| line.starts_with(word))
        .collect()
}

async fn an_import_killed_half_way_and_run_again_has_every_photo_once(set: BackendSet) {
    // No worker: what is tested is what gets in, and the two cores go to the uploads.
    let app = spawn_web_only_with(set, |_| {}).await;
    let token = app.token.clone().expect("token");
    let (dir, hashes) = photo_folder();
    let env = [("GALLERY_TOKEN", token.as_str())];

    // The first run is killed (-9) once it has said "uploaded" KILL_AFTER times.
    let mut first = start_import(&app, &dir, &["--jobs", "4"], &env);
    let lines = stdout_lines(&mut first);
    let mut said = Vec::new();
    let started = Instant::now();
    while lines_starting(&said.join("\n"), "uploaded ").len() < KILL_AFTER {
        match lines.try_recv() {
            Ok(line) => said.push(line),
            Err(mpsc::TryRecvError::Empty) => {
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "the first run said only:\n{}",
                    said.join("\n")
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(mpsc::TryRecvError::Disconnected) => {
                panic!("the first run ended early:\n{}", said.join("\n"))
            }
        }
    }
    signal(&first, "KILL");
    let _ = first.wait();
    let said = said.join("\n");
    assert!(
        !said.contains(" uploaded, "),
        "killed before its summary:\n{said}"
    );

    // Run again: only the rest goes, and the three files that are not photos are refused.
    let (status, output) = run_import(&app, &dir, &[], &env).await;
    assert_eq!(status.code(), Some(1), "something was refused:\n{output}");
    let uploaded = lines_starting(&output, "uploaded ");
    let present: Vec<&str> = lines_starting(&output, "skipped ")
        .into_iter()
        .filter(|line| line.ends_with(" (already in the gallery)"))
        .collect();
    assert!(present.len() >= KILL_AFTER, "{output}");
    assert_eq!(uploaded.len() + present.len(), PHOTOS, "{output}");
    let mut refused = lines_starting(&output, "refused ");
    refused.sort();
    assert_eq!(refused.len(), 3, "{output}");
    for (line, name, code) in [
        (refused[0], "2024/cut.jpg", "(bad_image)"),
        (refused[1], "empty.png", "(empty_file)"),
        (refused[2], "notes.jpg", "(unsupported_type)"),
    ] {
        assert!(
            line.starts_with(&format!("refused {name}: ")) && line.ends_with(code),
            "{line}"
        );
        // The summary names it again, with its reason.
        assert!(output.contains(&format!("\n  {line}\n")), "{output}");
    }
    assert!(!output.contains("readme.txt"), "{output}");
    assert!(
        output.contains("3 refused, 0 failed"),
        "the summary counts them:\n{output}"
    );
    // Plain lines when stdout is not a terminal: no bar, no escape codes.
    assert!(
        !output.contains('\r') && !output.contains('\u{1b}'),
        "{output:?}"
    );

    // Every photo is in the gallery exactly once, and nothing else is.
    for hash in &hashes {
        assert_eq!(ids_with_hash(&app, hash).await.len(), 1, "{hash}");
    }
    let listed = app.list("?limit=100").await;
    assert_eq!(listed["photos"].as_array().map(Vec::len), Some(PHOTOS));

    // Once more, with the token in a file: nothing left to send.
    let token_file = dir.join("token");
    std::fs::write(&token_file, &token).expect("token file");
    let token_file = token_file.to_string_lossy().into_owned();
    let (status, output) = run_import(&app, &dir, &["--token-file", &token_file], &[]).await;
    assert_eq!(status.code(), Some(1), "{output}");
    assert_eq!(lines_starting(&output, "uploaded ").len(), 0, "{output}");
    assert_eq!(
        lines_starting(&output, "skipped ").len(),
        PHOTOS,
        "{output}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An import that cannot work says why at once and exits 1, having sent nothing.
async fn an_import_without_a_valid_token_sends_nothing(set: BackendSet) {
    let app = spawn_web_only_with(set, |_| {}).await;
    let dir = temp_data_dir();
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::write(dir.join("a.jpg"), jpeg_fixture(64, 48)).expect("write");
    for env in [vec![], vec![("GALLERY_TOKEN", "not-a-token")]] {
        let mut child = start_import(&app, &dir, &[], &env);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        assert_eq!(status.code(), Some(1), "{stderr}");
        let expected = if env.is_empty() {
            "GALLERY_TOKEN"
        } else {
            "unauthorized"
        };
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            !stderr.contains("not-a-token"),
            "the token is never shown: {stderr}"
        );
    }
    assert_eq!(app.list("").await["photos"], serde_json::json!([]));
    let _ = std::fs::remove_dir_all(&dir);
}

/// On a terminal (`script` gives it one), the import draws its bar instead of a line per file,
/// and still prints what was refused and the summary.
#[tokio::test]
async fn on_a_terminal_the_import_draws_a_progress_bar() {
    let app = spawn_web_only_with(BackendSet::Embedded, |_| {}).await;
    let dir = temp_data_dir();
    std::fs::create_dir_all(&dir).expect("folder");
    std::fs::write(dir.join("a.jpg"), jpeg_fixture(640, 480)).expect("write");
    std::fs::write(dir.join("b.jpg"), jpeg_fixture(480, 640)).expect("write");
    std::fs::write(dir.join("notes.jpg"), b"not a photo").expect("write");
    let command = format!(
        "{} import {} --server {}",
        env!("CARGO_BIN_EXE_gallery"),
        dir.display(),
        app.address
    );
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("GALLERY_TOKEN", app.token.clone().expect("token"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script (util-linux)");
    let lines = stdout_lines(&mut child);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output: Vec<String> = lines.iter().collect();
    let output = output.join("\n");
    assert_eq!(status.code(), Some(1), "{output}");
    assert!(
        output.contains('\u{1b}'),
        "drawn with escape codes: {output:?}"
    );
    assert!(
        !output.contains("uploaded a.jpg"),
        "no line per file: {output:?}"
    );
    assert!(output.contains("refused notes.jpg: "), "{output:?}");
    assert!(output.contains("2 uploaded, "), "{output:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

on_both_backends!(
    an_import_killed_half_way_and_run_again_has_every_photo_once,
    an_import_without_a_valid_token_sends_nothing,
);
