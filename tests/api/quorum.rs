//! RabbitMQ's quorum queues: an older version's classic queues become quorum queues with
//! nothing lost (also when a move was cut short, and not while an older consumer is attached),
//! a short retry never waits behind a long one, and a 3-node cluster that loses the node
//! leading the job queue mid-batch loses no photo.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use amqprs::channel::{
    BasicConsumeArguments, BasicPublishArguments, Channel, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::{BasicProperties, FieldTable, FieldValue};
use gallery::backends::Backends;
use gallery::domain::{Event, EventKind, Job, Lane, Photo, PhotoId};
use gallery::queue::{AmqpQueue, JobQueue, Listener};
use gallery::startup::Settings;
use gallery::storage::{ObjectStore, S3Store};
use serde_json::Value;

use crate::helpers::{
    amqp_connection, jpeg_fixture, queued_photo, remove_queues, spawn_app_with, test_settings,
    BackendSet, TestApp,
};
use crate::own_services::OwnRabbitCluster;

/// A photo recorded and stored as an upload leaves it, before its job is queued.
async fn recorded_photo(settings: &Settings, filename: &str, lane: Lane) -> Photo {
    let (index, _) = Backends::connect_index(&settings.backends)
        .await
        .expect("index");
    let storage = S3Store::new(settings.backends.s3.as_ref().expect("S3")).expect("store");
    storage.prepare().await.expect("bucket");
    let photo = queued_photo(filename, lane, 400, 300);
    storage
        .put(
            &Photo::original_key(&photo.id),
            jpeg_fixture(400, 300).into(),
            "image/jpeg",
        )
        .await
        .expect("original stored");
    index.insert(&photo).await.expect("recorded");
    photo
}

fn text_table(entries: &[(&str, &str)]) -> FieldTable {
    let mut table = FieldTable::new();
    for (name, value) in entries {
        table.insert((*name).try_into().expect("name"), FieldValue::from(*value));
    }
    table
}

/// The queues and exchanges the version before quorum queues declared, as it declared them:
/// all classic.
async fn declare_older_topology(channel: &Channel, q: &str) {
    let dlx = format!("{q}.dlx");
    let events = format!("{q}.events");
    for (exchange, kind) in [(&dlx, "fanout"), (&events, "topic")] {
        let mut declare = ExchangeDeclareArguments::new(exchange, kind);
        declare.durable = true;
        channel.exchange_declare(declare).await.expect("exchange");
    }
    let classic = |name: &str, arguments: &[(&str, &str)]| {
        let mut declare = QueueDeclareArguments::durable_client_named(name);
        declare.arguments(text_table(arguments));
        declare
    };
    let dead = format!("{q}.dead");
    channel
        .queue_declare(classic(&dead, &[]))
        .await
        .expect("dead");
    channel
        .queue_bind(QueueBindArguments::new(&dead, &dlx, ""))
        .await
        .expect("bind");
    let notify = format!("{q}.notify");
    let notify_dead = format!("{notify}.dead");
    channel
        .queue_declare(classic(&notify_dead, &[]))
        .await
        .expect("notify.dead");
    let back_to_dead = [
        ("x-dead-letter-exchange", ""),
        ("x-dead-letter-routing-key", notify_dead.as_str()),
    ];
    channel
        .queue_declare(classic(&notify, &back_to_dead))
        .await
        .expect("notify");
    for key in ["photo.done", "photo.failed"] {
        channel
            .queue_bind(QueueBindArguments::new(&notify, &events, key))
            .await
            .expect("bind");
    }
    for lane in [q.to_owned(), format!("{q}.bulk")] {
        channel
            .queue_declare(classic(&lane, &[("x-dead-letter-exchange", dlx.as_str())]))
            .await
            .expect("lane");
        let back = [
            ("x-dead-letter-exchange", ""),
            ("x-dead-letter-routing-key", lane.as_str()),
        ];
        channel
            .queue_declare(classic(&format!("{lane}.retry"), &back))
            .await
            .expect("retry");
    }
}

