//! The storage engine against real files in temporary directories: ordering and merging under
//! concurrency, recovery from crashes at every byte, the watermark, rotation, GC and bounded
//! memory.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use binlog_proto::binlog::{Binlog, BinlogType};
use binlog_pump::storage::{BinlogMeta, Options, Storage, StorageError};
use prost::Message;

fn options() -> Options {
    Options {
        sync_log: true,
        segment_size: 4 << 10,
        write_buffer_bytes: 4 << 20,
        seal_at_close_min_bytes: u64::MAX,
    }
}

fn encode(binlog: Binlog) -> (BinlogMeta, Vec<u8>) {
    (BinlogMeta::of(&binlog), binlog.encode_to_vec())
}

fn prewrite(start_ts: i64) -> (BinlogMeta, Vec<u8>) {
    encode(Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts,
        prewrite_key: Some(format!("key-{start_ts}").into_bytes()),
        prewrite_value: Some(rows_of(start_ts).into()),
        ..Binlog::default()
    })
}

fn rows_of(start_ts: i64) -> Vec<u8> {
    format!("rows written by txn {start_ts}").into_bytes()
}

fn commit(start_ts: i64, commit_ts: i64) -> (BinlogMeta, Vec<u8>) {
    encode(Binlog {
        tp: BinlogType::Commit as i32,
        start_ts,
        commit_ts,
        prewrite_key: Some(format!("key-{start_ts}").into_bytes()),
        ..Binlog::default()
    })
}

fn rollback(start_ts: i64) -> (BinlogMeta, Vec<u8>) {
    encode(Binlog {
        tp: BinlogType::Rollback as i32,
        start_ts,
        ..Binlog::default()
    })
}

fn fake(ts: i64) -> (BinlogMeta, Vec<u8>) {
    encode(Binlog {
        tp: BinlogType::Rollback as i32,
        start_ts: ts,
        commit_ts: ts,
        ..Binlog::default()
    })
}

fn write(storage: &Storage, (meta, payload): (BinlogMeta, Vec<u8>)) {
    storage.write(meta, payload).unwrap();
}

fn write_txn(storage: &Storage, start_ts: i64, commit_ts: i64) {
    write(storage, prewrite(start_ts));
    write(storage, commit(start_ts, commit_ts));
}

/// Pulls everything after `after` and checks the served binlogs: strictly increasing, commits
/// merged with their prewrite's rows. Returns (commit ts, start ts) pairs.
fn pull_all(storage: &Storage, after: i64) -> Vec<(i64, i64)> {
    let mut served = Vec::new();
    let mut last = after;
    for binlog in storage.pull(after).unwrap() {
        let binlog = binlog.unwrap();
        assert!(binlog.commit_ts > last, "commit ts must strictly increase");
        last = binlog.commit_ts;
        let decoded = Binlog::decode(&binlog.payload[..]).unwrap();
        assert_eq!(decoded.commit_ts, binlog.commit_ts);
        assert_eq!(decoded.start_ts, binlog.start_ts);
        if binlog.start_ts == binlog.commit_ts {
            assert_eq!(
                decoded.tp,
                BinlogType::Rollback as i32,
                "fake binlogs as stored"
            );
        } else {
            assert_eq!(decoded.tp, BinlogType::Commit as i32);
            assert_eq!(
                decoded.prewrite_value,
                Some(rows_of(binlog.start_ts).into())
            );
        }
        served.push((binlog.commit_ts, binlog.start_ts));
    }
    served
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir.join("value"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

/// A timestamp oracle shared by the writer threads: like TiDB, a transaction gets its commit ts
/// only after its prewrite was acknowledged.
struct Tso(AtomicI64);

impl Tso {
    fn next(&self) -> i64 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }
}

#[test]
fn concurrent_transactions_are_served_in_commit_order_merged_with_their_prewrites() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), options()).unwrap();
    let tso = Tso(AtomicI64::new(1000));
    const THREADS: usize = 6;
    const TXNS_PER_THREAD: usize = 120;
    let mut expected: Vec<(i64, i64)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    for _ in 0..TXNS_PER_THREAD {
                        let start_ts = tso.next();
                        write(&storage, prewrite(start_ts));
                        std::thread::yield_now();
                        let commit_ts = tso.next();
                        write(&storage, commit(start_ts, commit_ts));
                        done.push((commit_ts, start_ts));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    expected.sort();

    let stats = storage.stats();
    assert_eq!(
        stats.records_written,
        (THREADS * TXNS_PER_THREAD * 2) as u64
    );
    assert!(
        stats.batches_written < stats.records_written,
        "concurrent writers share batches (group commit): {stats:?}"
    );
    assert!(storage.all_matched());
    assert_eq!(storage.max_commit_ts(), expected.last().unwrap().0);
    assert!(storage.stats().segments > 3, "rotation happened");
    assert_eq!(pull_all(&storage, 0), expected);

    // Resuming from the middle serves exactly the rest.
    let middle = expected[expected.len() / 2].0;
    let rest: Vec<_> = expected
        .iter()
        .copied()
        .filter(|(c, _)| *c > middle)
        .collect();
    assert_eq!(pull_all(&storage, middle), rest);
}

