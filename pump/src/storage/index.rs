//! The commit-ts index: for every servable binlog, its commit ts → where it is, and where its
//! prewrite is.
//!
//! # Design
//!
//! One index per segment. The active segment's index is in memory (a `BTreeMap` ordered by commit
//! ts); when the segment is sealed, its index is written once, sorted, to `<dir>/index/NNNNNN.idx`
//! and dropped from memory. Memory is therefore bounded by one segment's worth of entries (plus a
//! few bytes of [`SegmentSummary`] per segment), whatever the backlog. A reader merges the sorted
//! per-segment indexes (commit ts ranges of neighbouring segments overlap a little because commits
//! arrive slightly out of ts order) and finds its start in each file by binary search over
//! fixed-size entries.
//!
//! Why not an embedded KV store like the original's leveldb: the only queries are "entries in
//! commit-ts order from X" and "delete whole old segments". Immutable sorted files that live and
//! die with their segment answer both with no compaction, no write amplification, no extra
//! dependency, and GC is a file deletion.
//!
//! Prewrites are not indexed by start ts. Each commit entry instead carries the pointer of its
//! prewrite, known at write time from the sorter (which remembers the pointer of every prewrite
//! still waiting for its commit). Serving a commit then needs no second lookup, and the index only
//! holds what is served: commits and fake binlogs, never prewrites or rollbacks.
//!
//! Each index file also holds the sorter's state at the end of its segment (a checkpoint), so
//! recovery replays only the segments after the newest valid index file. Index files are
//! derived data: a missing, torn or stale one is rebuilt from its segment on open.
//!
//! # File format (little-endian)
//!
//! ```text
//! header (64 bytes)  magic "PIDX" u32 | version u32 | fid u32 | reserved u32 | segment data length u64
//!                    | segment max ts i64 | entry count u64 | min commit ts i64 | max commit ts i64
//!                    | lowest referenced fid u32 | reserved u32
//! entries            count × (commit ts i64 | record offset u64 | served as u8
//!                             | prewrite fid u32 (u32::MAX = none) | prewrite offset u64), sorted
//! checkpoint         max commit ts i64 | count u64 | count × (start ts i64 | fid u32 | offset u64
//!                             | max commit behind i64)
//! trailer            CRC-32C u32 of everything before
//! ```

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::ops::Bound;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::binlog::Served;
use super::error::{IoContext, Result};
use super::segment::ValuePointer;
use super::sorter::{PendingPrewrite, SorterSnapshot};

pub(crate) const INDEX_EXTENSION: &str = "idx";
const INDEX_MAGIC: u32 = u32::from_le_bytes(*b"PIDX");
const INDEX_VERSION: u32 = 1;
const HEADER_LEN: u64 = 64;
const ENTRY_LEN: usize = 29;
const PENDING_LEN: usize = 28;
const NO_FID: u32 = u32::MAX;

/// One servable binlog in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub commit_ts: i64,
    /// Offset of the record in its segment.
    pub offset: u64,
    pub served: Served,
    /// The matching prewrite, for commits; `None` for fake binlogs and for commits whose prewrite
    /// never reached this pump.
    pub prewrite: Option<ValuePointer>,
}

impl IndexEntry {
    /// Sort key: commit ts, then arrival order within the segment.
    pub fn key(&self) -> EntryKey {
        (self.commit_ts, self.offset)
    }
}

/// (commit ts, record offset).
pub(crate) type EntryKey = (i64, u64);

/// The index of the active segment (and of a segment being sealed), in memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemIndex {
    entries: BTreeMap<EntryKey, (Served, Option<ValuePointer>)>,
}

impl MemIndex {
    pub fn insert(&mut self, entry: IndexEntry) {
        self.entries
            .insert(entry.key(), (entry.served, entry.prewrite));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Up to `limit` entries with key after `after` and commit ts at most `upper`.
    pub fn entries_after(&self, after: EntryKey, upper: i64, limit: usize) -> Vec<IndexEntry> {
        self.entries
            .range((Bound::Excluded(after), Bound::Included((upper, u64::MAX))))
            .take(limit)
            .map(|(&(commit_ts, offset), &(served, prewrite))| IndexEntry {
                commit_ts,
                offset,
                served,
                prewrite,
            })
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = IndexEntry> + '_ {
        self.entries_after((i64::MIN, 0), i64::MAX, usize::MAX)
            .into_iter()
    }
}

/// What is kept in memory about every segment, sealed or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    pub fid: u32,
    /// Bytes of records (the footer excluded).
    pub data_len: u64,
    /// Largest start or commit ts of any record (what the footer says).
    pub max_ts: i64,
    pub entry_count: u64,
    /// Commit ts range of the entries; `i64::MAX..=i64::MIN` when there are none.
    pub min_commit_ts: i64,
    pub max_commit_ts: i64,
    /// Lowest segment this one's commits point into (itself at most): GC must keep that one.
    pub lowest_referenced_fid: u32,
}

