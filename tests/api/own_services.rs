//! Redis, RabbitMQ and S3 instances a test starts for itself (own ports, own data dir, own
//! process group), to freeze or kill without touching the machine's shared ones: a single
//! Redis, a Redis primary with replicas behind Sentinels, a RabbitMQ node, a cluster of three
//! RabbitMQ nodes, an S3 server. Each ends with the value that started it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    node: RabbitNode,
}

impl OwnRabbit {
    pub async fn start() -> OwnRabbit {
        let node = RabbitNode::spawn(None);
        node.group.wait_listening(node.port).await;
        OwnRabbit { node }
    }

    pub fn url(&self) -> String {
        self.node.url()
    }

    /// SIGSTOP: connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.node.group.signal("STOP");
    }

    pub fn thaw(&self) {
        self.node.group.signal("CONT");
    }
}

/// One RabbitMQ node in a process group of its own, named `gallery-test-PORT@localhost`.
struct RabbitNode {
    group: Group,
    name: String,
    port: u16,
}

impl RabbitNode {
    /// Starts a node; its Erlang cookie is `home`'s (nodes of one cluster share it), or one of
    /// its own made at first start. Returns before the node listens.
    fn spawn(home: Option<&Path>) -> RabbitNode {
        let port = free_port();
        let dist_port = free_port();
        let dir = fresh_dir("rabbitmq");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\n"),
        )
        .expect("config");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("plugins");
        let name = format!("gallery-test-{port}@localhost");
        let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        command
            .current_dir(&dir)
            .env("HOME", home.unwrap_or(&dir))
            // The machine's rabbitmq-env.conf names the shared node: not ours.
            .env("RABBITMQ_CONF_ENV_FILE", "/dev/null")
            .env("RABBITMQ_NODENAME", &name)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            // One scheduler and no busy-waiting: several nodes share a small machine.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none",
            )
            .env("ERL_EPMD_ADDRESS", "127.0.0.1");
        let group = Group::start("rabbitmq-server", command, dir);
        RabbitNode { group, name, port }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

/// Three RabbitMQ nodes of the test's own, clustered (one Erlang cookie, the second and third
/// joined to the first), each in its own process group so one can be killed alone. Starting
/// it takes half a minute.
pub struct OwnRabbitCluster {
    nodes: Vec<RabbitNode>,
    /// Whether each node was killed.
    killed: Vec<bool>,
    /// HOME of every node and of `rabbitmqctl`: the shared Erlang cookie.
    home: PathBuf,
}

impl OwnRabbitCluster {
    pub async fn start() -> OwnRabbitCluster {
        let home = fresh_dir("rabbitmq-cluster");
        let cookie = home.join(".erlang.cookie");
        let letters: String = (0..20).map(|_| fastrand::uppercase()).collect();
        std::fs::write(&cookie, letters).expect("cookie");
        std::fs::set_permissions(&cookie, std::fs::Permissions::from_mode(0o400))
            .expect("cookie mode");
        let nodes: Vec<RabbitNode> = (0..3).map(|_| RabbitNode::spawn(Some(&home))).collect();
        let cluster = OwnRabbitCluster {
            nodes,
            killed: vec![false; 3],
            home,
        };
        for node in cluster.live() {
            node.group.wait_listening(node.port).await;
        }
        let first = cluster.name(0);
        for index in 1..3 {
            let name = cluster.name(index);
            cluster.ctl(&name, &["stop_app"]).await;
            cluster.ctl(&name, &["join_cluster", &first]).await;
            cluster.ctl(&name, &["start_app"]).await;
        }
        cluster.ctl(&first, &["await_online_nodes", "3"]).await;
        cluster
    }

    fn live(&self) -> impl Iterator<Item = &RabbitNode> {
        self.nodes
            .iter()
            .zip(&self.killed)
            .filter_map(|(node, killed)| (!killed).then_some(node))
    }

    /// Node `index`'s Erlang name.
    pub fn name(&self, index: usize) -> String {
        self.nodes[index].name.clone()
    }

    /// Every node's URL, comma-separated: the value of `GALLERY_AMQP_URL`.
    pub fn urls(&self) -> String {
        self.live()
            .map(RabbitNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `index`'s URL alone.
    pub fn url(&self, index: usize) -> String {
        self.nodes[index].url()
    }

    /// `rabbitmqctl` (or `rabbitmq-queues`, …) against `node`, which must succeed; its output.
    pub async fn ctl(&self, node: &str, args: &[&str]) -> String {
        self.cli("rabbitmqctl", node, args).await
    }

    async fn cli(&self, tool: &str, node: &str, args: &[&str]) -> String {
        let mut command = Command::new(format!("/usr/lib/rabbitmq/bin/{tool}"));
        command
            .env("HOME", &self.home)
            .env("RABBITMQ_CONF_ENV_FILE", "/dev/null")
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .args(["-n", node, "--timeout", "60"])
            .args(args);
        let described = format!("{tool} -n {node} {}", args.join(" "));
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("joined")
            .unwrap_or_else(|e| panic!("cannot run {described}: {e}"));
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{described} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// The index of the node holding the leader of the quorum queue `queue`, as a live node
    /// sees it.
    pub async fn leader_of(&self, queue: &str) -> usize {
        let asked = self.live().next().expect("a live node").name.clone();
        let listing = self
            .ctl(
                &asked,
                &[
                    "list_queues",
                    "name",
                    "leader",
                    "--no-table-headers",
                    "--quiet",
                ],
            )
            .await;
        let leader = listing
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .map(|(_, leader)| leader.trim().to_owned())
            .unwrap_or_else(|| panic!("no queue {queue} on {asked}:\n{listing}"));
        self.index_of(&leader)
    }

    fn index_of(&self, name: &str) -> usize {
        self.nodes
            .iter()
            .position(|node| node.name == name)
            .unwrap_or_else(|| panic!("{name} is not a node of this cluster"))
    }

    /// The connections whose client-given name contains `named`: (node index, process id).
    pub async fn connections(&self, named: &str) -> Vec<(usize, String)> {
        let asked = self.live().next().expect("a live node").name.clone();
        let listing = self
            .ctl(
                &asked,
                &[
                    "list_connections",
                    "pid",
                    "client_properties",
                    "--no-table-headers",
                    "--quiet",
                ],
            )
            .await;
        listing
            .lines()
            .filter(|line| line.contains(named))
            .filter_map(|line| {
                // An Erlang pid names its node: <gallery-test-PORT@localhost.1.2.3>.
                let pid = line.split('\t').next()?;
                let node = pid.strip_prefix('<')?.split('.').next()?;
                Some((self.index_of(node), pid.to_owned()))
            })
            .collect()
    }

    /// SIGKILL to node `index` and everything it started: a crash, not a shutdown. Returns at
    /// once: a node busy writing to a loaded disk may take a while to go, as it would.
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].group.signal("KILL");
        self.killed[index] = true;
    }
}

impl Drop for OwnRabbitCluster {
    fn drop(&mut self) {
        // Every node first (their groups' own Drop reaps them), then the cookie.
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.home);
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