/// Publishes `body` to `queue`, persistent, waiting for nothing (the channel is not in
/// confirm mode: the broker has it once a later call on the channel returns).
async fn put(channel: &Channel, queue: &str, body: Vec<u8>, properties: BasicProperties) {
    channel
        .basic_publish(properties, body, BasicPublishArguments::new("", queue))
        .await
        .expect("publish");
}

fn persistent() -> BasicProperties {
    let mut properties = BasicProperties::default();
    properties.with_persistence(true);
    properties
}

/// The shared broker's queues whose names start with `prefix`, with their type.
fn queue_types(prefix: &str) -> BTreeMap<String, String> {
    let output = std::process::Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "name",
            "type",
            "--no-table-headers",
            "--quiet",
        ])
        .output()
        .expect("rabbitmqctl runs (it ships with RabbitMQ; run tests as root)");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .filter(|(name, _)| name.starts_with(prefix))
        .map(|(name, kind)| (name.to_owned(), kind.trim().to_owned()))
        .collect()
}

/// Waits (30 s at most) until `suffix`'s queue holds `count` messages.
async fn wait_depth(app: &TestApp, suffix: &str, count: u32) {
    for _ in 0..300 {
        if app.queue_depth(suffix).await == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{}{suffix} never held {count} messages (holds {})",
        app.job_queue(),
        app.queue_depth(suffix).await
    );
}

#[tokio::test]
async fn an_older_versions_classic_queues_become_quorum_queues_and_lose_nothing() {
    let settings = test_settings();
    let q = settings.backends.queue.name.clone();
    let waiting = recorded_photo(&settings, "waiting.jpg", Lane::Upload).await;
    let retrying = recorded_photo(&settings, "retrying.jpg", Lane::Upload).await;
    let reprocessing = recorded_photo(&settings, "reprocessing.jpg", Lane::Bulk).await;
    let dead_job = serde_json::to_vec(&Job::of(&waiting)).expect("json");
    let unsent = serde_json::to_vec(&Event::status_of(&waiting)).expect("json");
    {
        let connection = amqp_connection().await;
        let channel = connection.open_channel(None).await.expect("channel");
        declare_older_topology(&channel, &q).await;
        let job = |photo: &Photo| serde_json::to_vec(&Job::of(photo)).expect("json");
        put(&channel, &q, job(&waiting), persistent()).await;
        // Its retry an hour away, with a per-message TTL as the older version set them.
        let mut in_an_hour = persistent();
        in_an_hour.with_expiration("3600000");
        put(&channel, &format!("{q}.retry"), job(&retrying), in_an_hour).await;
        put(
            &channel,
            &format!("{q}.bulk"),
            job(&reprocessing),
            persistent(),
        )
        .await;
        put(
            &channel,
            &format!("{q}.dead"),
            dead_job.clone(),
            persistent(),
        )
        .await;
        put(
            &channel,
            &format!("{q}.notify"),
            unsent.clone(),
            persistent(),
        )
        .await;
        let _ = channel.close().await;
        let _ = connection.close().await;
    }
    let before = queue_types(&q);
    assert_eq!(before.len(), 7, "{before:?}");
    assert!(before.values().all(|kind| kind == "classic"), "{before:?}");

    // The new version starts on them.
    let app = spawn_app_with(BackendSet::Services, |s| {
        s.backends = settings.backends.clone();
    })
    .await;
    for photo in [&waiting, &retrying, &reprocessing] {
        let done = app.wait_done(photo.id.as_str()).await;
        assert_eq!(done["status"], "done", "{done}");
    }

    let after = queue_types(&q);
    let expected: BTreeSet<String> = [
        "",
        ".bulk",
        ".dead",
        ".notify",
        ".notify.dead",
        ".retry.50ms",
        ".retry.100ms",
        ".retry.200ms",
        ".bulk.retry.50ms",
        ".bulk.retry.100ms",
        ".bulk.retry.200ms",
    ]
    .iter()
    .map(|suffix| format!("{q}{suffix}"))
    .collect();
    assert_eq!(
        after.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the older retry queues and the holding queue are gone"
    );
    assert!(after.values().all(|kind| kind == "quorum"), "{after:?}");
    // The dead letter and the unsent event kept; each finished photo's event beside it.
    wait_depth(&app, ".dead", 1).await;
    wait_depth(&app, ".notify", 4).await;
    let mut events = app
        .backends
        .queue
        .subscribe_events(Listener::Durable {
            name: "notify".into(),
            prefetch: 10,
        })
        .await
        .expect("subscribe");
    let mut kept = Vec::new();
    for _ in 0..4 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event")
            .expect("subscribed");
        let event = &delivery.event;
        kept.push((event.photo.filename.clone(), event.kind.as_str()));
        delivery.settle.ack().await.expect("ack");
    }
    kept.sort();
    assert_eq!(
        kept,
        [
            ("reprocessing.jpg".into(), "photo.done"),
            ("retrying.jpg".into(), "photo.done"),
            ("waiting.jpg".into(), "photo.done"),
            ("waiting.jpg".into(), "photo.queued"),
        ]
    );
}