impl SegmentSummary {
    pub fn empty(fid: u32) -> Self {
        SegmentSummary {
            fid,
            data_len: 0,
            max_ts: 0,
            entry_count: 0,
            min_commit_ts: i64::MAX,
            max_commit_ts: i64::MIN,
            lowest_referenced_fid: fid,
        }
    }

    /// Accounts for a record of this segment (`entry` when it is served).
    pub fn add_record(&mut self, max_ts: i64, entry: Option<&IndexEntry>) {
        self.max_ts = self.max_ts.max(max_ts);
        if let Some(entry) = entry {
            self.entry_count += 1;
            self.min_commit_ts = self.min_commit_ts.min(entry.commit_ts);
            self.max_commit_ts = self.max_commit_ts.max(entry.commit_ts);
            if let Some(prewrite) = entry.prewrite {
                self.lowest_referenced_fid = self.lowest_referenced_fid.min(prewrite.fid);
            }
        }
    }

    /// Whether the segment may hold entries with commit ts in `(after, upper]`.
    pub fn may_hold(&self, after: i64, upper: i64) -> bool {
        self.entry_count > 0 && self.max_commit_ts > after && self.min_commit_ts <= upper
    }
}

/// Why an index file cannot be used (it is then rebuilt from its segment).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadIndexFile {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Invalid(String),
}

/// A validated index file: its summary and the checkpoint; entries stay on disk.
#[derive(Debug)]
pub(crate) struct LoadedIndex {
    pub summary: SegmentSummary,
    pub checkpoint: SorterSnapshot<ValuePointer>,
}

pub(crate) fn index_path(index_dir: &Path, fid: u32) -> PathBuf {
    super::segment::numbered_path(index_dir, fid, INDEX_EXTENSION)
}

/// Writes the index file of a sealed segment atomically (temporary file, fsync, rename, fsync of
/// the directory).
pub(crate) fn write_index_file(
    index_dir: &Path,
    summary: &SegmentSummary,
    entries: impl Iterator<Item = IndexEntry>,
    checkpoint: &SorterSnapshot<ValuePointer>,
) -> Result<()> {
    let path = index_path(index_dir, summary.fid);
    let temporary = path.with_extension("idx.tmp");
    let file = File::create(&temporary).context("create", &temporary)?;
    let mut out = ChecksummedWriter {
        inner: BufWriter::with_capacity(1 << 16, file),
        crc: 0,
    };
    let write = |out: &mut ChecksummedWriter<_>, bytes: &[u8]| {
        out.write_all(bytes).context("write", &temporary)
    };

    let mut header = Vec::with_capacity(HEADER_LEN as usize);
    header.extend_from_slice(&INDEX_MAGIC.to_le_bytes());
    header.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    header.extend_from_slice(&summary.fid.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    header.extend_from_slice(&summary.data_len.to_le_bytes());
    header.extend_from_slice(&summary.max_ts.to_le_bytes());
    header.extend_from_slice(&summary.entry_count.to_le_bytes());
    header.extend_from_slice(&summary.min_commit_ts.to_le_bytes());
    header.extend_from_slice(&summary.max_commit_ts.to_le_bytes());
    header.extend_from_slice(&summary.lowest_referenced_fid.to_le_bytes());
    header.extend_from_slice(&0u32.to_le_bytes());
    debug_assert_eq!(header.len() as u64, HEADER_LEN);
    write(&mut out, &header)?;

    let mut written = 0u64;
    for entry in entries {
        write(&mut out, &encode_entry(&entry))?;
        written += 1;
    }
    debug_assert_eq!(written, summary.entry_count);

    write(&mut out, &checkpoint.max_commit_ts.to_le_bytes())?;
    write(&mut out, &(checkpoint.unmatched.len() as u64).to_le_bytes())?;
    for pending in &checkpoint.unmatched {
        let mut bytes = [0u8; PENDING_LEN];
        bytes[0..8].copy_from_slice(&pending.start_ts.to_le_bytes());
        bytes[8..12].copy_from_slice(&pending.link.fid.to_le_bytes());
        bytes[12..20].copy_from_slice(&pending.link.offset.to_le_bytes());
        bytes[20..28].copy_from_slice(&pending.max_commit_behind.to_le_bytes());
        write(&mut out, &bytes)?;
    }
    let crc = out.crc;
    let mut buffered = out.inner;
    buffered
        .write_all(&crc.to_le_bytes())
        .context("write", &temporary)?;
    let file = buffered
        .into_inner()
        .map_err(|e| e.into_error())
        .context("write", &temporary)?;
    file.sync_all().context("sync", &temporary)?;
    drop(file);
    fs::rename(&temporary, &path).context("rename into place", &path)?;
    sync_dir(index_dir)
}

/// Makes renames and file creations in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context("sync directory", dir)
}