#[test]
fn reopening_keeps_everything_and_rebuilds_lost_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let storage = Storage::open(dir.path(), options()).unwrap();
        for i in 0..400 {
            let start_ts = 10 + i * 3;
            write_txn(&storage, start_ts, start_ts + 1);
            expected.push((start_ts + 1, start_ts));
        }
        write(&storage, prewrite(5000)); // a transaction still in flight
        assert_eq!(pull_all(&storage, 0), expected);
    }

    let reopen = || {
        let storage = Storage::open(dir.path(), options()).unwrap();
        assert_eq!(pull_all(&storage, 0), expected);
        assert!(
            !storage.all_matched(),
            "the in-flight prewrite is remembered"
        );
        assert_eq!(storage.max_commit_ts(), expected.last().unwrap().0);
        storage
    };
    drop(reopen());

    // Index files are derived data: lose one, damage another, and they are rebuilt.
    let index_dir = dir.path().join("index");
    let mut indexes: Vec<PathBuf> = fs::read_dir(&index_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    indexes.sort();
    assert!(indexes.len() >= 3);
    fs::remove_file(&indexes[0]).unwrap();
    let mut damaged = fs::read(&indexes[1]).unwrap();
    damaged[80] ^= 0xff;
    fs::write(&indexes[1], damaged).unwrap();
    fs::write(index_dir.join("000001.idx.tmp"), b"half-written").unwrap();

    let storage = reopen();
    assert!(indexes[0].exists() && !index_dir.join("000001.idx.tmp").exists());
    write(&storage, commit(5000, 5001));
    expected.push((5001, 5000));
    assert_eq!(pull_all(&storage, 0), expected);
    assert!(storage.all_matched());
}

#[test]
fn a_torn_tail_at_every_byte_is_truncated_and_nothing_before_it_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let storage = Storage::open(
            dir.path(),
            Options {
                segment_size: 1 << 20,
                ..options()
            },
        )
        .unwrap();
        for i in 0..20 {
            let start_ts = 100 + i * 10;
            write_txn(&storage, start_ts, start_ts + 5);
            expected.push((start_ts + 5, start_ts));
        }
        write(&storage, prewrite(900));
        write(&storage, commit(900, 905)); // the record that gets torn
    }
    let segment = segment_files(dir.path()).pop().unwrap();
    let intact = fs::read(&segment).unwrap();
    let (_, last_record) = commit(900, 905);
    let last_record_at = intact.len() - (16 + last_record.len());

    let mut tails: Vec<(String, Vec<u8>)> = (last_record_at..intact.len())
        .map(|cut| (format!("cut at {cut}"), intact[..cut].to_vec()))
        .collect();
    for flip in [3, 10, 14, 16, intact.len() - last_record_at - 1] {
        let mut bytes = intact.clone();
        bytes[last_record_at + flip] ^= 0x55;
        tails.push((format!("byte {flip} of the last record flipped"), bytes));
    }
    let mut zeros = intact.clone();
    zeros.extend_from_slice(&[0u8; 4096]);
    tails.push(("zeros after the last record".into(), zeros));

    for (case, bytes) in tails {
        let crashed = tempfile::tempdir().unwrap();
        fs::create_dir_all(crashed.path().join("value")).unwrap();
        let torn_segment = crashed
            .path()
            .join("value")
            .join(segment.file_name().unwrap());
        fs::write(&torn_segment, &bytes).unwrap();

        let storage = Storage::open(crashed.path(), options())
            .unwrap_or_else(|e| panic!("{case}: open failed: {e}"));
        let commit_survived = bytes.len() >= intact.len() && bytes[..intact.len()] == intact[..];
        let kept_len = fs::metadata(&torn_segment).unwrap().len() as usize;
        if commit_survived {
            assert_eq!(kept_len, intact.len(), "{case}: only what follows is cut");
        } else {
            assert_eq!(
                kept_len, last_record_at,
                "{case}: cut back to the last valid record"
            );
            assert_eq!(pull_all(&storage, 0), expected, "{case}");
            assert!(
                !storage.all_matched(),
                "{case}: prewrite 900 waits for its commit"
            );
        }

        // New writes follow the valid data and survive another reopen.
        write(&storage, commit(900, 905));
        write_txn(&storage, 910, 915);
        drop(storage);
        let storage = Storage::open(crashed.path(), options()).unwrap();
        let mut all = expected.clone();
        all.extend([(905, 900), (915, 910)]);
        assert_eq!(pull_all(&storage, 0), all, "{case}");
    }
}