#[tokio::test]
async fn a_move_cut_short_is_finished_at_the_next_start() {
    let settings = test_settings();
    let q = settings.backends.queue.name.clone();
    let held = recorded_photo(&settings, "held.jpg", Lane::Upload).await;
    let left = recorded_photo(&settings, "left.jpg", Lane::Bulk).await;
    {
        // Cut short after the upload lane's classic queue was emptied into the holding
        // queue and deleted: the bulk lane is still classic.
        let connection = amqp_connection().await;
        let channel = connection.open_channel(None).await.expect("channel");
        declare_older_topology(&channel, &q).await;
        for gone in [q.clone(), format!("{q}.retry")] {
            channel
                .queue_delete(amqprs::channel::QueueDeleteArguments::new(&gone))
                .await
                .expect("delete");
        }
        let holding = format!("{q}.migrating");
        channel
            .queue_declare(QueueDeclareArguments::durable_client_named(&holding))
            .await
            .expect("holding");
        let mut marked = persistent();
        // The mark that names where a held message belongs (the module doc of
        // `queue::amqp::topology`).
        marked.with_headers(text_table(&[("x-gallery-home", q.as_str())]));
        let job = |photo: &Photo| serde_json::to_vec(&Job::of(photo)).expect("json");
        put(&channel, &holding, job(&held), marked).await;
        put(&channel, &format!("{q}.bulk"), job(&left), persistent()).await;
        let _ = channel.close().await;
        let _ = connection.close().await;
    }

    let app = spawn_app_with(BackendSet::Services, |s| {
        s.backends = settings.backends.clone();
    })
    .await;
    for photo in [&held, &left] {
        let done = app.wait_done(photo.id.as_str()).await;
        assert_eq!(done["status"], "done", "{done}");
    }
    let after = queue_types(&q);
    assert!(!after.contains_key(&format!("{q}.migrating")), "{after:?}");
    assert!(after.values().all(|kind| kind == "quorum"), "{after:?}");
}

