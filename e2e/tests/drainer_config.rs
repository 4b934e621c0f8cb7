//! What binlogctl writes for a drainer, read by the drainer's own code: a `generate_meta`
//! savepoint (time lines included) as the file checkpoint, and an `encrypt`ed password in the
//! drainer's TOML.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::process::{Command, Output};

use binlog_drainer::checkpoint::CheckpointStore;
use binlog_drainer::checkpoint::file::FileCheckpoint;
use binlog_drainer::config::{Config, Flags, SinkConfig};
use e2e::{World, bin_path};

fn binlogctl(args: &[&str]) -> Output {
    let output = Command::new(bin_path("binlogctl"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "binlogctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generate_meta_savepoint_is_where_the_drainer_starts() {
    let world = World::start().await.unwrap();
    let before = world.pd.get_ts().await.unwrap();
    let data_dir = world.dir.path().join("data.drainer");
    binlogctl(&[
        "-pd-urls",
        &world.pd_sim.url(),
        "-cmd",
        "generate_meta",
        "-data-dir",
        data_dir.to_str().unwrap(),
        "-time-zone",
        "Asia/Shanghai",
    ]);
    let text = std::fs::read_to_string(data_dir.join("savepoint")).unwrap();
    assert_eq!(
        text.lines().count(),
        3,
        "the time lines are there: {text:?}"
    );

    let checkpoint = FileCheckpoint::new(&data_dir, 1).load().await.unwrap();
    assert!(
        text.starts_with(&format!("commitTS = {}\n", checkpoint.commit_ts)),
        "{text:?} vs {checkpoint:?}"
    );
    assert!(
        checkpoint.commit_ts > before,
        "a fresh PD timestamp: {checkpoint:?}, before {before}"
    );
    assert!(!checkpoint.consistent);
}

#[test]
fn a_binlogctl_encrypted_password_configures_the_downstream() {
    let output = binlogctl(&["-cmd", "encrypt", "-text", "s3cret"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let sealed = stdout
        .split("[encrypted=")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .map(|s| s.trim_matches('"'))
        .unwrap_or_else(|| panic!("no encrypted field in {stdout}"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drainer.toml");
    std::fs::write(
        &path,
        format!(
            "[syncer]\ndb-type = \"mysql\"\n[syncer.to]\nhost = \"db\"\nuser = \"binlog\"\nencrypted_password = \"{sealed}\"\n"
        ),
    )
    .unwrap();
    let flags =
        Flags::parse_args(["drainer", "-config", path.to_str().unwrap()], |_| None).unwrap();
    let config = Config::load(&flags).unwrap();
    let SinkConfig::Mysql(sink) = &config.sink else {
        panic!("{:?}", config.sink)
    };
    assert_eq!(sink.connection.password.expose(), "s3cret");
}
