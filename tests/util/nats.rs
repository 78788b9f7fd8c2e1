//! Real nats-server processes on loopback: one server, or a cluster of three with
//! JetStream, each in its own folder of a temp dir, killed (SIGKILL) on drop.
//! `scripts/install-test-deps.sh` installs nats-server (2.11 or later).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The nats-server binary: on the PATH, else where pip puts scripts.
pub fn server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("KEFU_NATS_SERVER") {
        return PathBuf::from(p);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    if let Some(p) = on_path {
        return p;
    }
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()).join("nats-server"));
    match scripts {
        Some(p) if p.is_file() => p,
        _ => panic!("nats-server not found: run scripts/install-test-deps.sh (or set KEFU_NATS_SERVER)"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One server of the cluster.
pub struct Node {
    /// Its name.
    pub name: String,
    /// Client port.
    pub port: u16,
    child: Option<Child>,
    config: PathBuf,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::File::create(self.config.with_extension("log")).unwrap();
        let child = Command::new(server_binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
    }

    /// Kills it with SIGKILL and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and folder.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Running servers and their folder.
pub struct Cluster {
    /// The servers.
    pub nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// `n` servers with JetStream (`n` = 1: a single server; otherwise a cluster with
    /// routes between all), started; returns once JetStream answers (bounded: 2 minutes).
    pub async fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> =
            ports.iter().map(|(_, c)| format!("\"nats-route://127.0.0.1:{c}\"")).collect();
        let mut nodes = Vec::new();
        for (i, (port, cport)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let cluster = if n > 1 {
                format!(
                    "cluster {{\n  name: kefu\n  listen: \"127.0.0.1:{cport}\"\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                )
            } else {
                String::new()
            };
            let text = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{port}\"\n\
                 jetstream {{\n  store_dir: {store:?}\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n{cluster}"
            );
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(&config, text).unwrap();
            let mut node = Node { name, port: *port, child: None, config };
            node.start();
            nodes.push(node);
        }
        let c = Self { nodes, _dir: dir };
        c.wait_ready().await;
        c
    }

    /// Every server's URL, comma-separated (what kefu's `--nats` takes).
    pub fn urls(&self) -> String {
        self.nodes.iter().map(Node::url).collect::<Vec<_>>().join(",")
    }

    /// The servers' process ids (killed nodes left out).
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(|n| n.child.as_ref().map(Child::id)).collect()
    }

    /// Server logs folder (for a failing test's message).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    async fn wait_ready(&self) {
        let urls = self.urls();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            let ready = async {
                let addrs: Vec<async_nats::ServerAddr> =
                    urls.split(',').filter_map(|u| u.parse().ok()).collect();
                let client = async_nats::connect(addrs).await.ok()?;
                let js = async_nats::jetstream::new(client);
                js.query_account().await.ok()
            };
            if tokio::time::timeout(Duration::from_secs(10), ready).await.ok().flatten().is_some() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server cluster not ready in 2 minutes; logs in {:?}",
                self.dir()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A `kefu run --nats` worker's command, for the tests and the cluster benchmark alike:
/// `config` is written to `<id>.toml`, the log goes to `<id>.log` and the state to `<id>/`,
/// all in `dir`.
pub fn worker_command(
    dir: &Path,
    urls: &str,
    partitions: u32,
    replicas: usize,
    id: &str,
    config: &str,
) -> std::io::Result<Command> {
    let path = dir.join(format!("{id}.toml"));
    std::fs::write(&path, config)?;
    let log = std::fs::File::create(dir.join(format!("{id}.log")))?;
    let mut c = Command::new(env!("CARGO_BIN_EXE_kefu"));
    c.args([
        "run",
        "--nats",
        urls,
        "--partitions",
        &partitions.to_string(),
        "--replicas",
        &replicas.to_string(),
    ])
    .args(["--worker", id, "--state"])
    .arg(dir.join(id))
    .arg("--config")
    .arg(&path)
    .current_dir(dir)
    .env_remove("RUST_LOG")
    .stdout(Stdio::null())
    .stderr(log);
    Ok(c)
}
