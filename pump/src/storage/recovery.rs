//! Opening the storage after any kind of stop: rebuilds the in-memory state (segment summaries,
//! the active segment's index, the sorter) from the files, repairing what a crash can leave.
//!
//! Segments are visited oldest first. A sealed segment with a valid index file costs one read of
//! that file; its checkpoint restores the sorter as it was at the end of the segment. Any other
//! segment is scanned record by record, replaying the records into the sorter and index, and a
//! sealed segment gets its index file (re)written. So after a clean stop only the active segment is
//! scanned, and after a crash nothing acknowledged is lost: the value log is the truth, indexes
//! are derived.
//!
//! What a crash can leave, and what is done about it:
//! - a torn tail of the newest segment (a batch that was being written: short header, short
//!   payload, CRC mismatch, zeros) with no valid record after it: truncated, new appends follow the
//!   last valid record. Nothing after it was acknowledged.
//! - the newest segment sealed but no newer one created: a new segment is started.
//! - an unsealed segment that is not the newest (a crash between starting the next segment and
//!   sealing this one): sealed now.
//! - an index file missing, torn, or not matching its segment: rebuilt.
//! - temporaries of interrupted index writes, index files of purged segments: removed.
//!
//! A defect anywhere else — in a sealed segment, in an older segment, or followed by valid
//! records — is corruption, not a crash artefact: open fails naming file and offset rather than
//! cutting away acknowledged data.

use std::fs::{self, OpenOptions};
use std::path::Path;
use std::time::Instant;

use tracing::{info, warn};

use super::binlog::BinlogMeta;
use super::error::{IoContext, Result, StorageError};
use super::index::{
    BadIndexFile, INDEX_EXTENSION, SegmentSummary, index_path, load_index_file, write_index_file,
};
use super::record::FOOTER_LEN;
use super::segment::{
    SEGMENT_EXTENSION, ScanEnd, ValuePointer, find_valid_record, list_numbered, numbered_path,
    read_footer, scan,
};
use super::sorter::Sorter;
use super::vlog::ActiveSegment;
use super::{SegmentState, State};

pub(crate) fn recover(
    value_dir: &Path,
    index_dir: &Path,
    gc_ts: i64,
    now: Instant,
) -> Result<(State, ActiveSegment)> {
    let fids = list_numbered(value_dir, SEGMENT_EXTENSION)?;
    remove_leftovers(index_dir, &fids)?;

    let mut state = State::new(gc_ts);
    let mut active = None;
    for (position, &fid) in fids.iter().enumerate() {
        let newest = position + 1 == fids.len();
        active = recover_segment(value_dir, index_dir, fid, newest, &mut state, now)?;
    }
    let active = match active {
        Some(active) => active,
        None => {
            let fid = fids.last().map_or(0, |last| last + 1);
            state.segments.insert(fid, SegmentState::new_active(fid));
            ActiveSegment::create(value_dir, fid)?
        }
    };
    Ok((state, active))
}

