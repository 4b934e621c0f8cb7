//! The write side of the value log: the queue writers wait in, and the segment being appended to.
//!
//! Group commit: callers [`WriteQueue::submit`] (or `submit_async`) a record and wait; a single writer thread takes
//! everything queued as one batch ([`WriteQueue::next_batch`]), appends it with one vectored
//! `write`, makes it durable with one `fdatasync`, and only then answers every caller of the batch.
//! The queue is bounded in bytes of payload — queued and in flight — so a burst of large binlogs
//! blocks writers instead of growing memory; a payload larger than the whole budget is still
//! admitted, alone. Payloads are moved, never copied, on their way to the file.
//!
//! Under load the writer waits a little for a batch to fill (at most [`GROUP_WAIT`], and only
//! while the batch is under half the size batches recently reached): the writers whose answers
//! just went out are on their way back, and every `fdatasync` saved is CPU the callers need. A
//! lone writer never waits, since recent batches were as small as its own.
//!
//! The writer loop itself, which also updates the index and the watermark, is in `storage/mod.rs`.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{IoSlice, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, oneshot};

use super::binlog::BinlogMeta;
use super::error::{IoContext, Result, StorageError};
use super::index::sync_dir;
use super::record::{Footer, HEADER_LEN, RecordHeader};
use super::segment::{SEGMENT_EXTENSION, ValuePointer, numbered_path};

/// A batch stops growing at this many payload bytes…
const MAX_BATCH_BYTES: usize = 1 << 20;
/// …or, when its first payload is at most this big, at first payload + this (the original's rule:
/// small writes are not held back behind a megabyte of others).
const SMALL_BATCH_SLACK: usize = 128 << 10;

/// The longest a batch waits to fill.
pub(crate) const GROUP_WAIT: Duration = Duration::from_micros(250);

/// One caller's record waiting to be written.
pub(crate) struct WriteRequest {
    pub meta: BinlogMeta,
    pub payload: Vec<u8>,
    /// Answered once the batch is durable. A oneshot wakes an async caller's task directly,
    /// without an OS thread parked per request.
    pub reply: oneshot::Sender<Result<()>>,
}

pub(crate) struct WriteQueue {
    state: Mutex<QueueState>,
    has_work: Condvar,
    /// Wakes blocked synchronous writers when budget is released.
    has_room: Condvar,
    /// Wakes waiting async writers when budget is released.
    room: Notify,
    budget_bytes: usize,
    /// The longest a batch waits to fill ([`GROUP_WAIT`]).
    group_wait: Duration,
}

struct QueueState {
    pending: VecDeque<WriteRequest>,
    /// Payload bytes queued or in the batch being written.
    reserved_bytes: usize,
    closed: bool,
    /// How many records recent batches held (the largest, decaying by 1/8 per batch).
    recent_batch: usize,
    /// While a batch waits to fill: how many more records it waits for.
    filling: Option<usize>,
}

impl WriteQueue {
    pub fn new(budget_bytes: usize) -> Self {
        Self::with_group_wait(budget_bytes, GROUP_WAIT)
    }

