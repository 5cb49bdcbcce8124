//! Redis, RabbitMQ and S3 instances a test starts for itself (own ports, own data dir, own
//! process group), to freeze or kill without touching the machine's shared ones. Each ends
//! with the value that started it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::serve::free_port;

/// A store's processes, in a process group of their own so a signal reaches all of them.
struct Group {
    leader: std::process::Child,
    dir: PathBuf,
    what: &'static str,
    /// Left in place when the group ends: a store killed to be started again on it.
    keep_dir: bool,
}

impl Group {
    fn start(what: &'static str, mut command: Command, dir: PathBuf) -> Group {
        use std::os::unix::process::CommandExt;
        let leader = command
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what} ({e}): install it (make test-deps)"));
        Group {
            leader,
            dir,
            what,
            keep_dir: false,
        }
    }

    /// SIGKILL to every process of the group, as a crash: the data dir stays.
    fn kill_keeping_data(mut self) {
        self.keep_dir = true;
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), "--", &format!("-{}", self.leader.id())])
            .status()
            .expect("kill");
        assert!(status.success(), "could not {name} {}", self.what);
    }

    /// Waits (60 s at most) until `port` takes connections.
    async fn wait_listening(&self, port: u16) {
        for _ in 0..600 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{} never listened on {port} (see {})",
            self.what,
            self.dir.display()
        );
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Thawed first: a stopped process does not act on SIGKILL until continued.
        let _ = Command::new("kill")
            .args(["-CONT", "--", &format!("-{}", self.leader.id())])
            .status();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.leader.id())])
            .status();
        let _ = self.leader.wait();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn fresh_dir(what: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("gallery-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("data dir");
    dir
}

/// A Redis of the test's own, keeping nothing on disk.
pub struct OwnRedis {
    group: Group,
    port: u16,
}

impl OwnRedis {
    pub async fn start() -> OwnRedis {
        let port = free_port();
        let dir = fresh_dir("redis");
        let mut command = Command::new("redis-server");
        command.args([
            "--bind",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.display().to_string(),
        ]);
        let group = Group::start("redis-server", command, dir);
        group.wait_listening(port).await;
        OwnRedis { group, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGSTOP: connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.group.signal("STOP");
    }

    pub fn thaw(&self) {
        self.group.signal("CONT");
    }
}

/// A RabbitMQ node of the test's own (Debian's rabbitmq-server, run as this user), with its
/// own node name, ports, data dir and Erlang cookie. Starting it takes a few seconds.
pub struct OwnRabbit {
    group: Group,
    port: u16,
}

impl OwnRabbit {
    pub async fn start() -> OwnRabbit {
        let port = free_port();
        let dist_port = free_port();
        let dir = fresh_dir("rabbitmq");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .expect("config");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins");
        let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        command
            .current_dir(&dir)
            .env("HOME", &dir)
            // The machine's rabbitmq-env.conf names the shared node: not ours.
            .env("RABBITMQ_CONF_ENV_FILE", "/dev/null")
            .env(
                "RABBITMQ_NODENAME",
                format!("gallery-test-{port}@localhost"),
            )
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
        let group = Group::start("rabbitmq-server", command, dir);
        group.wait_listening(port).await;
        OwnRabbit { group, port }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// SIGSTOP: connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.group.signal("STOP");
    }

    pub fn thaw(&self) {
        self.group.signal("CONT");
    }
}

/// An S3 server of the test's own: s3s-fs, the tests' S3 server (`bash tests/support/s3-server.sh`
/// installs it), with the tests' keys, its own port and data dir. It can be killed and started
/// again on both, as a store that crashes and comes back with what it had stored.
pub struct OwnS3 {
    /// None while killed.
    server: Option<Group>,
    port: u16,
    dir: PathBuf,
}

impl OwnS3 {
    pub async fn start() -> OwnS3 {
        let mut s3 = OwnS3 {
            server: None,
            port: free_port(),
            dir: fresh_dir("s3"),
        };
        s3.restart().await;
        s3
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, as a crash: connections reset, the port refuses, the data stays on disk.
    pub fn kill(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill_keeping_data();
        }
    }

    /// Starts the server (again) on its port and data dir; returns once it listens.
    pub async fn restart(&mut self) {
        assert!(self.server.is_none(), "the S3 server is running already");
        let installed = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cargo/bin/s3s-fs"))
            .filter(|path| path.exists());
        let mut command = Command::new(installed.unwrap_or_else(|| "s3s-fs".into()));
        command.args([
            "--host",
            "127.0.0.1",
            "--port",
            &self.port.to_string(),
            "--access-key",
            crate::helpers::S3_ACCESS_KEY,
            "--secret-key",
            crate::helpers::S3_SECRET_KEY,
            &self.dir.display().to_string(),
        ]);
        let server = Group::start("s3s-fs", command, self.dir.clone());
        server.wait_listening(self.port).await;
        self.server = Some(server);
    }

    /// Files the server left half-written in its data dir (its temporary files, which it moves
    /// into place once an object is complete).
    pub fn partial_files(&self) -> Vec<String> {
        let mut partial = Vec::new();
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if entry.file_name().to_string_lossy().starts_with(".tmp.") {
                    partial.push(path.display().to_string());
                }
            }
        }
        partial
    }
}