#[tokio::test]
async fn a_classic_queue_an_older_worker_still_reads_is_left_alone_saying_so() {
    let settings = test_settings();
    let q = settings.backends.queue.name.clone();
    let job = Job::of(&recorded_photo(&settings, "kept.jpg", Lane::Upload).await);
    let connection = amqp_connection().await;
    let channel = connection.open_channel(None).await.expect("channel");
    declare_older_topology(&channel, &q).await;
    put(
        &channel,
        &format!("{q}.bulk"),
        serde_json::to_vec(&job).expect("json"),
        persistent(),
    )
    .await;
    // An older worker's consumer on the upload lane.
    let reader = connection.open_channel(None).await.expect("channel");
    let (_tag, _deliveries) = reader
        .basic_consume_rx(BasicConsumeArguments::new(&q, "older-worker"))
        .await
        .expect("consume");

    let url = settings.backends.queue.amqp_url.clone().expect("RabbitMQ");
    let queue = AmqpQueue::new(&url, &settings.backends.queue, "test").expect("queue");
    let refused = format!("{:#}", queue.prepare().await.expect_err("refused"));
    assert!(
        refused.contains(&format!("{q} is a queue of an older gallery (classic)"))
            && refused.contains("1 consumer(s)")
            && refused.contains("stop every role of the older version"),
        "{refused}"
    );
    assert_eq!(queue_types(&q).get(&q).map(String::as_str), Some("classic"));

    // The older worker gone, the next start moves everything.
    let _ = reader.close().await;
    queue.prepare().await.expect("prepared");
    let _ = channel.close().await;
    let _ = connection.close().await;
    let app = spawn_app_with(BackendSet::Services, |s| {
        s.backends = settings.backends.clone();
    })
    .await;
    let done = app.wait_done(job.photo_id.as_str()).await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(queue_types(&q).values().all(|kind| kind == "quorum"));
}

#[tokio::test]
async fn a_short_retry_never_waits_behind_a_long_one() {
    let mut settings = test_settings();
    settings.backends.queue.retry_delays =
        vec![Duration::from_millis(100), Duration::from_secs(3600)];
    let url = settings.backends.queue.amqp_url.clone().expect("RabbitMQ");
    let queue = AmqpQueue::new(&url, &settings.backends.queue, "test").expect("queue");
    queue.prepare().await.expect("prepared");
    let job = || Job::of(&queued_photo("x.jpg", Lane::Upload, 400, 300));
    let (slow, quick) = (job(), job());
    let mut jobs = queue.consume(1).await.expect("consume");
    queue.publish(&slow).await.expect("publish");
    let delivery = jobs.next().await.expect("delivered");
    assert_eq!(delivery.job, slow);
    delivery
        .settle
        .retry(&slow, Duration::from_secs(3600))
        .await
        .expect("retried in an hour");
    drop(delivery); // the worker's one slot
    queue.publish(&quick).await.expect("publish");
    let delivery = jobs.next().await.expect("delivered");
    assert_eq!(delivery.job, quick);
    delivery
        .settle
        .retry(&quick, Duration::from_millis(100))
        .await
        .expect("retried at once");
    drop(delivery);
    // Back after its own step, while the hour-long one still waits.
    let delivery = tokio::time::timeout(Duration::from_secs(30), jobs.next())
        .await
        .expect("the quick retry came back")
        .expect("delivered");
    assert_eq!(delivery.job, quick);
    delivery.settle.ack().await.expect("ack");
    let depths = queue.depths().await.expect("depths");
    assert_eq!((depths.upload, depths.retrying), (0, 1), "{depths:?}");
    jobs.close().await;
    remove_queues(&settings);
}

/// What one upload of the batch came to.
enum Answer {
    Accepted { id: String, at: Instant },
    Unavailable { at: Instant },
}