    fn with_group_wait(budget_bytes: usize, group_wait: Duration) -> Self {
        WriteQueue {
            group_wait,
            state: Mutex::new(QueueState {
                pending: VecDeque::new(),
                reserved_bytes: 0,
                closed: false,
                recent_batch: 0,
                filling: None,
            }),
            has_work: Condvar::new(),
            has_room: Condvar::new(),
            room: Notify::new(),
            budget_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn over_budget(&self, state: &QueueState, len: usize) -> bool {
        state.reserved_bytes > 0 && state.reserved_bytes + len > self.budget_bytes
    }

    /// Queues `request` under the lock; wakes the writer only if it may be waiting for this
    /// one (the queue was empty, or a filling batch now has what it waits for), since a needless
    /// wake costs a syscall per write.
    fn push(&self, state: &mut QueueState, request: WriteRequest) {
        let was_empty = state.pending.is_empty();
        state.reserved_bytes += request.payload.len();
        state.pending.push_back(request);
        let wake = match state.filling {
            Some(wanted) => state.pending.len() >= wanted,
            None => was_empty,
        };
        if wake {
            self.has_work.notify_one();
        }
    }

    /// Queues a request, blocking the thread while the byte budget is exhausted.
    pub fn submit(&self, request: WriteRequest) -> Result<()> {
        let len = request.payload.len();
        let mut state = self.lock();
        while !state.closed && self.over_budget(&state, len) {
            state = self
                .has_room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            return Err(StorageError::Closed);
        }
        self.push(&mut state, request);
        Ok(())
    }

    /// Queues a request, waiting asynchronously while the byte budget is exhausted; never blocks
    /// the calling thread for longer than the queue lock.
    pub async fn submit_async(&self, request: WriteRequest) -> Result<()> {
        loop {
            // Registered before checking, so a release between the check and the wait is seen.
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let mut state = self.lock();
                if state.closed {
                    return Err(StorageError::Closed);
                }
                if !self.over_budget(&state, request.payload.len()) {
                    self.push(&mut state, request);
                    return Ok(());
                }
            }
            room.await;
        }
    }

    /// Waits for work and takes the next batch; `None` once closed and drained.
    pub fn next_batch(&self) -> Option<Vec<WriteRequest>> {
        let mut state = self.lock();
        while state.pending.is_empty() {
            if state.closed {
                return None;
            }
            state = self
                .has_work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let first = state.pending.pop_front()?;
        let limit = if first.payload.len() <= SMALL_BATCH_SLACK {
            first.payload.len() + SMALL_BATCH_SLACK
        } else {
            MAX_BATCH_BYTES
        };
        let mut batch_bytes = first.payload.len();
        let mut batch = vec![first];
        let wanted = state.recent_batch / 2;
        let deadline = Instant::now() + self.group_wait;
        loop {
            while let Some(next) = state.pending.front() {
                if batch_bytes + next.payload.len() > limit {
                    break;
                }
                batch_bytes += next.payload.len();
                batch.extend(state.pending.pop_front());
            }
            let full = !state.pending.is_empty() || batch.len() >= wanted || state.closed;
            let now = Instant::now();
            if full || now >= deadline {
                break;
            }
            state.filling = Some(wanted - batch.len());
            state = self
                .has_work
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.filling = None;
        state.recent_batch = batch.len().max(state.recent_batch - state.recent_batch / 8);
        Some(batch)
    }

    /// Gives back the budget of a finished batch.
    pub fn release(&self, bytes: usize) {
        let mut state = self.lock();
        state.reserved_bytes -= bytes;
        self.has_room.notify_all();
        self.room.notify_waiters();
    }

    /// Refuses new requests; the writer drains what is already queued.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.has_work.notify_all();
        self.has_room.notify_all();
        self.room.notify_waiters();
    }
}

/// The segment records are appended to.
pub(crate) struct ActiveSegment {
    pub fid: u32,
    pub path: PathBuf,
    file: File,
    /// Bytes of valid records; the next record goes here.
    pub len: u64,
    pub max_ts: i64,
    /// A failed write could not be cut back: the file's tail is unknown.
    damaged: bool,
}

impl ActiveSegment {
    /// Creates a new, empty segment file.
    pub fn create(value_dir: &Path, fid: u32) -> Result<Self> {
        let path = numbered_path(value_dir, fid, SEGMENT_EXTENSION);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .context("create", &path)?;
        sync_dir(value_dir)?;
        Ok(ActiveSegment {
            fid,
            path,
            file,
            len: 0,
            max_ts: 0,
            damaged: false,
        })
    }

    /// Continues an existing segment whose valid data ends at `len` (recovery has truncated
    /// anything after it).
    pub fn resume(path: PathBuf, fid: u32, len: u64, max_ts: i64) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .context("open", &path)?;
        file.seek(SeekFrom::Start(len)).context("seek", &path)?;
        Ok(ActiveSegment {
            fid,
            path,
            file,
            len,
            max_ts,
            damaged: false,
        })
    }

    /// Appends the payloads as records with as few `write` calls as the OS allows (one, usually),
    /// returning where each landed. On failure the segment is cut back to where the batch
    /// started, so a failed batch never leaves garbage between valid records.
    pub fn append(&mut self, payloads: &[&[u8]]) -> Result<Vec<ValuePointer>> {
        let headers: Vec<[u8; HEADER_LEN]> = payloads
            .iter()
            .map(|payload| RecordHeader::for_payload(payload).encode())
            .collect();
        let mut pointers = Vec::with_capacity(payloads.len());
        let mut slices = Vec::with_capacity(payloads.len() * 2);
        let mut offset = self.len;
        for (header, payload) in headers.iter().zip(payloads) {
            pointers.push(ValuePointer {
                fid: self.fid,
                offset,
            });
            offset += (HEADER_LEN + payload.len()) as u64;
            slices.push(IoSlice::new(header));
            slices.push(IoSlice::new(payload));
        }
        match write_all_vectored(&mut self.file, &mut slices) {
            Ok(()) => {
                self.len = offset;
                Ok(pointers)
            }
            Err(source) => {
                let error = StorageError::Io {
                    action: "append to",
                    path: self.path.clone(),
                    source,
                };
                self.cut_back()?;
                Err(error)
            }
        }
    }

    /// Makes everything appended so far durable.
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().context("fdatasync", &self.path)
    }

    /// Writes the footer and makes it durable. Afterwards the segment is read-only.
    pub fn seal(&mut self) -> Result<()> {
        let footer = Footer {
            max_ts: self.max_ts,
        }
        .encode();
        let written = self
            .file
            .write_all(&footer)
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            let error = StorageError::Io {
                action: "seal",
                path: self.path.clone(),
                source,
            };
            self.cut_back()?;
            return Err(error);
        }
        Ok(())
    }

    /// Whether a failed write left bytes of unknown content after the valid data.
    pub fn is_damaged(&self) -> bool {
        self.damaged
    }

    /// Truncates the file to its valid length after a failed write.
    fn cut_back(&mut self) -> Result<()> {
        let cut = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop))
            .context("truncate after a failed write", &self.path);
        self.damaged = cut.is_err();
        cut
    }
}

