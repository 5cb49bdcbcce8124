//! `/metrics` and the request and job logs. Scrape, upload, scrape again: every counter and
//! histogram moved by exactly what the upload and its job did, read from the exposition text
//! itself. On both backend sets in process (each app counts into its own registry), on a
//! real `gallery worker`'s health listener, and the request log of a real `gallery serve`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{
    admin_env, jpeg_fixture, spawn_app, spawn_web_only_with, temp_data_dir, Api, BackendSet,
    Logged, ADMIN_PASSWORD,
};
use crate::serve::free_port;

/// Every sample of one scrape, by metric name and labels.
#[derive(Debug)]
pub struct Scrape(Vec<(String, BTreeMap<String, String>, f64)>);

impl Scrape {
    /// `GET url`, which must answer 200 in Prometheus' text format.
    pub async fn of(url: &str) -> Scrape {
        let response = reqwest::get(url).await.expect("scrape");
        assert_eq!(response.status(), 200, "{url}");
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        Scrape::parse(&response.text().await.expect("body"))
    }

    /// Parses the text exposition format: `name{label="value",...} number`, comments skipped.
    pub fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let name_end = line.find(['{', ' ']).expect("a sample line");
            let name = line[..name_end].to_owned();
            let (labels, rest) = match line[name_end..].strip_prefix('{') {
                Some(inside) => parse_labels(inside, line),
                None => (BTreeMap::new(), &line[name_end..]),
            };
            let number = rest.split_whitespace().next().expect("a value");
            let value = match number {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line}")),
            };
            samples.push((name, labels, value));
        }
        Scrape(samples)
    }

    /// The sum of every sample named `name` whose labels include `labels`; 0 when none.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).is_some_and(|have| have == v))
            })
            .map(|(_, _, value)| value)
            .sum()
    }

    /// Whether any sample is named `name`.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _, _)| n == name)
    }
}

/// Parses `label="value",...}` (the text after a sample's `{`): the labels, and what follows
/// the closing brace.
fn parse_labels<'a>(inside: &'a str, line: &str) -> (BTreeMap<String, String>, &'a str) {
    let mut labels = BTreeMap::new();
    let mut chars = inside.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '}' => return (labels, &inside[at + 1..]),
            ',' => continue,
            first => {
                let mut key = String::from(first);
                for (_, c) in chars.by_ref() {
                    if c == '=' {
                        break;
                    }
                    key.push(c);
                }
                assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                let mut value = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => value.push('\n'),
                            Some(other) => value.push(other),
                            None => panic!("unfinished escape in {line}"),
                        },
                        '"' => break,
                        other => value.push(other),
                    }
                }
                labels.insert(key, value);
            }
        }
    }
    panic!("no closing brace in {line}");
}

const STAGES: [&str; 6] = ["fetch", "decode", "resize", "encode", "store", "record"];

/// What one upload of one photo, processed, moves on the process that ran its job.
fn assert_one_job(before: &Scrape, after: &Scrape) {
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert_eq!(delta("gallery_jobs_started_total", &[]), 1.0);
    assert_eq!(delta("gallery_jobs_done_total", &[]), 1.0);
    assert_eq!(delta("gallery_jobs_failed_total", &[]), 0.0);
    assert_eq!(delta("gallery_jobs_retried_total", &[]), 0.0);
    assert_eq!(delta("gallery_jobs_dead_lettered_total", &[]), 0.0);
    assert_eq!(delta("gallery_job_duration_seconds_count", &[]), 1.0);
    assert_eq!(
        delta("gallery_job_duration_seconds_bucket", &[("le", "+Inf")]),
        1.0
    );
    assert_timed_once_each(before, after, "gallery_job_stage_duration_seconds", &STAGES);
}

/// That the histogram `family` (by `stage`) timed each of `stages` exactly once between the
/// two scrapes, and nothing else.
fn assert_timed_once_each(before: &Scrape, after: &Scrape, family: &str, stages: &[&str]) {
    let delta = |suffix: &str, labels: &[(&str, &str)]| {
        let name = format!("{family}_{suffix}");
        after.value(&name, labels) - before.value(&name, labels)
    };
    for stage in stages {
        let stage = [("stage", *stage)];
        assert_eq!(delta("count", &stage), 1.0, "{family} {stage:?}");
        assert_eq!(
            delta("bucket", &[stage[0], ("le", "+Inf")]),
            1.0,
            "{family} {stage:?}"
        );
        assert!(
            delta("sum", &stage) > 0.0,
            "{family} {stage:?} took no time"
        );
    }
    assert_eq!(delta("count", &[]), stages.len() as f64, "{family}");
}

