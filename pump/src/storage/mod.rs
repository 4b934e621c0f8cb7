//! The pump's storage engine: a durable, commit-ordered store of binlogs.
//!
//! ```text
//! <dir>/value/NNNNNN.vlog   value log segments: the binlogs themselves, the write-ahead log
//! <dir>/index/NNNNNN.idx    commit-ts index of each sealed segment (derived, rebuildable)
//! <dir>/gc_ts               ts up to which binlogs may have been purged
//! ```
//!
//! Writers call [`Storage::write`], which returns once the binlog is durable (group-committed by
//! one writer thread: one `write` and one `fdatasync` per batch, see `vlog`). The writer thread
//! then indexes each binlog and feeds the [`sorter`] that computes the watermark
//! ([`Storage::max_commit_ts`]). Readers [`Storage::pull`] committed binlogs in strictly
//! increasing commit ts up to the watermark, each commit merged with its prewrite, and wait for
//! more with [`Storage::wait_for_commit_ts_above`]. [`Storage::gc`] drops whole old segments.
//!
//! Everything here is synchronous std I/O and threads: no network, no PD, no gRPC. The server wraps
//! blocking calls in `spawn_blocking`. Free disk space is the server's concern too.

mod binlog;
mod error;
mod index;
mod pull;
pub mod record;
mod recovery;
mod segment;
pub mod sorter;
mod vlog;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

pub use binlog::{BinlogKind, BinlogMeta};
pub use error::{Result, StorageError};
pub use pull::{Pull, PulledBinlog};
pub use record::RecordDefect;
pub use segment::ValuePointer;
pub use sorter::OldestUnmatched;

use error::IoContext;
use index::{IndexEntry, MemIndex, SegmentSummary, index_path, sync_dir, write_index_file};
use segment::{SEGMENT_EXTENSION, numbered_path};
use sorter::Sorter;
use vlog::{ActiveSegment, WriteQueue, WriteRequest};

/// How the storage behaves; [`Options::default`] matches the original pump.
#[derive(Debug, Clone)]
pub struct Options {
    /// `fdatasync` every batch before acknowledging it (`storage.sync-log`).
    pub sync_log: bool,
    /// A segment is sealed and a new one started once it holds this many bytes. A segment may
    /// exceed it by at most one batch.
    pub segment_size: u64,
    /// Payload bytes that may wait in the write queue or be in flight; writers block beyond it.
    pub write_buffer_bytes: usize,
    /// At close, the active segment is sealed if it holds at least this many bytes; smaller ones
    /// are left open and continued (after a rescan) on the next open.
    pub seal_at_close_min_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sync_log: true,
            segment_size: 500 << 20,
            write_buffer_bytes: 64 << 20,
            seal_at_close_min_bytes: 50 << 10,
        }
    }
}

/// The result of a [`Storage::gc`] call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOutcome {
    /// The gc ts in force afterwards.
    pub gc_ts: i64,
    /// Segments deleted by this call.
    pub deleted_segments: Vec<u32>,
}

/// Figures for metrics and for tests of bounded memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageStats {
    pub max_commit_ts: i64,
    pub gc_ts: i64,
    pub segments: usize,
    pub active_fid: u32,
    /// Index entries held in memory: the active segment's (and one being sealed). Never the
    /// backlog's.
    pub in_memory_index_entries: usize,
    pub unmatched_prewrites: usize,
    /// Records appended and the batches (each one `write` + one `fdatasync`) they went in.
    pub records_written: u64,
    pub batches_written: u64,
}

/// The storage engine. Cheap to share: all methods take `&self` and are thread-safe.
pub struct Storage {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

pub(crate) struct Shared {
    value_dir: PathBuf,
    index_dir: PathBuf,
    gc_ts_path: PathBuf,
    options: Options,
    state: Mutex<State>,
    /// Signalled when the watermark moves, and at close.
    progress: Condvar,
    queue: WriteQueue,
    /// Serialises `gc` calls (which sync files) without holding `state`.
    gc_running: Mutex<()>,
    records_written: AtomicU64,
    batches_written: AtomicU64,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn segment_path(&self, fid: u32) -> PathBuf {
        numbered_path(&self.value_dir, fid, SEGMENT_EXTENSION)
    }