#[test]
fn corruption_that_is_not_a_torn_tail_is_an_error_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path(), options()).unwrap();
        for i in 0..300 {
            write_txn(&storage, 10 + i * 2, 11 + i * 2);
        }
    }
    let segments = segment_files(dir.path());
    assert!(segments.len() >= 2);

    // A bad record in the middle of the newest segment, with valid records after it.
    let newest = segments.last().unwrap();
    let intact = fs::read(newest).unwrap();
    let mut bytes = intact.clone();
    bytes[20] ^= 0x01; // payload of the first record
    fs::write(newest, &bytes).unwrap();
    match Storage::open(dir.path(), options()) {
        Err(StorageError::CorruptRecord { path, offset, .. }) => {
            assert_eq!((path.as_path(), offset), (newest.as_path(), 0));
        }
        other => panic!("expected a corrupt record error, got {:?}", other.err()),
    }
    fs::write(newest, &intact).unwrap();

    // A bad record in a sealed segment whose index must be rebuilt.
    let sealed = &segments[0];
    let mut bytes = fs::read(sealed).unwrap();
    let second_record = 16 + u64::from_le_bytes(bytes[4..12].try_into().unwrap()) as usize;
    bytes[second_record + 2] ^= 0x01;
    fs::write(sealed, &bytes).unwrap();
    fs::remove_file(dir.path().join("index").join("000000.idx")).unwrap();
    let error = Storage::open(dir.path(), options()).err().unwrap();
    let message = error.to_string();
    assert!(
        matches!(&error, StorageError::CorruptRecord { offset, .. } if *offset == second_record as u64),
        "{message}"
    );
    assert!(
        message.contains("000000.vlog") && message.contains("sealed"),
        "{message}"
    );
}

#[test]
fn a_prewrite_without_commit_blocks_the_watermark_and_fake_binlogs_advance_it() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), options()).unwrap();
    write(&storage, fake(5));
    assert_eq!(
        storage.max_commit_ts(),
        5,
        "fake binlogs advance an idle pump"
    );

    write(&storage, prewrite(10)); // its commit is late
    write_txn(&storage, 20, 25);
    write(&storage, fake(30));
    write(&storage, prewrite(31));
    write(&storage, rollback(31)); // a real rollback: matched, never served
    assert_eq!(
        storage.max_commit_ts(),
        5,
        "prewrite 10 blocks everything behind it"
    );
    assert!(!storage.all_matched());
    let oldest = storage.oldest_unmatched_prewrite().unwrap();
    assert_eq!(oldest.start_ts, 10);
    assert_eq!(pull_all(&storage, 0), vec![(5, 5)]);

    let waiter = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let started = Instant::now();
            let watermark = storage.wait_for_commit_ts_above(5, Duration::from_secs(30));
            (watermark, started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(50));
        write(&storage, commit(10, 12));
        waiter.join().unwrap()
    });
    assert_eq!(waiter.0, 30);
    assert!(waiter.1 < Duration::from_secs(10), "woken, not timed out");

    assert!(storage.all_matched());
    assert_eq!(storage.oldest_unmatched_prewrite(), None);
    assert_eq!(
        pull_all(&storage, 0),
        vec![(5, 5), (12, 10), (25, 20), (30, 30)]
    );
    assert_eq!(pull_all(&storage, 12), vec![(25, 20), (30, 30)]);
    assert_eq!(
        storage.wait_for_commit_ts_above(30, Duration::from_millis(20)),
        30,
        "times out with the current watermark"
    );
}