/// Scrapes `url` until its jobs-done counter reaches `done` (the worker counts a job right
/// after recording it, which a poll of the photo may see first).
pub async fn scrape_when_done(url: &str, done: f64) -> Scrape {
    for _ in 0..100 {
        let scrape = Scrape::of(url).await;
        if scrape.value("gallery_jobs_done_total", &[]) >= done {
            return scrape;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} never counted {done} jobs done");
}

async fn an_upload_and_its_job_move_every_count_by_exactly_what_they_did(set: BackendSet) {
    let app = spawn_app(set).await;
    let url = app.url("/metrics");
    let before = Scrape::of(&url).await;
    assert_eq!(
        before.value(
            "gallery_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let id = app
        .upload_ok("counted.jpg", jpeg_fixture(640, 480), None)
        .await;
    let refused = app
        .upload(&[("notes.txt", b"plain words".to_vec())], None)
        .await;
    assert_eq!(refused.status(), 415);
    app.wait_done(&id).await;
    // Waited on the registry itself, so that no scrape but the two counts itself.
    for _ in 0..100 {
        let now = Scrape::parse(&app.backends.metrics.render());
        if now.value("gallery_jobs_done_total", &[]) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = Scrape::of(&url).await;
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };

    assert_eq!(delta("gallery_uploads_accepted_total", &[]), 1.0);
    // Each step of accepting the one file is timed once; the refused file reached none.
    assert_timed_once_each(
        &before,
        &after,
        "gallery_upload_stage_duration_seconds",
        &["receive", "store", "record", "queue"],
    );
    // The web role reads the queue's depth per lane at each scrape; nothing waits now.
    let text = reqwest::get(&url)
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    for lane in ["upload", "bulk", "retrying", "dead"] {
        assert!(
            text.contains(&format!("gallery_queue_depth{{lane=\"{lane}\"}} 0")),
            "no depth for {lane}:\n{text}"
        );
    }
    assert_eq!(
        delta(
            "gallery_uploads_refused_total",
            &[("code", "unsupported_type")]
        ),
        1.0
    );
    assert_eq!(delta("gallery_uploads_refused_total", &[]), 1.0);
    let upload = |status| {
        [
            ("route", "/api/photos"),
            ("method", "POST"),
            ("status", status),
        ]
    };
    for status in ["202", "415"] {
        assert_eq!(
            delta("gallery_http_requests_total", &upload(status)),
            1.0,
            "{status}"
        );
        assert_eq!(
            delta(
                "gallery_http_request_duration_seconds_count",
                &upload(status)
            ),
            1.0
        );
        let [route, method, status] = upload(status);
        assert_eq!(
            delta(
                "gallery_http_request_duration_seconds_bucket",
                &[route, method, status, ("le", "+Inf")]
            ),
            1.0
        );
    }
    assert_eq!(
        delta("gallery_http_requests_total", &[("route", "/api/photos")]),
        2.0,
        "no other request counted against the upload route"
    );
    // The first scrape is counted; the second is not yet (it is counted once answered).
    let scrape = [("route", "/metrics"), ("method", "GET"), ("status", "200")];
    assert_eq!(delta("gallery_http_requests_total", &scrape), 1.0);
    // The photo polled by id: counted under its template, never its id.
    assert!(
        delta(
            "gallery_http_requests_total",
            &[("route", "/api/photos/{id}")]
        ) >= 1.0
    );
    assert!(!after
        .0
        .iter()
        .any(|(_, labels, _)| labels.values().any(|value| value.contains(&id))));
    assert_one_job(&before, &after);
}

on_both_backends!(an_upload_and_its_job_move_every_count_by_exactly_what_they_did);

/// The environment of a `gallery` child on `app`'s namespace, with its health listener on
/// `port` and its log in JSON.
fn child_env(app: &crate::helpers::TestApp, port: u16) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = app
        .env()
        .into_iter()
        .filter(|(name, _)| *name != "GALLERY_HEALTH_LISTEN")
        .collect();
    env.push(("GALLERY_HEALTH_LISTEN", format!("127.0.0.1:{port}")));
    env.push(("GALLERY_LOG_FORMAT", "json".into()));
    env
}

/// Every line of a JSON log, parsed (each must be an object).
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
            assert!(value.is_object(), "{line}");
            value
        })
        .collect()
}

