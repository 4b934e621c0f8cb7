//! The test world's servers start for real, answer, and are gone once their handles drop.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::path::Path;

use e2e::{Etcd, MariaDb};

fn alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would show state Z.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.contains(") Z "))
        .unwrap_or(false)
}

#[test]
fn mariadb_answers_queries_and_stops_with_its_handle() {
    let db = MariaDb::start().unwrap();
    db.query("CREATE DATABASE t; CREATE TABLE t.x (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t.x VALUES (1,'a'),(2,NULL)")
        .unwrap();
    assert_eq!(
        db.query("SELECT id, v FROM t.x ORDER BY id").unwrap(),
        "1\ta\n2\tNULL\n"
    );
    assert!(db.url().starts_with("mysql://root@127.0.0.1:"));

    let pid = std::fs::read_to_string(db.data_dir().parent().unwrap().join("mysqld.pid"))
        .unwrap()
        .trim()
        .parse::<u32>()
        .unwrap();
    let data_dir = db.data_dir();
    assert!(alive(pid));
    drop(db);
    assert!(!alive(pid), "mariadbd is stopped");
    assert!(!Path::new(&data_dir).exists(), "its directory is removed");
}

#[test]
fn a_panicking_test_still_stops_etcd() {
    let pid = std::panic::catch_unwind(|| {
        let etcd = Etcd::start().unwrap();
        let pid = etcd.pid();
        assert!(alive(pid));
        std::panic::panic_any(pid);
    })
    .unwrap_err()
    .downcast::<u32>()
    .unwrap();
    assert!(!alive(*pid), "etcd was stopped during unwinding");
}