/// Reads and fully validates an index file (checksum, sizes), keeping only summary and
/// checkpoint in memory.
pub(crate) fn load_index_file(path: &Path) -> Result<LoadedIndex, BadIndexFile> {
    let invalid = |reason: String| BadIndexFile::Invalid(reason);
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut reader = ChecksummedReader {
        inner: BufReader::with_capacity(1 << 16, file),
        crc: 0,
    };

    let mut header = [0u8; HEADER_LEN as usize];
    reader
        .read_exact(&mut header)
        .map_err(|_| invalid("shorter than its header".into()))?;
    let field = Fields(&header);
    if field.u32(0) != INDEX_MAGIC || field.u32(4) != INDEX_VERSION {
        return Err(invalid("bad magic or version".into()));
    }
    let summary = SegmentSummary {
        fid: field.u32(8),
        data_len: field.u64(16),
        max_ts: field.i64(24),
        entry_count: field.u64(32),
        min_commit_ts: field.i64(40),
        max_commit_ts: field.i64(48),
        lowest_referenced_fid: field.u32(56),
    };
    let entries_len = summary
        .entry_count
        .checked_mul(ENTRY_LEN as u64)
        .filter(|len| HEADER_LEN + len + 16 + 4 <= file_len)
        .ok_or_else(|| invalid(format!("{} entries do not fit", summary.entry_count)))?;

    // Entries are only checksummed here; they are read on demand by `IndexFileReader`.
    std::io::copy(&mut (&mut reader).take(entries_len), &mut std::io::sink())?;

    let mut checkpoint_header = [0u8; 16];
    reader.read_exact(&mut checkpoint_header)?;
    let field = Fields(&checkpoint_header);
    let max_commit_ts = field.i64(0);
    let pending_count = field.u64(8);
    let expected_len = pending_count
        .checked_mul(PENDING_LEN as u64)
        .map(|len| HEADER_LEN + entries_len + 16 + len + 4);
    if expected_len != Some(file_len) {
        return Err(invalid(format!(
            "length {file_len} does not match its {} entries and {pending_count} pending prewrites",
            summary.entry_count
        )));
    }
    let mut unmatched = Vec::with_capacity(pending_count as usize);
    for _ in 0..pending_count {
        let mut bytes = [0u8; PENDING_LEN];
        reader.read_exact(&mut bytes)?;
        let field = Fields(&bytes);
        unmatched.push(PendingPrewrite {
            start_ts: field.i64(0),
            link: ValuePointer {
                fid: field.u32(8),
                offset: field.u64(12),
            },
            max_commit_behind: field.i64(20),
        });
    }
    let computed = reader.crc;
    let mut trailer = [0u8; 4];
    reader.inner.read_exact(&mut trailer)?;
    if u32::from_le_bytes(trailer) != computed {
        return Err(invalid("checksum mismatch".into()));
    }
    Ok(LoadedIndex {
        summary,
        checkpoint: SorterSnapshot {
            max_commit_ts,
            unmatched,
        },
    })
}

/// Random access to the entries of an index file validated by [`load_index_file`] at open.
pub(crate) struct IndexFileReader {
    file: File,
    path: PathBuf,
    entry_count: u64,
}

impl IndexFileReader {
    pub fn open(path: PathBuf) -> Result<Self> {
        let file = File::open(&path).context("open", &path)?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0).context("read", &path)?;
        let entry_count = Fields(&header).u64(32);
        Ok(IndexFileReader {
            file,
            path,
            entry_count,
        })
    }

    /// Position of the first entry whose key is after `after` (binary search).
    pub fn position_after(&self, after: EntryKey) -> Result<u64> {
        let (mut low, mut high) = (0, self.entry_count);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.read(middle, 1)?.first().map(IndexEntry::key) <= Some(after) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        Ok(low)
    }

    /// Up to `limit` entries starting at `position`.
    pub fn read(&self, position: u64, limit: usize) -> Result<Vec<IndexEntry>> {
        let count = (self.entry_count.saturating_sub(position)).min(limit as u64) as usize;
        let mut bytes = vec![0u8; count * ENTRY_LEN];
        self.file
            .read_exact_at(&mut bytes, HEADER_LEN + position * ENTRY_LEN as u64)
            .context("read", &self.path)?;
        Ok(bytes.chunks_exact(ENTRY_LEN).map(decode_entry).collect())
    }
}

