//! Reading committed binlogs back in commit-ts order.
//!
//! A [`Pull`] merges the sorted indexes of all segments that may hold commit ts in
//! `(after, watermark]` — the watermark as it was when the pull started, so everything in range is
//! already stored. Each segment is read through a cursor that fetches a small batch of entries at a
//! time, from memory while the segment is active and from its index file once sealed (a segment
//! can be sealed mid-pull; the cursor switches over). Segment index files are opened lazily, so a
//! reader far behind holds only the few files whose ts ranges overlap its position.
//!
//! Memory per pull: a batch of entries per open cursor, a few open segment files, and the binlog
//! being returned.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fs::File;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::error;

use super::binlog::{MergeError, Served, merge_commit_with_prewrite};
use super::error::{Result, StorageError};
use super::index::{EntryKey, IndexEntry, IndexFileReader};
use super::segment::{RecordReader, ValuePointer};
use super::{Shared, State};

/// Entries fetched per cursor refill.
const CURSOR_BATCH: usize = 256;
/// Segment files kept open per pull.
const OPEN_SEGMENT_FILES: usize = 4;

/// One binlog as served to a drainer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledBinlog {
    pub commit_ts: i64,
    pub start_ts: i64,
    /// The marshalled `binlog.Binlog`: a commit merged with its prewrite, or a fake binlog.
    pub payload: Vec<u8>,
}

/// An iterator over committed binlogs with commit ts in `(after, watermark at start]`, strictly
/// increasing. It ends at the watermark; wait with `Storage::wait_for_commit_ts_above` and pull
/// again from the last commit ts for more. After an error it yields nothing more.
pub struct Pull {
    shared: Arc<Shared>,
    requested_after: i64,
    upper: i64,
    last_served: i64,
    cursors: Vec<SegmentCursor>,
    /// Next entry of every cursor that has one: (commit ts, fid, offset, cursor). A cursor not yet
    /// read sits here under its segment's smallest commit ts.
    heads: BinaryHeap<Reverse<(i64, u32, u64, usize)>>,
    /// Open segment files by id, with their paths (for error messages: formatting a path per
    /// record read was a tenth of a pull's CPU).
    files: Vec<(u32, File, PathBuf)>,
    reader: RecordReader,
    failed: bool,
}

impl Pull {
    pub(crate) fn new(shared: Arc<Shared>, after: i64) -> Result<Self> {
        let (upper, cursors, heads) = {
            let state = shared.lock();
            if after < state.gc_ts {
                return Err(StorageError::Purged {
                    requested: after,
                    gc_ts: state.gc_ts,
                });
            }
            let upper = state.sorter.max_commit_ts();
            let cursors: Vec<SegmentCursor> = state
                .segments
                .values()
                .filter(|segment| segment.summary.may_hold(after, upper))
                .map(|segment| SegmentCursor::new(segment.summary.fid, after))
                .collect();
            let heads = placeholder_heads(&state, &cursors);
            (upper, cursors, heads)
        };
        Ok(Pull {
            shared,
            requested_after: after,
            upper,
            last_served: after,
            cursors,
            heads,
            files: Vec::new(),
            reader: RecordReader::new(),
            failed: false,
        })
    }

    /// The watermark this pull stops at.
    pub fn upper_commit_ts(&self) -> i64 {
        self.upper
    }

    fn next_binlog(&mut self) -> Result<Option<PulledBinlog>> {
        while let Some(Reverse((_, fid, _, cursor_index))) = self.heads.pop() {
            let cursor = &mut self.cursors[cursor_index];
            let entry = if cursor.started {
                cursor.buffered.pop_front()
            } else {
                cursor.started = true;
                None
            };
            if let Some(entry) = &entry {
                cursor.after = entry.key();
            }
            if cursor.buffered.is_empty() && !cursor.exhausted {
                cursor.refill(&self.shared, self.upper, self.requested_after)?;
            }
            if let Some(head) = cursor.buffered.front() {
                self.heads
                    .push(Reverse((head.commit_ts, fid, head.offset, cursor_index)));
            }
            let Some(entry) = entry else { continue };
            if entry.commit_ts <= self.last_served {
                continue; // a retried commit stored twice
            }
            if let Some(binlog) = self.materialize(fid, &entry)? {
                self.last_served = binlog.commit_ts;
                return Ok(Some(binlog));
            }
        }
        Ok(None)
    }