/// Brings one segment into `state`; returns it as the active segment if appends continue in it.
fn recover_segment(
    value_dir: &Path,
    index_dir: &Path,
    fid: u32,
    newest: bool,
    state: &mut State,
    now: Instant,
) -> Result<Option<ActiveSegment>> {
    let path = numbered_path(value_dir, fid, SEGMENT_EXTENSION);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .context("open", &path)?;
    let file_len = file.metadata().context("stat", &path)?.len();
    let footer = read_footer(&file, &path, file_len)?;

    if let Some(footer) = footer {
        let idx = index_path(index_dir, fid);
        match load_index_file(&idx) {
            Ok(loaded)
                if loaded.summary.fid == fid
                    && loaded.summary.data_len + FOOTER_LEN as u64 == file_len
                    && loaded.summary.max_ts == footer.max_ts =>
            {
                state.sorter = Sorter::restore(&loaded.checkpoint, now);
                state.segments.insert(
                    fid,
                    SegmentState {
                        summary: loaded.summary,
                        memory: None,
                    },
                );
                return Ok(None);
            }
            Ok(_) => {
                warn!(path = %idx.display(), "index file does not match its segment; rebuilding it")
            }
            Err(BadIndexFile::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                info!(path = %idx.display(), "index file missing; rebuilding it")
            }
            Err(e) => {
                warn!(path = %idx.display(), error = %e, "index file unusable; rebuilding it")
            }
        }
    }

    state.segments.insert(fid, SegmentState::new_active(fid));
    let end = scan(&file, &path, file_len, |offset, payload| {
        let meta = BinlogMeta::decode(payload).map_err(|source| StorageError::NotABinlog {
            path: path.clone(),
            offset,
            source,
        })?;
        if !meta.is_empty_probe() {
            state.apply(&meta, ValuePointer { fid, offset }, now);
        }
        Ok(())
    })?;

    let footer_at = file_len.checked_sub(FOOTER_LEN as u64);
    let (data_len, sealed) = match end {
        ScanEnd::Clean => (file_len, false),
        ScanEnd::Defect { offset, .. } if footer.is_some() && Some(offset) == footer_at => {
            (offset, true)
        }
        ScanEnd::Defect { offset, defect } if newest && footer.is_none() => {
            if let Some(valid) = find_valid_record(&file, &path, offset + 1, file_len)? {
                return Err(StorageError::CorruptRecord {
                    path,
                    offset,
                    defect,
                    detail: Some(format!(
                        "; not a torn tail: a valid record follows at offset {valid}"
                    )),
                });
            }
            warn!(
                path = %path.display(),
                offset,
                dropped_bytes = file_len - offset,
                %defect,
                "truncating the torn tail of the value log"
            );
            file.set_len(offset)
                .and_then(|()| file.sync_all())
                .context("truncate torn tail of", &path)?;
            (offset, false)
        }
        ScanEnd::Defect { offset, defect } => {
            let place = if footer.is_some() {
                "in a sealed segment"
            } else {
                "in a segment that is not the newest"
            };
            return Err(StorageError::CorruptRecord {
                path,
                offset,
                defect,
                detail: Some(format!(" ({place})")),
            });
        }
    };

    let summary = {
        let segment = state
            .segments
            .entry(fid)
            .or_insert_with(|| SegmentState::new_active(fid));
        segment.summary.data_len = data_len;
        segment.summary
    };
    if newest && !sealed {
        return ActiveSegment::resume(path, fid, data_len, summary.max_ts).map(Some);
    }
    if !sealed {
        info!(path = %path.display(), "sealing a segment left open by an interrupted rotation");
        ActiveSegment::resume(path.clone(), fid, data_len, summary.max_ts)?.seal()?;
    }
    write_rebuilt_index(index_dir, state, fid, &summary);
    Ok(None)
}

/// Writes the index file of a sealed segment that was just scanned and frees its entries; if that
/// fails the entries stay in memory and the next open tries again.
fn write_rebuilt_index(index_dir: &Path, state: &mut State, fid: u32, summary: &SegmentSummary) {
    let checkpoint = state.sorter.snapshot();
    let Some(segment) = state.segments.get_mut(&fid) else {
        return;
    };
    let memory = segment.memory.clone().unwrap_or_default();
    match write_index_file(index_dir, summary, memory.iter(), &checkpoint) {
        Ok(()) => segment.memory = None,
        Err(e) => warn!(fid, error = %e, "could not write a rebuilt index; keeping it in memory"),
    }
}

/// Removes temporaries of interrupted index writes and index files whose segment is gone.
fn remove_leftovers(index_dir: &Path, fids: &[u32]) -> Result<()> {
    for entry in fs::read_dir(index_dir).context("list", index_dir)? {
        let path = entry.context("list", index_dir)?.path();
        let is_temporary = path.extension().is_some_and(|e| e == "tmp");
        if is_temporary {
            fs::remove_file(&path).context("remove", &path)?;
        }
    }
    for fid in list_numbered(index_dir, INDEX_EXTENSION)? {
        if fids.binary_search(&fid).is_err() {
            let path = index_path(index_dir, fid);
            fs::remove_file(&path).context("remove", &path)?;
        }
    }
    Ok(())
}