fn encode_entry(entry: &IndexEntry) -> [u8; ENTRY_LEN] {
    let mut bytes = [0u8; ENTRY_LEN];
    bytes[0..8].copy_from_slice(&entry.commit_ts.to_le_bytes());
    bytes[8..16].copy_from_slice(&entry.offset.to_le_bytes());
    bytes[16] = match entry.served {
        Served::Commit => 0,
        Served::Fake => 1,
    };
    let prewrite = entry.prewrite.unwrap_or(ValuePointer {
        fid: NO_FID,
        offset: 0,
    });
    bytes[17..21].copy_from_slice(&prewrite.fid.to_le_bytes());
    bytes[21..29].copy_from_slice(&prewrite.offset.to_le_bytes());
    bytes
}

fn decode_entry(bytes: &[u8]) -> IndexEntry {
    let field = Fields(bytes);
    let prewrite_fid = field.u32(17);
    IndexEntry {
        commit_ts: field.i64(0),
        offset: field.u64(8),
        served: if bytes[16] == 1 {
            Served::Fake
        } else {
            Served::Commit
        },
        prewrite: (prewrite_fid != NO_FID).then(|| ValuePointer {
            fid: prewrite_fid,
            offset: field.u64(21),
        }),
    }
}

/// Little-endian fixed-width fields of a buffer whose length the caller has checked.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn array<const N: usize>(&self, at: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.0[at..at + N]);
        out
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.array(at))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.array(at))
    }
    fn i64(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.array(at))
    }
}

struct ChecksummedWriter<W> {
    inner: W,
    crc: u32,
}

impl<W: Write> Write for ChecksummedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct ChecksummedReader<R> {
    inner: R,
    crc: u32,
}

impl<R: Read> Read for ChecksummedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..read]);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(commit_ts: i64, offset: u64, prewrite: Option<ValuePointer>) -> IndexEntry {
        IndexEntry {
            commit_ts,
            offset,
            served: if prewrite.is_some() {
                Served::Commit
            } else {
                Served::Fake
            },
            prewrite,
        }
    }

    fn sample() -> (SegmentSummary, MemIndex, SorterSnapshot<ValuePointer>) {
        let mut summary = SegmentSummary::empty(3);
        let mut index = MemIndex::default();
        for (i, ts) in [50, 10, 30, 30, 70].into_iter().enumerate() {
            let e = entry(
                ts,
                i as u64 * 100,
                (ts != 70).then_some(ValuePointer {
                    fid: 2,
                    offset: i as u64,
                }),
            );
            summary.add_record(ts, Some(&e));
            index.insert(e);
        }
        summary.data_len = 500;
        let checkpoint = SorterSnapshot {
            max_commit_ts: 70,
            unmatched: vec![PendingPrewrite {
                start_ts: 71,
                link: ValuePointer { fid: 3, offset: 9 },
                max_commit_behind: 0,
            }],
        };
        (summary, index, checkpoint)
    }

    #[test]
    fn index_file_round_trip_and_binary_search() {
        let dir = tempfile::tempdir().unwrap();
        let (summary, index, checkpoint) = sample();
        write_index_file(dir.path(), &summary, index.iter(), &checkpoint).unwrap();

        let loaded = load_index_file(&index_path(dir.path(), 3)).unwrap();
        assert_eq!(loaded.summary, summary);
        assert_eq!(loaded.summary.lowest_referenced_fid, 2);
        assert_eq!(loaded.checkpoint, checkpoint);

        let reader = IndexFileReader::open(index_path(dir.path(), 3)).unwrap();
        let all = reader.read(0, 100).unwrap();
        assert_eq!(all, index.iter().collect::<Vec<_>>());
        let keys: Vec<_> = all.iter().map(IndexEntry::key).collect();
        assert_eq!(
            keys,
            vec![(10, 100), (30, 200), (30, 300), (50, 0), (70, 400)]
        );
        assert_eq!(reader.position_after((i64::MIN, 0)).unwrap(), 0);
        assert_eq!(reader.position_after((30, u64::MAX)).unwrap(), 3);
        assert_eq!(reader.position_after((30, 200)).unwrap(), 2);
        assert_eq!(reader.position_after((70, u64::MAX)).unwrap(), 5);
        assert_eq!(
            index.entries_after((30, 200), 50, 10),
            all[2..4].to_vec(),
            "memory and file agree"
        );
    }

    #[test]
    fn damaged_index_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let (summary, index, checkpoint) = sample();
        write_index_file(dir.path(), &summary, index.iter(), &checkpoint).unwrap();
        let path = index_path(dir.path(), 3);
        let bytes = fs::read(&path).unwrap();
        for cut in [0, 10, 64, bytes.len() - 1] {
            fs::write(&path, &bytes[..cut]).unwrap();
            assert!(load_index_file(&path).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[70] ^= 1;
        fs::write(&path, &flipped).unwrap();
        assert!(load_index_file(&path).is_err());
    }
}