impl Drop for OwnS3 {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The data nodes' password, and the Sentinels' own, as a deployment would set them apart.
const DATA_PASSWORD: &str = "data-pass-7d1f";
const SENTINEL_PASSWORD: &str = "sentinel-pass-2b9e";
/// The name the Sentinels know the primary by.
const SERVICE: &str = "gallery";

/// A Redis primary with two replicas behind three Sentinels, each a process of its own (own
/// port, own dir, own process group; each Sentinel its own config file, which it rewrites).
/// The data nodes keep nothing on disk. Failovers are quick: a primary is down after 1 s
/// without an answer.
pub struct OwnSentinelRedis {
    /// Data nodes by port; the first starts as the primary.
    nodes: Vec<(u16, Group)>,
    sentinels: Vec<(u16, Group)>,
}

impl OwnSentinelRedis {
    pub async fn start() -> OwnSentinelRedis {
        let mut nodes: Vec<(u16, Group)> = Vec::new();
        for role in ["primary", "replica", "replica"] {
            let port = free_port();
            let dir = fresh_dir("redis-node");
            let mut command = Command::new("redis-server");
            command.args(["--bind", "127.0.0.1", "--port", &port.to_string()]);
            command.args(["--save", "", "--appendonly", "no"]);
            command.args(["--dir", &dir.display().to_string()]);
            command.args([
                "--requirepass",
                DATA_PASSWORD,
                "--masterauth",
                DATA_PASSWORD,
            ]);
            if role == "replica" {
                command.args(["--replicaof", "127.0.0.1", &nodes[0].0.to_string()]);
            }
            let group = Group::start("redis-server", command, dir);
            group.wait_listening(port).await;
            nodes.push((port, group));
        }
        let primary = nodes[0].0;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            let port = free_port();
            let dir = fresh_dir("redis-sentinel");
            let config = dir.join("sentinel.conf");
            std::fs::write(
                &config,
                format!(
                    "bind 127.0.0.1\nport {port}\ndir {dir}\n\
                     requirepass {SENTINEL_PASSWORD}\nsentinel sentinel-pass {SENTINEL_PASSWORD}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary} 2\n\
                     sentinel auth-pass {SERVICE} {DATA_PASSWORD}\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 3000\n",
                    dir = dir.display()
                ),
            )
            .expect("sentinel config");
            let mut command = Command::new("redis-server");
            command.arg(&config).arg("--sentinel");
            let group = Group::start("redis-server --sentinel", command, dir);
            group.wait_listening(port).await;
            sentinels.push((port, group));
        }
        let redis = OwnSentinelRedis { nodes, sentinels };
        redis.wait_healthy().await;
        redis
    }

    /// fred's Sentinel URL: the data nodes' password, the Sentinels (one in the authority, the
    /// others as `node`), the service, and the Sentinels' password.
    pub fn url(&self) -> String {
        let first = self.sentinels[0].0;
        let others: String = self.sentinels[1..]
            .iter()
            .map(|(port, _)| format!("&node=127.0.0.1:{port}"))
            .collect();
        format!(
            "redis-sentinel://:{DATA_PASSWORD}@127.0.0.1:{first}/0?sentinelServiceName={SERVICE}\
             {others}&sentinelPassword={SENTINEL_PASSWORD}"
        )
    }

