//! Redis and RabbitMQ instances a test starts for itself (own ports, own data dir, own
//! process group), to freeze or kill without touching the machine's shared ones, and a
//! cluster of three RabbitMQ nodes. Each ends with the value that started it.

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
        Group { leader, dir, what }
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
        let _ = std::fs::remove_dir_all(&self.dir);
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