    pub(crate) fn index_path(&self, fid: u32) -> PathBuf {
        index_path(&self.index_dir, fid)
    }
}

/// What readers and the writer share, under one short-held lock.
pub(crate) struct State {
    /// Every segment on disk, the last one being the active segment.
    pub segments: BTreeMap<u32, SegmentState>,
    pub sorter: Sorter<ValuePointer>,
    pub gc_ts: i64,
    pub closed: bool,
}

pub(crate) struct SegmentState {
    pub summary: SegmentSummary,
    /// The entries while the segment is active or its index file is being written; `None` once
    /// the index file is durable.
    pub memory: Option<Arc<MemIndex>>,
}

impl SegmentState {
    fn new_active(fid: u32) -> Self {
        SegmentState {
            summary: SegmentSummary::empty(fid),
            memory: Some(Arc::default()),
        }
    }
}

impl State {
    fn new(gc_ts: i64) -> Self {
        State {
            segments: BTreeMap::new(),
            sorter: Sorter::new(),
            gc_ts,
            closed: false,
        }
    }

    /// Accounts for a durable record: feeds the sorter, indexes it if it is served.
    fn apply(&mut self, meta: &BinlogMeta, pointer: ValuePointer, now: Instant) {
        let entry = if meta.kind == BinlogKind::Prewrite {
            self.sorter.push_prewrite(meta.start_ts, pointer, now);
            None
        } else {
            let prewrite = self.sorter.push_outcome(meta.start_ts, meta.commit_ts);
            meta.served_as().map(|served| IndexEntry {
                commit_ts: meta.commit_ts,
                offset: pointer.offset,
                served,
                prewrite: prewrite.filter(|_| served == binlog::Served::Commit),
            })
        };
        let segment = self
            .segments
            .entry(pointer.fid)
            .or_insert_with(|| SegmentState::new_active(pointer.fid));
        segment.summary.add_record(meta.max_ts(), entry.as_ref());
        if let Some(entry) = entry {
            Arc::make_mut(segment.memory.get_or_insert_default()).insert(entry);
        }
    }