#[tokio::test]
async fn a_cluster_that_loses_the_job_queues_leader_mid_batch_loses_no_photo() {
    let mut cluster = OwnRabbitCluster::start().await;
    // The queues are declared through one node, which leads them all (RabbitMQ places a
    // quorum queue's leader on the declaring client's node).
    let victim = 0;
    let mut declaring = test_settings();
    let q = declaring.backends.queue.name.clone();
    declaring.backends.queue.amqp_url = Some(cluster.url(victim).into());
    let url = declaring.backends.queue.amqp_url.clone().expect("url");
    AmqpQueue::new(&url, &declaring.backends.queue, "test")
        .expect("queue")
        .prepare()
        .await
        .expect("declared on the cluster");
    assert_eq!(cluster.leader_of(&q).await, victim);

    let urls = cluster.urls();
    let app = spawn_app_with(BackendSet::Services, |s| {
        s.backends.queue.name = q.clone();
        s.backends.queue.amqp_url = Some(urls.clone().into());
    })
    .await;
    // A durable listener of our own counts every finished photo's event, across the failover.
    drop(
        app.backends
            .queue
            .subscribe_events(Listener::Durable {
                name: "counted".into(),
                prefetch: 100,
            })
            .await
            .expect("subscribe"),
    );
    // The app's connections go round the nodes from a random one: round them until its
    // publishing connection is on the node to be killed, so the test fails it over too, in
    // the worst case: it opens its next connection while the queues have no leader.
    let publisher = format!("gallery-web-{q}-publish");
    let mut warm_up = Vec::new();
    for round in 0.. {
        let id = app
            .upload_ok(&format!("warm-{round}.jpg"), jpeg_fixture(64, 48), None)
            .await;
        assert_eq!(app.wait_done(&id).await["status"], "done");
        warm_up.push(id);
        let connections = cluster.connections(&publisher).await;
        if connections.iter().any(|(node, _)| *node == victim) {
            break;
        }
        assert!(
            round < 5,
            "the app never published through the victim: {connections:?}"
        );
        for (_, pid) in &connections {
            cluster
                .ctl(
                    &cluster.name(1),
                    &["close_connection", pid, "test: round the nodes"],
                )
                .await;
        }
    }
    let worker_on_victim = cluster
        .connections(&format!("gallery-web-{q}-jobs"))
        .await
        .iter()
        .any(|(node, _)| *node == victim);

    // The batch; the leader's node is killed after the 20th upload (and more are sent while
    // the last is refused).
    let done_at: RefCell<BTreeMap<String, Instant>> = RefCell::new(BTreeMap::new());
    let answers: RefCell<Vec<Answer>> = RefCell::new(Vec::new());
    let finished = RefCell::new(false);
    let mut killed_at = None;
    let batch = async {
        for n in 0.. {
            if n == 20 {
                cluster.kill(victim);
                killed_at = Some(Instant::now());
            }
            if n >= 50 {
                // Uploads resume without a restart: past the batch, until one is accepted.
                if matches!(answers.borrow().last(), Some(Answer::Accepted { .. })) {
                    break;
                }
                let since = killed_at.map(|at| at.elapsed()).unwrap_or_default();
                assert!(
                    since < Duration::from_secs(120),
                    "no upload accepted in the {since:?} since the kill"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let response = app
                .upload(
                    &[(format!("batch-{n}.jpg").as_str(), jpeg_fixture(64, 48))],
                    None,
                )
                .await;
            let at = Instant::now();
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            let answer = match status {
                202 => Answer::Accepted {
                    id: body["photos"][0]["id"].as_str().expect("id").to_owned(),
                    at,
                },
                503 => Answer::Unavailable { at },
                other => panic!("upload {n} answered {other}: {body}"),
            };
            answers.borrow_mut().push(answer);
        }
        *finished.borrow_mut() = true;
    };
    // Watches the gallery meanwhile: when each photo was first seen done.
    let watch = async {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            let listing = app.list("?limit=100").await;
            let now = Instant::now();
            for photo in listing["photos"].as_array().expect("photos") {
                if photo["status"] == "done" {
                    let id = photo["id"].as_str().expect("id").to_owned();
                    done_at.borrow_mut().entry(id).or_insert(now);
                }
            }
            let accepted = answers
                .borrow()
                .iter()
                .filter(|answer| matches!(answer, Answer::Accepted { .. }))
                .count();
            if *finished.borrow() && done_at.borrow().len() >= accepted + warm_up.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::join!(batch, watch);
    let killed_at = killed_at.expect("killed");
    let answers = answers.into_inner();
    let done_at = done_at.into_inner();

    let accepted: Vec<(&String, Instant)> = answers
        .iter()
        .filter_map(|answer| match answer {
            Answer::Accepted { id, at } => Some((id, *at)),
            Answer::Unavailable { .. } => None,
        })
        .collect();
    let refused: Vec<Instant> = answers
        .iter()
        .filter_map(|answer| match answer {
            Answer::Unavailable { at } => Some(*at),
            Answer::Accepted { .. } => None,
        })
        .collect();
    // Every accepted photo is done (a clear failure for the first that is not).
    for (id, _) in &accepted {
        if !done_at.contains_key(*id) {
            let photo = app.wait_done(id).await;
            panic!("photo {id} was accepted and never done: {photo}");
        }
    }
    // The gallery lists exactly the accepted photos: a refused upload left none.
    let expected: BTreeSet<String> = accepted
        .iter()
        .map(|(id, _)| (*id).clone())
        .chain(warm_up.iter().cloned())
        .collect();
    let listing = app.list("?limit=100").await;
    let listed: Vec<String> = listing["photos"]
        .as_array()
        .expect("photos")
        .iter()
        .map(|photo| photo["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(listed.len(), expected.len(), "listed twice? {listed:?}");
    assert_eq!(listed.iter().cloned().collect::<BTreeSet<_>>(), expected);
    // ... nor any object: every object belongs to an accepted photo, which has its original
    // and both variants.
    let objects = app.object_keys().await;
    let owners: BTreeMap<&str, usize> = objects.iter().fold(BTreeMap::new(), |mut owners, key| {
        let owner = key.split('/').nth(1).unwrap_or_default();
        *owners.entry(owner).or_default() += 1;
        owners
    });
    assert_eq!(
        owners
            .keys()
            .map(|id| (*id).to_owned())
            .collect::<BTreeSet<_>>(),
        expected,
        "{objects:?}"
    );
    assert!(owners.values().all(|count| *count == 3), "{objects:?}");

    // Every photo's `photo.done` was announced; how many times each, and how many jobs ran
    // more than once (a job in flight on a lost connection is delivered again).
    let mut events = app
        .backends
        .queue
        .subscribe_events(Listener::Durable {
            name: "counted".into(),
            prefetch: 100,
        })
        .await
        .expect("subscribe");
    let mut announced: BTreeMap<String, usize> = BTreeMap::new();
    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(3), events.next()).await
    {
        assert_eq!(delivery.event.kind, EventKind::Done, "{:?}", delivery.event);
        *announced
            .entry(delivery.event.photo.id.to_string())
            .or_default() += 1;
        delivery.settle.ack().await.expect("ack");
    }
    assert_eq!(
        announced.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "a photo.done missing"
    );
    let announced_twice = announced.values().filter(|count| **count > 1).count();
    let mut run_twice = 0;
    for id in &expected {
        let id = PhotoId::parse(id).expect("id");
        let record = app
            .backends
            .index
            .get(&id)
            .await
            .expect("get")
            .expect("kept");
        if record.deliveries > 1 {
            run_twice += 1;
        }
    }
    let depths = app.backends.queue.depths().await.expect("depths");
    assert_eq!(
        (depths.upload, depths.retrying, depths.dead),
        (0, 0, 0),
        "{depths:?}"
    );

    let after_kill = |at: Instant| at.checked_duration_since(killed_at);
    let first_accepted = accepted.iter().find_map(|(_, at)| after_kill(*at));
    let first_done = accepted
        .iter()
        .filter(|(_, at)| *at > killed_at)
        .filter_map(|(id, _)| done_at.get(*id).and_then(|at| after_kill(*at)))
        .min();
    eprintln!(
        "3-node cluster, leader of {q} killed (kill -9) after upload 20 of {}, with the app's \
         publishing connection on it (its worker's too: {worker_on_victim}): {} accepted, {} \
         answered 503; first upload accepted {first_accepted:?} after the kill, first photo \
         uploaded after the kill done {first_done:?} after it; photo.done announced twice for \
         {announced_twice}, jobs run more than once {run_twice}",
        answers.len(),
        accepted.len(),
        refused.len(),
    );
}