    /// The passwords, which nothing the app says may contain.
    pub fn secrets() -> [&'static str; 2] {
        [DATA_PASSWORD, SENTINEL_PASSWORD]
    }

    /// Waits (a minute at most) until every Sentinel knows the other two and sees two
    /// replicas in sync and answering: then a failover can elect a leader and promote one.
    pub async fn wait_healthy(&self) {
        for (port, _) in &self.sentinels {
            wait_until(
                &format!("the Sentinel on {port} to see everyone"),
                || async {
                    let master = ask(*port, SENTINEL_PASSWORD, &["SENTINEL", "MASTER", SERVICE]);
                    let replicas =
                        ask(*port, SENTINEL_PASSWORD, &["SENTINEL", "REPLICAS", SERVICE]);
                    let (Some(master), Some(replicas)) = tokio::join!(master, replicas) else {
                        return false;
                    };
                    let replicas: Vec<Vec<fred::types::Value>> =
                        items(replicas).into_iter().map(items).collect();
                    field(&items(master), "num-other-sentinels").as_deref() == Some("2")
                        && replicas.len() == 2
                        && replicas.iter().all(|replica| {
                            field(replica, "flags").as_deref() == Some("slave")
                                && field(replica, "master-link-status").as_deref() == Some("ok")
                        })
                },
            )
            .await;
        }
    }

    /// The port of the primary, as the first Sentinel that answers knows it.
    pub async fn primary(&self) -> u16 {
        for (port, _) in &self.sentinels {
            let command = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE];
            if let Some(address) = ask(*port, SENTINEL_PASSWORD, &command).await {
                let port = items(address)
                    .get(1)
                    .and_then(|port| port.as_str()?.parse().ok());
                if let Some(primary) = port {
                    return primary;
                }
            }
        }
        panic!("no Sentinel names the primary");
    }

    fn node(&self, port: u16) -> &Group {
        let (_, group) = self
            .nodes
            .iter()
            .find(|(node, _)| *node == port)
            .expect("a data node");
        group
    }

    /// kill -9 of the data node on `port`.
    pub fn kill(&self, port: u16) {
        self.node(port).signal("KILL");
    }

    /// SIGSTOP (or SIGCONT) of every data node but the primary on `primary`.
    pub fn freeze_replicas(&self, primary: u16, freeze: bool) {
        for (port, group) in &self.nodes {
            if *port != primary {
                group.signal(if freeze { "STOP" } else { "CONT" });
            }
        }
    }
}

/// Waits (60 s at most) until `ready` says so.
async fn wait_until<F, Fut>(what: &str, ready: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if ready().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("waited a minute for {what}");
}

/// One command to the Redis (or Sentinel) on `port`; `None` when it cannot be reached or
/// refuses.
async fn ask(port: u16, password: &str, command: &[&str]) -> Option<fred::types::Value> {
    use fred::prelude::*;
    use fred::types::{ClusterHash, CustomCommand};
    let config = Config {
        server: ServerConfig::new_centralized("127.0.0.1", port),
        password: Some(password.into()),
        ..Config::default()
    };
    let client = Builder::from_config(config)
        .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
        .build()
        .ok()?;
    client.init().await.ok()?;
    let (name, args) = command.split_first()?;
    let command = CustomCommand::new(name.to_string(), ClusterHash::FirstKey, false);
    let answer = client.custom(command, args.to_vec()).await.ok();
    let _ = client.quit().await;
    answer
}

/// An array answer's items (an array in RESP2, a map in RESP3 both come as one flat list).
fn items(value: fred::types::Value) -> Vec<fred::types::Value> {
    match value {
        fred::types::Value::Array(items) => items,
        other => vec![other],
    }
}

/// The value after `name` in a flat `name, value, …` answer.
fn field(pairs: &[fred::types::Value], name: &str) -> Option<String> {
    let at = pairs
        .iter()
        .position(|item| item.as_str().as_deref() == Some(name))?;
    pairs.get(at + 1)?.as_string()
}