    fn in_memory_entries(&self) -> usize {
        self.segments
            .values()
            .filter_map(|segment| segment.memory.as_ref())
            .map(|memory| memory.len())
            .sum()
    }
}

impl Storage {
    /// Opens (or creates) the storage in `dir`, recovering from whatever a crash left: a torn
    /// tail of the newest segment is truncated, missing or stale index files are rebuilt, the
    /// watermark is recomputed. Corruption anywhere else is an error naming file and offset.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self> {
        let dir = dir.as_ref();
        let value_dir = dir.join("value");
        let index_dir = dir.join("index");
        for d in [dir, &value_dir, &index_dir] {
            fs::create_dir_all(d).context("create directory", d)?;
        }
        let gc_ts_path = dir.join("gc_ts");
        let gc_ts = read_gc_ts(&gc_ts_path)?;
        let (state, active) = recovery::recover(&value_dir, &index_dir, gc_ts, Instant::now())?;
        info!(
            dir = %dir.display(),
            segments = state.segments.len(),
            active_fid = active.fid,
            max_commit_ts = state.sorter.max_commit_ts(),
            unmatched_prewrites = state.sorter.unmatched_len(),
            gc_ts,
            "storage opened"
        );
        let shared = Arc::new(Shared {
            value_dir,
            index_dir,
            gc_ts_path,
            queue: WriteQueue::new(options.write_buffer_bytes.max(1)),
            options,
            state: Mutex::new(state),
            progress: Condvar::new(),
            gc_running: Mutex::new(()),
            records_written: AtomicU64::new(0),
            batches_written: AtomicU64::new(0),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("pump-vlog-writer".into())
                .spawn(move || Writer::new(shared, active).run())
                .context("start writer thread for", dir)?
        };
        Ok(Storage {
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Stores one binlog (`payload` is the marshalled `binlog.Binlog` that `meta` describes) and
    /// returns once it is durable (or written, without `sync_log`). Empty probes (start and
    /// commit ts both 0) are accepted and dropped, like the original.
    ///
    /// `meta` must describe `payload`: recovery re-derives it from the payload.
    pub fn write(&self, meta: BinlogMeta, payload: Vec<u8>) -> Result<()> {
        debug_assert_eq!(BinlogMeta::decode(&payload).ok(), Some(meta));
        if meta.is_empty_probe() {
            return Ok(());
        }
        let (reply, done) = tokio::sync::oneshot::channel();
        self.shared.queue.submit(WriteRequest {
            meta,
            payload,
            reply,
        })?;
        done.blocking_recv().unwrap_or(Err(StorageError::Closed))
    }

    /// [`Storage::write`] for async callers: waits for budget and durability without blocking a
    /// runtime thread (no thread is parked per request).
    pub async fn write_async(&self, meta: BinlogMeta, payload: Vec<u8>) -> Result<()> {
        debug_assert_eq!(BinlogMeta::decode(&payload).ok(), Some(meta));
        if meta.is_empty_probe() {
            return Ok(());
        }
        let (reply, done) = tokio::sync::oneshot::channel();
        self.shared
            .queue
            .submit_async(WriteRequest {
                meta,
                payload,
                reply,
            })
            .await?;
        done.await.unwrap_or(Err(StorageError::Closed))
    }

    /// Every commit at or below this ts has been stored; pulls serve up to here.
    pub fn max_commit_ts(&self) -> i64 {
        self.shared.lock().sorter.max_commit_ts()
    }

    /// No prewrite is waiting for its commit or rollback.
    pub fn all_matched(&self) -> bool {
        self.shared.lock().sorter.all_matched()
    }

    /// The prewrite holding the watermark back and how long it has waited (since it arrived, or
    /// since this open). A caller should report it loudly past max-txn-timeout; it is never
    /// assumed rolled back.
    pub fn oldest_unmatched_prewrite(&self) -> Option<OldestUnmatched> {
        self.shared.lock().sorter.oldest_unmatched(Instant::now())
    }

    /// Blocks until the watermark exceeds `ts`, the timeout passes, or the storage closes;
    /// returns the watermark.
    pub fn wait_for_commit_ts_above(&self, ts: i64, timeout: Duration) -> i64 {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            let now = Instant::now();
            if state.sorter.max_commit_ts() > ts || state.closed || now >= deadline {
                return state.sorter.max_commit_ts();
            }
            state = self
                .shared
                .progress
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Committed binlogs with commit ts above `after_commit_ts`, in strictly increasing commit ts,
    /// up to the watermark as it is now. Asking for binlogs that GC has purged is an error.
    pub fn pull(&self, after_commit_ts: i64) -> Result<Pull> {
        Pull::new(Arc::clone(&self.shared), after_commit_ts)
    }

    /// The ts up to which binlogs may have been purged.
    pub fn gc_ts(&self) -> i64 {
        self.shared.lock().gc_ts
    }

    /// Raises the gc ts to `ts` and deletes the sealed segments that hold nothing above it.
    ///
    /// A segment is deleted only if it and every older segment have all their ts ≤ `ts`, and no
    /// remaining segment and no waiting prewrite points into it (a commit above `ts` may still
    /// need its prewrite from an older segment); such segments go in a later call. `ts` must be
    /// below the watermark, like the original. Writes are never blocked: files are deleted
    /// outside the lock.
    pub fn gc(&self, ts: i64) -> Result<GcOutcome> {
        let _one_at_a_time = self
            .shared
            .gc_running
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        {
            let state = self.shared.lock();
            if ts <= state.gc_ts {
                return Ok(GcOutcome {
                    gc_ts: state.gc_ts,
                    deleted_segments: Vec::new(),
                });
            }
            if ts >= state.sorter.max_commit_ts() {
                return Err(StorageError::UnsafeGc {
                    requested: ts,
                    max_commit_ts: state.sorter.max_commit_ts(),
                });
            }
        }
        write_gc_ts(&self.shared.gc_ts_path, ts)?;

        let deleted = {
            let mut state = self.shared.lock();
            state.gc_ts = ts;
            let deletable = deletable_segments(&state, ts);
            for fid in &deletable {
                state.segments.remove(fid);
            }
            deletable
        };
        for &fid in &deleted {
            for path in [self.shared.segment_path(fid), self.shared.index_path(fid)] {
                // A missing file is fine: a previous run may have died halfway.
                if let Err(e) = fs::remove_file(&path)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    warn!(path = %path.display(), error = %e, "could not delete purged file");
                }
            }
        }
        if !deleted.is_empty() {
            info!(gc_ts = ts, segments = ?deleted, "purged segments");
        }
        Ok(GcOutcome {
            gc_ts: ts,
            deleted_segments: deleted,
        })
    }

    pub fn stats(&self) -> StorageStats {
        let state = self.shared.lock();
        StorageStats {
            max_commit_ts: state.sorter.max_commit_ts(),
            gc_ts: state.gc_ts,
            segments: state.segments.len(),
            active_fid: state.segments.keys().next_back().copied().unwrap_or(0),
            in_memory_index_entries: state.in_memory_entries(),
            unmatched_prewrites: state.sorter.unmatched_len(),
            records_written: self.shared.records_written.load(Ordering::Relaxed),
            batches_written: self.shared.batches_written.load(Ordering::Relaxed),
        }
    }

    /// Finishes queued writes, seals the active segment if it is big enough, and stops the
    /// writer. Later writes fail with [`StorageError::Closed`]. Also done on drop.
    pub fn close(&self) {
        self.shared.queue.close();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer
            && writer.join().is_err()
        {
            error!("the value log writer thread panicked");
        }
        self.shared.lock().closed = true;
        self.shared.progress.notify_all();
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        self.close();
    }
}

/// The segments `gc` may delete at `ts` (see [`Storage::gc`]).
fn deletable_segments(state: &State, ts: i64) -> Vec<u32> {
    let active_fid = state.segments.keys().next_back().copied();
    let old_enough: Vec<u32> = state
        .segments
        .iter()
        .take_while(|(fid, segment)| {
            Some(**fid) != active_fid && segment.memory.is_none() && segment.summary.max_ts <= ts
        })
        .map(|(fid, _)| *fid)
        .collect();
    let Some(&last_old) = old_enough.last() else {
        return Vec::new();
    };
    let still_needed = state
        .segments
        .range(last_old + 1..)
        .map(|(_, segment)| segment.summary.lowest_referenced_fid)
        .chain(state.sorter.unmatched_links().map(|pointer| pointer.fid))
        .min()
        .unwrap_or(u32::MAX);
    old_enough
        .into_iter()
        .take_while(|fid| *fid < still_needed)
        .collect()
}

fn read_gc_ts(path: &Path) -> Result<i64> {
    match fs::read_to_string(path) {
        Ok(text) => {
            text.trim()
                .parse()
                .map_err(|e: std::num::ParseIntError| StorageError::BadGcTsFile {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(StorageError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_gc_ts(path: &Path, ts: i64) -> Result<()> {
    let temporary = path.with_extension("tmp");
    let file = fs::File::create(&temporary).context("create", &temporary)?;
    std::io::Write::write_all(&mut &file, format!("{ts}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .context("write", &temporary)?;
    fs::rename(&temporary, path).context("rename into place", path)?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// The single thread that appends to the value log.
struct Writer {
    shared: Arc<Shared>,
    active: ActiveSegment,
    /// Set after a failure that leaves the file in an unknown state (fdatasync error, failed
    /// truncation): every later write is refused until a restart recovers from disk.
    poisoned: Option<Arc<StorageError>>,
}

impl Writer {
    fn new(shared: Arc<Shared>, active: ActiveSegment) -> Self {
        Writer {
            shared,
            active,
            poisoned: None,
        }
    }

    fn run(mut self) {
        while let Some(batch) = self.shared.queue.next_batch() {
            let batch_bytes = batch.iter().map(|request| request.payload.len()).sum();
            let outcome = match &self.poisoned {
                Some(cause) => Err(StorageError::Poisoned(Arc::clone(cause))),
                None => self.write_batch(&batch),
            };
            match outcome {
                Ok(()) => {
                    for request in batch {
                        // A caller that went away no longer needs the answer.
                        let _ = request.reply.send(Ok(()));
                    }
                }
                Err(failure) => {
                    error!(error = %failure, records = batch.len(), "value log write failed");
                    let failure = Arc::new(failure);
                    for request in batch {
                        let _ = request
                            .reply
                            .send(Err(StorageError::WriteFailed(Arc::clone(&failure))));
                    }
                }
            }
            self.shared.queue.release(batch_bytes);
            if self.poisoned.is_none() && self.active.len >= self.shared.options.segment_size {
                self.rotate();
            }
        }
        if self.poisoned.is_none()
            && self.active.len > 0
            && self.active.len >= self.shared.options.seal_at_close_min_bytes
        {
            match self.seal_active() {
                Ok(()) => self.write_index_of(self.active.fid),
                Err(e) => error!(error = %e, "could not seal the active segment at close"),
            }
        }
    }

    fn poison(&mut self, cause: StorageError) -> StorageError {
        let cause = Arc::new(cause);
        self.poisoned = Some(Arc::clone(&cause));
        StorageError::Poisoned(cause)
    }

    fn write_batch(&mut self, batch: &[WriteRequest]) -> Result<()> {
        let payloads: Vec<&[u8]> = batch.iter().map(|r| r.payload.as_slice()).collect();
        let pointers = match self.active.append(&payloads) {
            Ok(pointers) => pointers,
            Err(e) if self.active.is_damaged() => return Err(self.poison(e)),
            Err(e) => return Err(e),
        };
        if self.shared.options.sync_log
            && let Err(e) = self.active.sync()
        {
            return Err(self.poison(e));
        }
        let now = Instant::now();
        let mut state = self.shared.lock();
        let watermark_before = state.sorter.max_commit_ts();
        for (request, pointer) in batch.iter().zip(pointers) {
            self.active.max_ts = self.active.max_ts.max(request.meta.max_ts());
            state.apply(&request.meta, pointer, now);
        }
        if let Some(segment) = state.segments.get_mut(&self.active.fid) {
            segment.summary.data_len = self.active.len;
        }
        if state.sorter.max_commit_ts() != watermark_before {
            self.shared.progress.notify_all();
        }
        drop(state);
        let shared = &self.shared;
        shared.batches_written.fetch_add(1, Ordering::Relaxed);
        shared
            .records_written
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Seals the full active segment and continues in a new one.
    fn rotate(&mut self) {
        let next_fid = self.active.fid + 1;
        let next = match ActiveSegment::create(&self.shared.value_dir, next_fid) {
            Ok(next) => next,
            Err(e) => {
                // Not fatal: keep appending to the current segment and try again after the next
                // batch.
                error!(error = %e, "could not start a new segment");
                return;
            }
        };
        if let Err(e) = self.seal_active() {
            error!(error = %e, "could not seal a full segment");
            if let Err(e) = fs::remove_file(&next.path) {
                warn!(path = %next.path.display(), error = %e, "could not remove the unused new segment");
            }
            return;
        }
        let sealed_fid = self.active.fid;
        self.shared
            .lock()
            .segments
            .insert(next_fid, SegmentState::new_active(next_fid));
        self.active = next;
        self.write_index_of(sealed_fid);
    }

    fn seal_active(&mut self) -> Result<()> {
        match self.active.seal() {
            Ok(()) => Ok(()),
            Err(e) if self.active.is_damaged() => Err(self.poison(e)),
            Err(e) => Err(e),
        }
    }

    /// Writes the index file of a sealed segment and drops its entries from memory. On failure
    /// the entries stay in memory (readers are unaffected) and the file is rebuilt on next open.
    fn write_index_of(&self, fid: u32) {
        // The sorter state now is the state at the end of the sealed segment: the writer has
        // appended nothing since.
        let (summary, memory, checkpoint) = {
            let state = self.shared.lock();
            let Some(segment) = state.segments.get(&fid) else {
                return;
            };
            (
                segment.summary,
                segment.memory.clone().unwrap_or_default(),
                state.sorter.snapshot(),
            )
        };
        match write_index_file(&self.shared.index_dir, &summary, memory.iter(), &checkpoint) {
            Ok(()) => {
                if let Some(segment) = self.shared.lock().segments.get_mut(&fid) {
                    segment.memory = None;
                }
            }
            Err(e) => {
                error!(fid, error = %e, "could not write a segment index; keeping it in memory")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Storage>();
        assert_send_sync::<Arc<Storage>>();
        fn assert_send<T: Send>() {}
        assert_send::<Pull>();
    }
}