#[test]
fn rotation_and_gc_delete_whole_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), options()).unwrap();
    // A long transaction: its prewrite lands in segment 0, its commit much later.
    write(&storage, prewrite(1));
    write(&storage, commit(1, 2));
    write(&storage, prewrite(3));
    for i in 0..600 {
        write_txn(&storage, 10 + i * 2, 11 + i * 2);
    }
    assert_eq!(storage.max_commit_ts(), 2, "prewrite 3 holds the watermark");
    write(&storage, commit(3, 2000));
    let watermark = storage.max_commit_ts();
    assert_eq!(watermark, 2000);
    let segments_before = storage.stats().segments;
    assert!(segments_before > 5);

    // Everything in segment 0 is below 500, but the commit at 2000 needs prewrite 3 from it.
    let outcome = storage.gc(500).unwrap();
    assert_eq!(outcome.gc_ts, 500);
    assert!(outcome.deleted_segments.is_empty(), "{outcome:?}");
    assert_eq!(storage.gc_ts(), 500);
    assert!(matches!(
        storage.pull(499),
        Err(StorageError::Purged {
            requested: 499,
            gc_ts: 500
        })
    ));
    let served = pull_all(&storage, 500);
    assert_eq!(served.first(), Some(&(501, 500)));
    assert_eq!(served.last(), Some(&(2000, 3)));

    for i in 0..300 {
        write_txn(&storage, 2001 + i * 2, 2002 + i * 2);
    }
    let segments_before = storage.stats().segments;
    let outcome = storage.gc(1199).unwrap();
    assert!(
        outcome.deleted_segments.is_empty(),
        "the commit at 2000 still needs prewrite 3 from segment 0: {outcome:?}"
    );
    assert!(matches!(
        storage.gc(2600),
        Err(StorageError::UnsafeGc {
            requested: 2600,
            max_commit_ts: 2600
        })
    ));

    // Once the long transaction's commit is below the gc ts too, old segments go.
    let outcome = storage.gc(2300).unwrap();
    assert!(!outcome.deleted_segments.is_empty());
    assert_eq!(outcome.deleted_segments[0], 0);
    let remaining = segment_files(dir.path());
    assert_eq!(remaining.len(), storage.stats().segments);
    assert_eq!(
        remaining.len(),
        segments_before - outcome.deleted_segments.len()
    );
    let rest: Vec<(i64, i64)> = (0..300)
        .map(|i| (2002 + i * 2, 2001 + i * 2))
        .filter(|(c, _)| *c > 2300)
        .collect();
    assert_eq!(pull_all(&storage, 2300), rest);
    assert_eq!(
        storage.gc(1000).unwrap().gc_ts,
        2300,
        "gc ts never goes back"
    );

    drop(storage);
    let storage = Storage::open(dir.path(), options()).unwrap();
    assert_eq!(storage.gc_ts(), 2300, "gc ts is persisted");
    assert!(matches!(
        storage.pull(1000),
        Err(StorageError::Purged { .. })
    ));
    assert_eq!(pull_all(&storage, 2300), rest);
}

#[test]
fn memory_holds_only_the_active_segment_index() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(
        dir.path(),
        Options {
            segment_size: 8 << 10,
            sync_log: false,
            ..options()
        },
    )
    .unwrap();
    let txns = 5000;
    let mut peak = 0;
    for i in 0..txns {
        write_txn(&storage, 10 + i * 2, 11 + i * 2);
        peak = peak.max(storage.stats().in_memory_index_entries);
    }
    let stats = storage.stats();
    // A commit record is well over 40 bytes on disk and a segment holds at most about 8 KiB
    // plus one batch.
    assert!(
        peak < 400,
        "peak {peak} entries in memory for {txns} commits"
    );
    assert!(stats.segments > 50);
    assert_eq!(stats.unmatched_prewrites, 0);
    assert_eq!(pull_all(&storage, 0).len(), txns as usize);
}