fn write_all_vectored(file: &mut File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    // Skip leading empty slices so `advance_slices` below never sees a fully consumed prefix.
    IoSlice::advance_slices(&mut slices, 0);
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => IoSlice::advance_slices(&mut slices, written),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::binlog::BinlogKind;
    use crate::storage::segment::{ScanEnd, scan};
    use std::sync::Arc;
    use std::time::Duration;

    fn request(len: usize) -> (WriteRequest, oneshot::Receiver<Result<()>>) {
        let (reply, receiver) = oneshot::channel();
        let meta = BinlogMeta {
            kind: BinlogKind::Commit,
            start_ts: 1,
            commit_ts: 2,
        };
        let request = WriteRequest {
            meta,
            payload: vec![7; len],
            reply,
        };
        (request, receiver)
    }

    #[test]
    fn batches_follow_the_original_size_rule() {
        let queue = WriteQueue::new(usize::MAX);
        for len in [100, 100 << 10, 29 << 10, 1] {
            queue.submit(request(len).0).unwrap();
        }
        // 100 + 100 KiB fits in 100 + 128 KiB; adding 29 KiB would not.
        let sizes = |batch: Vec<WriteRequest>| -> Vec<usize> {
            batch.iter().map(|r| r.payload.len()).collect()
        };
        assert_eq!(sizes(queue.next_batch().unwrap()), vec![100, 100 << 10]);
        assert_eq!(sizes(queue.next_batch().unwrap()), vec![29 << 10, 1]);

        for len in [600 << 10, 300 << 10, 200 << 10] {
            queue.submit(request(len).0).unwrap();
        }
        assert_eq!(
            sizes(queue.next_batch().unwrap()),
            vec![600 << 10, 300 << 10],
            "large first payload: capped at 1 MiB"
        );
    }

    /// Takes a batch while another thread submits `late` records after a pause.
    fn batch_with_late_arrivals(queue: &Arc<WriteQueue>, late: usize) -> usize {
        let submitter = {
            let queue = Arc::clone(queue);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(100));
                for _ in 0..late {
                    queue.submit(request(10).0).unwrap();
                }
            })
        };
        let batch = queue.next_batch().unwrap();
        submitter.join().unwrap();
        batch.len()
    }

    #[test]
    fn a_batch_waits_to_fill_only_under_load() {
        let queue = Arc::new(WriteQueue::with_group_wait(
            usize::MAX,
            Duration::from_secs(600),
        ));
        queue.submit(request(10).0).unwrap();
        assert_eq!(
            batch_with_late_arrivals(&queue, 1),
            1,
            "a lone writer's batch goes at once"
        );
        assert_eq!(queue.next_batch().unwrap().len(), 1);

        for _ in 0..10 {
            queue.submit(request(10).0).unwrap();
        }
        assert_eq!(queue.next_batch().unwrap().len(), 10);
        queue.submit(request(10).0).unwrap();
        assert_eq!(
            batch_with_late_arrivals(&queue, 4),
            5,
            "after a batch of 10, a batch of 1 waits for half as many, and goes once they came"
        );
    }

    #[test]
    fn budget_blocks_writers_but_admits_an_oversized_record_alone() {
        let queue = Arc::new(WriteQueue::new(1000));
        queue.submit(request(5000).0).unwrap(); // larger than the budget, queue was empty
        let blocked = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || queue.submit(request(10).0))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !blocked.is_finished(),
            "no room until the big batch is released"
        );
        let batch = queue.next_batch().unwrap();
        assert_eq!(batch.len(), 1);
        queue.release(5000);
        blocked.join().unwrap().unwrap();
        queue.close();
        assert_eq!(
            queue.next_batch().map(|b| b.len()),
            Some(1),
            "drained after close"
        );
        assert!(queue.next_batch().is_none());
        assert!(matches!(
            queue.submit(request(1).0),
            Err(StorageError::Closed)
        ));
    }

    #[test]
    fn appended_records_scan_back_and_seal_adds_a_footer() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = ActiveSegment::create(dir.path(), 0).unwrap();
        let payloads: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; i as usize * 37]).collect();
        let slices: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let pointers = segment.append(&slices).unwrap();
        segment.sync().unwrap();
        segment.max_ts = 9;
        let data_len = segment.len;
        segment.seal().unwrap();

        let file = File::open(&segment.path).unwrap();
        let mut seen = Vec::new();
        let end = scan(&file, &segment.path, data_len, |offset, payload| {
            seen.push((offset, payload.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(end, ScanEnd::Clean);
        assert_eq!(
            seen.iter().map(|(o, _)| *o).collect::<Vec<_>>(),
            pointers.iter().map(|p| p.offset).collect::<Vec<_>>()
        );
        assert_eq!(
            seen.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
            payloads
        );
        let footer =
            crate::storage::segment::read_footer(&file, &segment.path, data_len + 12).unwrap();
        assert_eq!(footer, Some(Footer { max_ts: 9 }));
    }
}