    fn materialize(&mut self, fid: u32, entry: &IndexEntry) -> Result<Option<PulledBinlog>> {
        let commit_at = ValuePointer {
            fid,
            offset: entry.offset,
        };
        let commit = self.read_record(commit_at)?;
        match (entry.served, entry.prewrite) {
            (Served::Fake, _) => Ok(Some(PulledBinlog {
                commit_ts: entry.commit_ts,
                start_ts: entry.commit_ts,
                payload: commit,
            })),
            (Served::Commit, None) => {
                // Like the original: older clients could send the commit to another pump than
                // the prewrite. Nothing to merge, so nothing to serve.
                error!(
                    commit_ts = entry.commit_ts,
                    fid,
                    offset = entry.offset,
                    "matching prewrite binlog not found; skipping the commit"
                );
                Ok(None)
            }
            (Served::Commit, Some(prewrite_at)) => {
                let prewrite = self.read_record(prewrite_at)?;
                match merge_commit_with_prewrite(&commit, &prewrite) {
                    Ok((payload, start_ts)) => Ok(Some(PulledBinlog {
                        commit_ts: entry.commit_ts,
                        start_ts,
                        payload,
                    })),
                    Err(MergeError::Commit(source)) => Err(self.not_a_binlog(commit_at, source)),
                    Err(MergeError::Prewrite(source)) => {
                        Err(self.not_a_binlog(prewrite_at, source))
                    }
                }
            }
        }
    }

    fn not_a_binlog(&self, at: ValuePointer, source: prost::DecodeError) -> StorageError {
        StorageError::NotABinlog {
            path: self.shared.segment_path(at.fid),
            offset: at.offset,
            source,
        }
    }

    fn read_record(&mut self, at: ValuePointer) -> Result<Vec<u8>> {
        let position = match self.files.iter().position(|(fid, _, _)| *fid == at.fid) {
            Some(position) => position,
            None => {
                let path = self.shared.segment_path(at.fid);
                let file = match File::open(&path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == ErrorKind::NotFound => {
                        return Err(purged(&self.shared, self.requested_after));
                    }
                    Err(source) => {
                        return Err(StorageError::Io {
                            action: "open",
                            path,
                            source,
                        });
                    }
                };
                if self.files.len() == OPEN_SEGMENT_FILES {
                    self.files.remove(0);
                }
                self.files.push((at.fid, file, path));
                self.files.len() - 1
            }
        };
        let (_, file, path) = &self.files[position];
        self.reader.read(file, path, at)
    }
}

impl Iterator for Pull {
    type Item = Result<PulledBinlog>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = self.next_binlog();
        self.failed = next.is_err();
        next.transpose()
    }
}

/// Placeholder heads for cursors not yet read: their segment's smallest commit ts, which is no
/// later than their real first entry.
fn placeholder_heads(
    state: &State,
    cursors: &[SegmentCursor],
) -> BinaryHeap<Reverse<(i64, u32, u64, usize)>> {
    cursors
        .iter()
        .enumerate()
        .filter_map(|(index, cursor)| {
            let segment = state.segments.get(&cursor.fid)?;
            Some(Reverse((
                segment.summary.min_commit_ts,
                cursor.fid,
                0,
                index,
            )))
        })
        .collect()
}

fn purged(shared: &Shared, requested: i64) -> StorageError {
    StorageError::Purged {
        requested,
        gc_ts: shared.lock().gc_ts,
    }
}

/// Reads one segment's index in key order, a batch at a time.
struct SegmentCursor {
    fid: u32,
    /// Key of the last entry taken from this cursor (or the pull's start). Refills happen only
    /// when the buffer is empty, so this is also the last entry fetched.
    after: EntryKey,
    buffered: VecDeque<IndexEntry>,
    /// Set once the segment's index is on disk: the file and the next position in it.
    file: Option<(IndexFileReader, u64)>,
    /// Whether the placeholder head was replaced by a real one.
    started: bool,
    exhausted: bool,
}

impl SegmentCursor {
    fn new(fid: u32, after: i64) -> Self {
        SegmentCursor {
            fid,
            after: (after, u64::MAX),
            buffered: VecDeque::new(),
            file: None,
            started: false,
            exhausted: false,
        }
    }

    fn refill(&mut self, shared: &Shared, upper: i64, requested_after: i64) -> Result<()> {
        if self.file.is_none() {
            let in_memory = {
                let state = shared.lock();
                let Some(segment) = state.segments.get(&self.fid) else {
                    return Err(StorageError::Purged {
                        requested: requested_after,
                        gc_ts: state.gc_ts,
                    });
                };
                segment
                    .memory
                    .as_ref()
                    .map(|memory| memory.entries_after(self.after, upper, CURSOR_BATCH))
            };
            if let Some(entries) = in_memory {
                self.exhausted = entries.len() < CURSOR_BATCH;
                self.buffered.extend(entries);
                return Ok(());
            }
            // Sealed since the pull started (or before): continue from its index file.
            let reader =
                IndexFileReader::open(shared.index_path(self.fid)).map_err(|e| match &e {
                    StorageError::Io { source, .. } if source.kind() == ErrorKind::NotFound => {
                        purged(shared, requested_after)
                    }
                    _ => e,
                })?;
            let position = reader.position_after(self.after)?;
            self.file = Some((reader, position));
        }
        if let Some((reader, position)) = &mut self.file {
            let entries = reader.read(*position, CURSOR_BATCH)?;
            *position += entries.len() as u64;
            let read = entries.len();
            let in_range: Vec<IndexEntry> = entries
                .into_iter()
                .take_while(|entry| entry.commit_ts <= upper)
                .collect();
            self.exhausted = read < CURSOR_BATCH || in_range.len() < read;
            self.buffered.extend(in_range);
        }
        Ok(())
    }
}