#[test]
fn large_records_pass_a_small_write_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(
        dir.path(),
        Options {
            write_buffer_bytes: 64 << 10,
            ..options()
        },
    )
    .unwrap();
    let big_rows = vec![0xab; 3 << 20];
    let (meta, payload) = encode(Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts: 7,
        prewrite_value: Some(big_rows.clone().into()),
        ..Binlog::default()
    });
    // The big record is admitted alone; small writers queue behind it within the budget.
    std::thread::scope(|scope| {
        scope.spawn(|| storage.write(meta, payload).unwrap());
        for i in 0..8 {
            let storage = &storage;
            scope.spawn(move || write_txn(storage, 100 + i * 2, 101 + i * 2));
        }
    });
    write(&storage, commit(7, 8));
    let served = pull_all_payloads(&storage);
    assert_eq!(served.len(), 9);
    let merged = Binlog::decode(&served[0][..]).unwrap();
    assert_eq!((merged.start_ts, merged.commit_ts), (7, 8));
    assert_eq!(merged.prewrite_value, Some(big_rows.into()));
}

fn pull_all_payloads(storage: &Storage) -> Vec<Vec<u8>> {
    storage
        .pull(0)
        .unwrap()
        .map(|binlog| binlog.unwrap().payload)
        .collect()
}

#[test]
fn writes_after_close_fail_and_probes_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open(dir.path(), options()).unwrap();
    let (meta, payload) = encode(Binlog::default());
    storage.write(meta, payload).unwrap();
    assert_eq!(
        fs::metadata(&segment_files(dir.path())[0]).unwrap().len(),
        0
    );
    storage.close();
    let (meta, payload) = prewrite(1);
    assert!(matches!(
        storage.write(meta, payload),
        Err(StorageError::Closed)
    ));
}

#[test]
fn a_clean_close_seals_the_segment_and_the_next_open_scans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sealing = Options {
        seal_at_close_min_bytes: 1,
        segment_size: 1 << 20,
        ..options()
    };
    {
        let storage = Storage::open(dir.path(), sealing.clone()).unwrap();
        write_txn(&storage, 1, 2);
    }
    assert!(dir.path().join("index").join("000000.idx").exists());
    let storage = Storage::open(dir.path(), sealing).unwrap();
    assert_eq!(storage.stats().active_fid, 1);
    assert_eq!(storage.stats().in_memory_index_entries, 0);
    assert_eq!(pull_all(&storage, 0), vec![(2, 1)]);
}

#[test]
fn a_crash_during_rotation_or_before_the_index_was_written_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let big_segments = Options {
        segment_size: 1 << 20,
        ..options()
    };
    {
        let storage = Storage::open(dir.path(), big_segments.clone()).unwrap();
        write_txn(&storage, 1, 2);
        write(&storage, prewrite(3));
    }
    // Crash after the next segment was created but before this one was sealed.
    fs::write(dir.path().join("value").join("000001.vlog"), b"").unwrap();
    {
        let storage = Storage::open(dir.path(), big_segments.clone()).unwrap();
        assert_eq!(storage.stats().active_fid, 1);
        assert!(
            dir.path().join("index").join("000000.idx").exists(),
            "sealed and indexed"
        );
        write(&storage, commit(3, 4));
        assert_eq!(pull_all(&storage, 0), vec![(2, 1), (4, 3)]);
    }
    // Crash after sealing but before the index file was written.
    {
        let storage = Storage::open(
            dir.path(),
            Options {
                seal_at_close_min_bytes: 1,
                ..big_segments.clone()
            },
        )
        .unwrap();
        write_txn(&storage, 5, 6);
    }
    fs::remove_file(dir.path().join("index").join("000001.idx")).unwrap();
    let storage = Storage::open(dir.path(), big_segments).unwrap();
    assert_eq!(storage.stats().active_fid, 2);
    assert!(
        dir.path().join("index").join("000001.idx").exists(),
        "rebuilt"
    );
    assert_eq!(pull_all(&storage, 0), vec![(2, 1), (4, 3), (6, 5)]);
}