#[tokio::test]
async fn a_worker_process_serves_its_own_counts_on_its_health_listener() {
    let app = spawn_web_only_with(BackendSet::Services, |_| {}).await;
    let port = free_port();
    let worker = Logged::start(
        "info",
        &["worker", "--concurrency", "1"],
        &child_env(&app, port),
    );
    assert!(
        worker.wait_for("worker consuming jobs").await,
        "{}",
        worker.text()
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    let before = Scrape::of(&url).await;
    assert_eq!(
        before.value(
            "gallery_build_info",
            &[("role", "worker"), ("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    let id = app
        .upload_ok("processed.jpg", jpeg_fixture(800, 600), None)
        .await;
    app.wait_done(&id).await;
    let after = scrape_when_done(&url, 1.0).await;
    assert_one_job(&before, &after);
    // The worker answers no API request and takes no upload: those are the web role's.
    assert!(!after.has("gallery_http_requests_total"));
    assert_eq!(after.value("gallery_uploads_accepted_total", &[]), 0.0);
    let web = Scrape::of(&app.url("/metrics")).await;
    assert_eq!(web.value("gallery_uploads_accepted_total", &[]), 1.0);
    assert_eq!(web.value("gallery_jobs_started_total", &[]), 0.0);

    // Its log is JSON, a line per event, and the job's lines carry the photo id.
    let lines = json_lines(&worker.text());
    let about_the_photo: Vec<&Value> = lines
        .iter()
        .filter(|line| line["span"]["id"] == id.as_str())
        .collect();
    let messages: Vec<&str> = about_the_photo
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect();
    assert!(messages.contains(&"job started"), "{messages:?}");
    assert!(messages.contains(&"job finished"), "{messages:?}");
    let finished = about_the_photo
        .iter()
        .find(|line| line["message"] == "job finished")
        .expect("finished line");
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["outcome"], "Done");
    assert!(finished["timestamp"].is_string());
}

/// Waits (10 s at most) until `log` has the "answered" line of request `id`, and answers it.
async fn answered_line(served: &Logged, id: &str) -> Value {
    for _ in 0..200 {
        let lines = json_lines(&served.text());
        let mine: Vec<Value> = lines
            .into_iter()
            .filter(|line| line["span"]["request_id"] == id && line["message"] == "answered")
            .collect();
        assert!(mine.len() <= 1, "more than one line for {id}: {mine:?}");
        if let Some(line) = mine.into_iter().next() {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no line for request {id}:\n{}", served.text());
}

#[tokio::test]
async fn each_request_is_one_line_with_its_id_route_status_and_duration_and_no_secret() {
    let data_dir = temp_data_dir();
    let port = free_port();
    let mut env = admin_env().to_vec();
    env.push(("GALLERY_LOG_FORMAT", "json".into()));
    let address = format!("127.0.0.1:{port}");
    let data = data_dir.display().to_string();
    let served = Logged::start(
        "info",
        &["serve", "--listen", &address, "--data-dir", &data],
        &env,
    );
    assert!(
        served.wait_for("gallery listening").await,
        "{}",
        served.text()
    );
    let base = format!("http://{address}");
    let admin = Api::admin(&base).await;
    let token = admin.token.clone().expect("a token");
    let anonymous = Api::new(&base);

    // A share-link token in the path, a secret in the query, a cookie and a bearer token.
    let share_token = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
    let shared = anonymous
        .client
        .get(format!(
            "{base}/s/{share_token}/photo?key=query-secret-51a2"
        ))
        .header("cookie", "gallery_session=cookie-secret-88d1")
        .send()
        .await
        .expect("share link");
    assert_eq!(shared.status(), 404);
    let listed = admin
        .client
        .get(format!("{base}/api/photos?limit=5"))
        .send()
        .await
        .expect("list");
    assert_eq!(listed.status(), 200);
    let refused = anonymous
        .client
        .get(format!("{base}/api/photos/some-id"))
        .header("authorization", "Bearer bearer-secret-2b7e")
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 401);
    let probe = anonymous
        .client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");

    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    let ids = [
        id_of(&shared),
        id_of(&listed),
        id_of(&refused),
        id_of(&probe),
    ];
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");

    let line = answered_line(&served, &ids[0]).await;
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["span"]["route"], "/s/{token}/photo");
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["status"], 404);
    assert!(
        line["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0),
        "{line}"
    );
    let line = answered_line(&served, &ids[1]).await;
    assert_eq!(line["span"]["route"], "/api/photos");
    assert_eq!(line["status"], 200);
    let line = answered_line(&served, &ids[2]).await;
    assert_eq!(line["span"]["route"], "/api/photos/{id}");
    assert_eq!(line["status"], 401);

    // A probe that succeeds is not logged at info; every line is still JSON.
    let log = served.text();
    assert!(!log.contains(&ids[3]), "{log}");
    json_lines(&log);
    for secret in [
        share_token,
        "query-secret-51a2",
        "cookie-secret-88d1",
        "bearer-secret-2b7e",
        "some-id",
        token.as_str(),
        ADMIN_PASSWORD,
    ] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
    drop(served);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn the_scrape_parser_reads_braces_and_escapes_inside_label_values() {
    let scrape = Scrape::parse(
        "# HELP x y\n\
         plain 3\n\
         h_bucket{le=\"+Inf\",route=\"/api/photos/{id}\"} 2\n\
         odd{v=\"a\\\"b\\\\c,d}\"} 1.5 1700000000\n",
    );
    assert_eq!(scrape.value("plain", &[]), 3.0);
    assert_eq!(
        scrape.value("h_bucket", &[("route", "/api/photos/{id}"), ("le", "+Inf")]),
        2.0
    );
    assert_eq!(scrape.value("odd", &[("v", "a\"b\\c,d}")]), 1.5);
    assert_eq!(scrape.value("missing", &[]), 0.0);
}
