//! Smoke test of the `tidb-binlog-rs` image as `scripts/images` builds it (a debootstrapped
//! Debian base plus this build's binaries): the pump in the container against real etcd behind
//! `pd-sim` (host network, loopback addresses) answers `/status`, `docker stop` leaves it
//! `paused` in the registry, and, run through the operator's pump launcher, a pump that went
//! offline parks and stays offline across a container restart.
//!
//! Needs a Docker engine. Without the `docker` command the tests are skipped with a loud message;
//! with the command but no working engine they fail. The first run builds the base image with
//! debootstrap (a few minutes, cached in ~/.cache/tidb-binlog-rs afterwards).

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use binlog_cluster::{Action, NodeKind, NodeState, TlsSettings};
use binlog_operator::builders::launcher;
use e2e::{World, free_port};

/// Polls (each [`POLL`] apart) before a wait is declared failed; bounded by count.
const POLLS: usize = 300;
const POLL: Duration = Duration::from_millis(200);

fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap()
}

fn docker_ok(args: &[&str]) -> String {
    let output = docker(args);
    assert!(
        output.status.success(),
        "docker {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Whether the `docker` command exists; says loudly when it does not.
fn docker_available() -> bool {
    match Command::new("docker").arg("--version").output() {
        Ok(_) => true,
        Err(err) => {
            eprintln!(
                "\n\n*** SKIPPED: the image smoke test needs the `docker` command ({err}). ***\n\n"
            );
            false
        }
    }
}

/// The image under test, tagged for this process, removed when dropped; and every container
/// started from it, removed by name.
struct Image {
    tag: String,
    containers: Vec<String>,
}

impl Image {
    /// Builds `tidb-binlog-rs:<unique tag>` from this build's binaries with `scripts/images`.
    fn build() -> Image {
        let pump = e2e::bin_path("pump");
        let bin_dir = pump.parent().unwrap();
        // The launcher's offline check runs binlogctl inside the image.
        let _ = e2e::bin_path("binlogctl");
        let tag = format!("smoke-{}", std::process::id());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let output = Command::new(root.join("scripts/images"))
            .args(["--only", "binlog", "--tag", &tag, "--bin-dir"])
            .arg(bin_dir)
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "scripts/images failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Image {
            tag: format!("tidb-binlog-rs:{tag}"),
            containers: Vec::new(),
        }
    }

    /// `docker run -d --network host` with `args` before the image and `command` after it.
    fn run(&mut self, args: &[&str], command: &[&str]) -> String {
        let name = format!(
            "binlog-smoke-{}-{}",
            std::process::id(),
            self.containers.len()
        );
        let mut all = vec!["run", "-d", "--name", &name, "--network", "host"];
        all.extend(args);
        all.push(&self.tag);
        all.extend(command);
        self.containers.push(name.clone());
        docker_ok(&all);
        name
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = docker(&["rm", "-f", name]);
        }
        let _ = docker(&["rmi", &self.tag]);
    }
}

async fn http_status(addr: &str) -> Option<serde_json::Value> {
    let url = format!("http://{addr}/status");
    let (code, body) = binlog_cluster::control::http_request(&TlsSettings::default(), "GET", &url)
        .await
        .ok()?;
    (code == 200)
        .then(|| serde_json::from_slice(&body).ok())
        .flatten()
}

/// Waits until `docker logs` of `container` contains `needle`; returns the logs.
async fn wait_logs(container: &str, needle: &str) -> String {
    let mut logs = String::new();
    for _ in 0..POLLS {
        let output = docker(&["logs", container]);
        logs = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if logs.contains(needle) {
            return logs;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{container} never logged {needle:?}; logs:\n{logs}");
}

async fn pump_state(world: &World, id: &str) -> NodeState {
    world.registry.get(NodeKind::Pump, id).await.unwrap().state
}

fn running(container: &str) -> bool {
    docker_ok(&["inspect", "-f", "{{.State.Running}}", container]) == "true"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pump_image_serves_status_and_ends_paused_on_docker_stop() {
    if !docker_available() {
        return;
    }
    let mut image = Image::build();
    let world = World::start().await.unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let container = image.run(
        &[],
        &[
            &format!("-pd-urls={}", world.pd_sim.url()),
            &format!("-addr={addr}"),
            "-data-dir=/data",
            "-node-id=smoke-pump",
            "-heartbeat-interval=1",
        ],
    );

    let mut status = None;
    for _ in 0..POLLS {
        status = http_status(&addr).await;
        if status.is_some() {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let status = status.unwrap_or_else(|| {
        panic!(
            "the pump in the container never answered /status:\n{}",
            String::from_utf8_lossy(&docker(&["logs", &container]).stderr)
        )
    });
    assert_eq!(
        status["status"]["smoke-pump"]["state"], "online",
        "{status}"
    );
    assert!(
        world
            .wait_state(NodeKind::Pump, "smoke-pump", NodeState::Online)
            .await
    );

    docker_ok(&["stop", "-t", "30", &container]);
    assert_eq!(
        docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &container]),
        "0"
    );
    assert_eq!(pump_state(&world, "smoke-pump").await, NodeState::Paused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offlined_pump_parks_and_stays_offline_across_a_container_restart() {
    if !docker_available() {
        return;
    }
    let mut image = Image::build();
    let world = World::start().await.unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let script = launcher::pump_script();
    // As the StatefulSet runs it: the launcher, with the pod name in POD_NAME.
    let container = image.run(
        &["-e", "POD_NAME=smoke-park", "--entrypoint", "/bin/sh"],
        &[
            "-c",
            &script,
            launcher::PUMP_LAUNCHER_NAME,
            &format!("-pd-urls={}", world.pd_sim.url()),
            &format!("-addr={addr}"),
            &format!("-advertise-addr={addr}"),
            "-data-dir=/data",
            "-node-id=smoke-park",
            "-heartbeat-interval=1",
        ],
    );
    assert!(
        world
            .wait_state(NodeKind::Pump, "smoke-park", NodeState::Online)
            .await,
        "{}",
        String::from_utf8_lossy(&docker(&["logs", &container]).stderr)
    );

    // Offline (no drainer to wait for): the pump exits 0 and the container parks.
    binlog_cluster::apply_action(&TlsSettings::default(), &addr, "smoke-park", Action::Close)
        .await
        .unwrap();
    wait_logs(&container, "pump exited by itself").await;
    assert!(running(&container), "a parked container keeps running");
    assert_eq!(pump_state(&world, "smoke-park").await, NodeState::Offline);

    // The kubelet restarting the container (or a new pod on the same volume): it sees its old
    // data and the offline record, and parks before starting the pump.
    docker_ok(&["restart", "-t", "10", &container]);
    let logs = wait_logs(
        &container,
        "is offline in the registry and its volume holds",
    )
    .await;
    assert!(running(&container), "{logs}");
    assert!(
        http_status(&addr).await.is_none(),
        "the pump must not be serving"
    );
    assert_eq!(
        pump_state(&world, "smoke-park").await,
        NodeState::Offline,
        "the restarted pump must not register online again; logs:\n{logs}"
    );
}
