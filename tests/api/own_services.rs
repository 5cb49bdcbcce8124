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
