//! The shell entrypoints of the pump and drainer containers. They run `/pump` or `/drainer` with
//! the container's arguments and keep a node that went offline from registering online again
//! (a pump restarted after `offline` re-registers as a new pump and notifies the drainers, as
//! the original does; only the operator may decide that ordinal comes back, on a fresh volume):
//!
//! - **after a clean exit nobody asked for** (exit 0 without a signal: the node went `offline`
//!   after `close`, or `paused` after a pause over its API), the container *parks*: it idles
//!   until the pod is deleted instead of exiting and being restarted by the kubelet;
//! - **pump only, at start**: if the data volume already holds pump data and the registry lists
//!   this pod's node id as `offline`, the pod is a recreated pump that was offlined (for example
//!   evicted between going offline and the operator lowering the replicas): it parks at once.
//!   The check uses `/binlogctl` (in the project's images); without it the pump just starts.
//!
//! SIGTERM is passed on to the node, which then ends `paused` as usual, and the container exits
//! with the node's status. The images need `/bin/sh`; `sleep`, `grep` and `kill` are POSIX.

use crate::names;

use super::pump::POD_NAME_ENV;

/// `$0` given to the pump launcher (shows in `ps`).
pub const PUMP_LAUNCHER_NAME: &str = "pump-launcher";
/// `$0` given to the drainer launcher.
pub const DRAINER_LAUNCHER_NAME: &str = "drainer-launcher";

/// The container command running `script`: `/bin/sh -c <script> <name>`; the container's
/// `args` become the script's `"$@"`.
pub fn command(script: String, name: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script, name.into()]
}

/// Shell functions and the supervision part shared by both launchers: run `binary "$@"`, pass
/// SIGTERM/SIGINT on, park after an unrequested clean exit.
fn supervise(binary: &str, what: &str) -> String {
    format!(
        r#"child=""
signalled=0
trap 'signalled=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
{binary} "$@" &
child=$!
# A signal that came before `child` was set is passed on now (traps run between commands).
[ "$signalled" = 0 ] || kill -TERM "$child" 2>/dev/null
wait "$child"
status=$?
while kill -0 "$child" 2>/dev/null; do
  wait "$child"
  status=$?
done
if [ "$signalled" = 0 ] && [ "$status" = 0 ]; then
  park "{what} exited by itself (offline, or paused over its API)"
fi
exit "$status"
"#
    )
}

fn park_function(launcher: &str) -> String {
    format!(
        r#"park() {{
  stop=0
  sleeper=""
  trap 'stop=1; [ -n "$sleeper" ] && kill "$sleeper" 2>/dev/null' TERM INT
  echo "{launcher}: $1; parked until the operator removes this pod" >&2
  while [ "$stop" = 0 ]; do
    sleep 3600 &
    sleeper=$!
    [ "$stop" = 0 ] || kill "$sleeper" 2>/dev/null
    wait "$sleeper"
  done
  exit 0
}}
"#
    )
}

/// The pump launcher.
pub fn pump_script() -> String {
    let data = names::DATA_DIR;
    let tls = names::CLUSTER_TLS_DIR;
    format!(
        r#"{park}pd_urls=""
for arg in "$@"; do
  case "$arg" in -pd-urls=*) pd_urls="${{arg#-pd-urls=}}" ;; esac
done
tls=""
if [ -f {tls}/ca.crt ]; then
  tls="-ssl-ca={tls}/ca.crt -ssl-cert={tls}/tls.crt -ssl-key={tls}/tls.key"
fi
if [ -d {data}/value ] && [ -x /binlogctl ] &&
  /binlogctl -pd-urls="$pd_urls" $tls -cmd pumps -show-offline-nodes 2>/dev/null |
  grep -q "NodeID: ${{{pod}}}, Addr: [^,]*, State: offline,"; then
  park "pump ${{{pod}}} is offline in the registry and its volume holds its old data"
fi
{supervise}"#,
        park = park_function(PUMP_LAUNCHER_NAME),
        pod = POD_NAME_ENV,
        supervise = supervise("/pump", "pump"),
    )
}

/// The drainer launcher. A drainer that went offline may legitimately start again (it resumes
/// from its checkpoint), so there is no start-up check; only the park after a clean exit.
pub fn drainer_script() -> String {
    format!(
        "{}{}",
        park_function(DRAINER_LAUNCHER_NAME),
        supervise("/drainer", "drainer")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_script_checks_the_registry_only_for_an_existing_volume() {
        let script = pump_script();
        assert!(script.contains("if [ -d /data/value ] && [ -x /binlogctl ] &&"));
        assert!(script.contains("grep -q \"NodeID: ${POD_NAME}, Addr: [^,]*, State: offline,\""));
        assert!(script.contains("-ssl-ca=/var/lib/binlog-tls/ca.crt"));
        assert!(script.contains("/pump \"$@\" &"));
    }

    #[test]
    fn drainer_script_supervises_the_drainer() {
        let script = drainer_script();
        assert!(script.contains("/drainer \"$@\" &"));
        assert!(!script.contains("binlogctl"));
    }

    #[test]
    fn scripts_are_valid_posix_shell() {
        for script in [pump_script(), drainer_script()] {
            let status = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .status()
                .unwrap();
            assert!(status.success(), "sh -n rejects:\n{script}");
        }
    }

    /// The supervision part around a stand-in node `script` in a temporary directory.
    fn launcher(node_body: &str) -> (tempfile::TempDir, std::process::Command) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("node");
        std::fs::write(&node, format!("#!/bin/sh\n{node_body}\n")).unwrap();
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = format!(
            "{}{}",
            park_function("test"),
            supervise(&node.display().to_string(), "node")
        );
        let mut command = std::process::Command::new("sh");
        command
            .args(["-c", &script, "test"])
            .stderr(std::process::Stdio::piped());
        (dir, command)
    }

    fn first_stderr_line(child: &mut std::process::Child) -> String {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(child.stderr.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line
    }

    fn terminate(child: &std::process::Child) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    #[test]
    fn a_failure_is_passed_on() {
        let (_dir, mut command) = launcher("exit 3");
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert!(output.stderr.is_empty(), "no parking after a failure");
    }

    #[test]
    fn a_clean_exit_parks_until_the_pod_is_deleted() {
        let (_dir, mut command) = launcher("exit 0");
        let mut child = command.spawn().unwrap();
        let line = first_stderr_line(&mut child);
        assert!(
            line.contains("node exited by itself") && line.contains("parked"),
            "{line}"
        );
        assert!(child.try_wait().unwrap().is_none(), "parked, still running");
        terminate(&child);
        assert_eq!(child.wait().unwrap().code(), Some(0));
    }

    #[test]
    fn sigterm_is_passed_to_the_node_and_does_not_park() {
        let (_dir, mut command) =
            launcher("trap 'exit 0' TERM\necho running >&2\nwhile :; do sleep 1; done");
        let mut child = command.spawn().unwrap();
        assert_eq!(first_stderr_line(&mut child), "running\n");
        terminate(&child);
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0));
        assert!(
            !String::from_utf8_lossy(&output.stderr).contains("parked"),
            "a stop that was asked for is not parked"
        );
    }
}
