//! Conflict detection between row changes (reference drainer.md §4.4), so that changes to the
//! same row always run on the same worker, in order, while unrelated changes run in parallel.
//!
//! Every change has conflict keys: one per downstream unique key whose values are all non-NULL
//! (for updates, of the old row too), or, when none qualifies, one for the whole row. Keys are
//! 64-bit hashes: a collision only makes two unrelated changes look related (they then share a
//! worker), never the other way round. [`Causality`] remembers which worker each key went to: a
//! change whose keys were seen follows them, a change whose keys went to two different workers
//! cannot be placed until everything queued so far is applied ([`Causality::add`] says so). Keys
//! are forgotten a generation at a time once the transactions that placed them are applied
//! ([`Causality::applied_up_to`]), so the table stays about the size of what is in flight.
//!
//! A change with unseen keys may go anywhere; [`Spreader`] sends such changes of one table to one
//! worker until that worker holds a chunk's worth of them, then moves on, so that workers apply
//! full multi-row statements instead of one row each. Where the primary key has several columns,
//! a change goes by its [`clustering_group`] to the group's home worker while that worker is not
//! overloaded: one connection then writes the group's rows, a statement holds the rows of a few
//! groups, and no two connections write the same index pages at once.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use tidb_codec::ColumnValue;

use crate::table_info::TableInfo;
use crate::txn::{Dml, DmlKind, Row};

/// What [`Causality::add`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The change goes to this worker.
    Worker(usize),
    /// The change's keys went to two different workers: flush everything queued,
    /// [`Causality::reset`], and add it again.
    Conflict,
}

/// Keys a generation of [`Causality`] collects before it may become the previous one: small
/// enough that both generations stay in the processor's cache (a table of every key since the
/// last pause, hundreds of thousands, missed the cache on nearly every lookup).
const GENERATION_KEYS: usize = 1 << 14;

type KeyTable = HashMap<u64, usize, BuildHasherDefault<KeyHasher>>;

/// The worker of every conflict key placed and not known to be applied, in two generations:
/// keys go into the current one; a full current generation becomes the previous one once there
/// is none; the previous one is forgotten once every transaction whose keys it holds is applied.
/// A key found in either binds its change to its worker.
#[derive(Debug, Default)]
pub struct Causality {
    current: KeyTable,
    previous: KeyTable,
    /// The last transaction (by sequence number) whose keys went into `current`.
    current_last_txn: u64,
    /// The last transaction whose keys are in `previous`.
    previous_last_txn: u64,
}

impl Causality {
    pub fn new() -> Causality {
        Causality::default()
    }

    /// Places a change of transaction `txn` (sequence numbers only grow) with these conflict
    /// keys: on the worker its keys already went to, or, when none was seen, on `fresh()`;
    /// records its keys there. On [`Placement::Conflict`] nothing is recorded.
    pub fn add(&mut self, keys: &[u64], txn: u64, fresh: impl FnOnce() -> usize) -> Placement {
        let mut worker = None;
        for key in keys {
            // A key in both generations has the same worker there: the current entry was made
            // by following the previous one.
            let placed = self.current.get(key).or_else(|| self.previous.get(key));
            if let Some(&existing) = placed {
                match worker {
                    None => worker = Some(existing),
                    Some(w) if w != existing => return Placement::Conflict,
                    Some(_) => {}
                }
            }
        }
        let worker = worker.unwrap_or_else(fresh);
        for key in keys {
            self.current.insert(*key, worker);
        }
        self.current_last_txn = txn;
        self.start_generation_if_full();
        Placement::Worker(worker)
    }

    /// Every transaction up to `txn` (by sequence number) is applied: their keys need not bind
    /// anything any more.
    pub fn applied_up_to(&mut self, txn: u64) {
        if !self.previous.is_empty() && txn >= self.previous_last_txn {
            self.previous.clear();
        }
        self.start_generation_if_full();
    }

    /// A full current generation becomes the previous one when there is none (the tables swap,
    /// so both keep their allocations).
    fn start_generation_if_full(&mut self) {
        if self.previous.is_empty() && self.current.len() >= GENERATION_KEYS {
            std::mem::swap(&mut self.current, &mut self.previous);
            self.previous_last_txn = self.current_last_txn;
        }
    }

    /// Forgets every placement (call once everything placed so far is applied).
    pub fn reset(&mut self) {
        self.current.clear();
        self.previous.clear();
    }

    /// Number of keys recorded, to bound memory.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.is_empty() && self.previous.is_empty()
    }
}

/// Chooses workers for changes that may go anywhere. A change of a clustering group goes to the
/// group's home worker unless that one holds more than twice its share of what is queued (and a
/// chunk): a hot group then spills over. Other changes (and the spill) fill one worker with
/// `chunk` changes of their table (and group) before the next worker, in turn across all tables
/// and groups, gets the next ones.
#[derive(Debug)]
pub struct Spreader {
    workers: usize,
    chunk: usize,
    next: usize,
    /// Per table (keyed by the table's identity) and clustering group, the worker being filled
    /// and how many of its changes it got.
    filling: HashMap<(usize, u64), (usize, usize)>,
}

/// Groups tracked before [`Spreader`] starts afresh (an entry is a few bytes; this only stops
/// dropped tables from piling up).
const SPREADER_GROUPS: usize = 4096;

impl Spreader {
    pub fn new(workers: usize, chunk: usize) -> Spreader {
        Spreader {
            workers: workers.max(1),
            chunk: chunk.max(1),
            next: 0,
            filling: HashMap::new(),
        }
    }

    /// The worker for the next free change of `table` (any stable identity of the table), of
    /// clustering group `group` (see [`clustering_group`]), with `backlogs[w]` changes routed to
    /// worker `w` and not yet applied.
    pub fn worker_for(&mut self, table: usize, group: Option<u64>, backlogs: &[usize]) -> usize {
        let workers = self.workers as u64;
        if let Some(group) = group {
            // Both fit in usize: the remainder is below `self.workers`.
            let home = (group % workers) as usize;
            let share = backlogs.iter().sum::<usize>() / self.workers;
            if backlogs
                .get(home)
                .is_some_and(|&backlog| backlog <= 2 * share + self.chunk)
            {
                return home;
            }
        }
        self.fill(table, group.map_or(0, |group| group % workers))
    }

    /// The worker being filled with `table`'s changes of group `group`, moving on after a chunk.
    fn fill(&mut self, table: usize, group: u64) -> usize {
        let filling = (table, group);
        if self.filling.len() >= SPREADER_GROUPS && !self.filling.contains_key(&filling) {
            self.filling.clear();
        }
        let (workers, chunk) = (self.workers, self.chunk);
        let next = &mut self.next;
        let (worker, count) = self.filling.entry(filling).or_insert_with(|| {
            let worker = *next;
            *next = (*next + 1) % workers;
            (worker, 0)
        });
        if *count == chunk {
            *worker = *next;
            *next = (*next + 1) % workers;
            *count = 0;
        }
        *count += 1;
        *worker
    }
}

/// The clustering group of a change of a table whose primary key has several columns: a hash
/// of the key's leading value; `None` for any other table.
///
/// InnoDB and TiDB's clustered indexes store rows in primary key order, so rows that share a
/// leading value share index pages. Inserts into a `(tenant, id)` table come interleaved across
/// tenants upstream; sent to one worker per group, a multi-row statement holds a few tenants'
/// rows, and the server walks and latches a few pages for it, none of which another connection
/// is writing, instead of one page per row, shared with every other connection. A group never
/// binds a change: it only picks among free workers (see [`Spreader::worker_for`]).
pub fn clustering_group(dml: &Dml, table: &TableInfo) -> Option<u64> {
    let [leading, _, ..] = table.primary_key()?.columns.as_slice() else {
        return None;
    };
    let value = dml.values.get(leading)?;
    let mut hasher = KeyHasher::default();
    hash_value(&mut hasher, value);
    Some(hasher.finish())
}

/// The worker (of `workers`) for a key when conflicts are not detected: the same key always
/// goes to the same worker.
pub fn route(key: u64, workers: usize) -> usize {
    // `workers` fits in u64 and the remainder is below it.
    (key % workers.max(1) as u64) as usize
}

/// The conflict keys of a (normalized) change against its downstream table, into `keys`
/// (emptied first: the dispatcher reuses one buffer for every change).
pub fn conflict_keys(dml: &Dml, table: &TableInfo, keys: &mut Vec<u64>) {
    keys.clear();
    let rows: &[&Row] = if dml.kind == DmlKind::Update {
        &[&dml.values, &dml.old_values]
    } else {
        &[&dml.values]
    };
    for row in rows {
        let before = keys.len();
        // Every unique key whose columns all have non-NULL values (`TableInfo::usable_keys`,
        // hashed as it is found instead of collected).
        'key: for key in &table.unique_keys {
            let mut hasher = table_hasher(dml);
            for column in &key.columns {
                match row.get(column) {
                    Some(value) if *value != ColumnValue::Null => {
                        hash_name(&mut hasher, column);
                        hash_value(&mut hasher, value);
                    }
                    _ => continue 'key,
                }
            }
            keys.push(hasher.finish());
        }
        if keys.len() == before {
            let mut hasher = table_hasher(dml);
            hasher.write_u8(0xff);
            for (column, value) in row.iter() {
                hash_name(&mut hasher, column);
                hash_value(&mut hasher, value);
            }
            keys.push(hasher.finish());
        }
    }
    // Order is kept (new row's keys first, PRIMARY first): without detection the first key
    // alone routes the change, and it is the same for every change of a row that keeps its key.
    // Deduplicated in place: a change has a handful of keys, and this runs for every change.
    let mut kept = 0;
    for i in 0..keys.len() {
        let key = keys[i];
        if !keys[..kept].contains(&key) {
            keys[kept] = key;
            kept += 1;
        }
    }
    keys.truncate(kept);
}

/// The hasher of conflict keys (and of the key table): an FxHash-style multiply-rotate over the
/// many small writes a key is made of, finished with SplitMix64's mixer so that the low bits
/// (which pick the worker) are as good as the high ones. Several times cheaper than SipHash, and
/// the keys need only spread, not resist crafted collisions: a collision makes two unrelated
/// changes share a worker, nothing worse.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for chunk in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        for &byte in words.remainder() {
            self.add(u64::from(byte));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_i128(&mut self, n: i128) {
        self.add(n as u64);
        self.add((n >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn table_hasher(dml: &Dml) -> KeyHasher {
    let mut hasher = KeyHasher::default();
    hasher.write(dml.database.as_bytes());
    hasher.write_u8(0);
    hasher.write(dml.table.as_bytes());
    hasher.write_u8(0);
    hasher
}

fn hash_name(hasher: &mut KeyHasher, name: &str) {
    for byte in name.bytes() {
        hasher.write_u8(byte.to_ascii_lowercase());
    }
    hasher.write_u8(0);
}

/// Hashes a value so that values the downstream may consider equal in a unique key hash alike:
/// numbers by numeric value whatever their type, text case-insensitively and without trailing
/// spaces (the common collations). Over-matching only costs parallelism.
fn hash_value(hasher: &mut KeyHasher, value: &ColumnValue) {
    match value {
        ColumnValue::Null => hasher.write_u8(0),
        ColumnValue::Int(i) => number(hasher, i128::from(*i)),
        ColumnValue::Uint(u)
        | ColumnValue::Enum { index: u, .. }
        | ColumnValue::Set { bits: u, .. }
        | ColumnValue::Bit { value: u, .. } => number(hasher, i128::from(*u)),
        ColumnValue::Float(f) => float(hasher, f64::from(*f)),
        ColumnValue::Double(f) => float(hasher, *f),
        ColumnValue::Text(s) => {
            hasher.write_u8(3);
            for c in s.trim_end_matches(' ').chars().flat_map(char::to_lowercase) {
                hasher.write_u32(u32::from(c));
            }
        }
        ColumnValue::Bytes(b) => {
            hasher.write_u8(4);
            hasher.write(b);
        }
        ColumnValue::Decimal(_)
        | ColumnValue::Time(_)
        | ColumnValue::Duration(_)
        | ColumnValue::Json(_) => {
            hasher.write_u8(5);
            hasher.write(value.to_text().unwrap_or_default().as_bytes());
        }
    }
    hasher.write_u8(0xfe);
}

fn number(hasher: &mut KeyHasher, n: i128) {
    hasher.write_u8(1);
    hasher.write_i128(n);
}

fn float(hasher: &mut KeyHasher, f: f64) {
    hasher.write_u8(2);
    // 0.0 and -0.0 are equal keys.
    hasher.write_u64(if f == 0.0 { 0 } else { f.to_bits() });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table_info::UniqueKey;

    fn keys_of(dml: &Dml, table: &TableInfo) -> Vec<u64> {
        let mut keys = vec![42];
        conflict_keys(dml, table, &mut keys);
        keys
    }

    fn table(keys: &[(&str, &[&str])]) -> TableInfo {
        TableInfo {
            columns: Vec::new(),
            generated: Vec::new(),
            unique_keys: keys
                .iter()
                .map(|(name, columns)| UniqueKey {
                    name: name.to_string(),
                    columns: columns.iter().map(|c| c.to_string()).collect(),
                })
                .collect(),
        }
    }

    fn dml(
        table: &str,
        kind: DmlKind,
        values: &[(&str, ColumnValue)],
        old: &[(&str, ColumnValue)],
    ) -> Dml {
        let row = |r: &[(&str, ColumnValue)]| {
            Row::from_iter(r.iter().map(|(n, v)| ((*n).into(), v.clone())))
        };
        Dml {
            database: "db".into(),
            table: table.into(),
            kind,
            values: row(values),
            old_values: row(old),
        }
    }

    use ColumnValue::{Int, Null, Text, Uint};

    fn insert(id: i64, u: ColumnValue) -> Dml {
        dml("t", DmlKind::Insert, &[("id", Int(id)), ("u", u)], &[])
    }

    #[test]
    fn same_unique_key_values_give_the_same_key() {
        let info = table(&[("PRIMARY", &["id"]), ("uk", &["u"])]);
        let a = keys_of(&insert(1, Text("Abc ".into())), &info);
        let b = keys_of(&insert(2, Text("aBC".into())), &info);
        let c = keys_of(&insert(3, Text("abd".into())), &info);
        assert_eq!(a.len(), 2);
        assert!(a.iter().any(|k| b.contains(k)), "case and pad insensitive");
        assert!(!a.iter().any(|k| c.contains(k)));
        let signed = keys_of(&insert(7, Null), &info);
        let unsigned = keys_of(
            &dml("t", DmlKind::Insert, &[("id", Uint(7)), ("u", Null)], &[]),
            &info,
        );
        assert_eq!(signed, unsigned);
        assert_eq!(signed.len(), 1, "NULL unique key does not count");
    }

    #[test]
    fn keys_differ_across_tables_and_key_columns() {
        let info = table(&[("PRIMARY", &["id"])]);
        let t = keys_of(&insert(1, Null), &info);
        let other = keys_of(&dml("t2", DmlKind::Insert, &[("id", Int(1))], &[]), &info);
        assert_ne!(t, other);
        let by_u = table(&[("uk", &["u"])]);
        let k1 = keys_of(&dml("t", DmlKind::Insert, &[("id", Int(1))], &[]), &info);
        let k2 = keys_of(&dml("t", DmlKind::Insert, &[("u", Int(1))], &[]), &by_u);
        assert_ne!(k1, k2);
    }

    #[test]
    fn updates_carry_old_and_new_keys() {
        let info = table(&[("PRIMARY", &["id"])]);
        let update = dml(
            "t",
            DmlKind::Update,
            &[("id", Int(2)), ("u", Null)],
            &[("id", Int(1)), ("u", Null)],
        );
        let keys = keys_of(&update, &info);
        assert_eq!(keys.len(), 2);
        for id in [1, 2] {
            let k = keys_of(&insert(id, Null), &info);
            assert!(keys.contains(&k[0]));
        }
    }

    #[test]
    fn keyless_rows_fall_back_to_all_values() {
        let info = table(&[]);
        let a = keys_of(&insert(1, Text("x".into())), &info);
        let same = keys_of(&insert(1, Text("x".into())), &info);
        let other = keys_of(&insert(1, Text("y".into())), &info);
        assert_eq!(a.len(), 1);
        assert_eq!(a, same);
        assert_ne!(a, other);
    }

    #[test]
    fn keys_follow_their_worker_and_two_workers_conflict() {
        let mut causality = Causality::new();
        let fresh = |w: usize| move || w;
        assert_eq!(causality.add(&[1, 2], 1, fresh(0)), Placement::Worker(0));
        assert_eq!(causality.add(&[3], 2, fresh(1)), Placement::Worker(1));
        assert_eq!(
            causality.add(&[2, 4], 3, fresh(5)),
            Placement::Worker(0),
            "follows key 2"
        );
        assert_eq!(causality.add(&[4], 4, fresh(5)), Placement::Worker(0));
        assert_eq!(causality.add(&[4, 3], 5, fresh(5)), Placement::Conflict);
        assert_eq!(causality.len(), 4, "a conflict records nothing");
        assert_eq!(causality.add(&[5], 5, fresh(1)), Placement::Worker(1));
        assert_eq!(
            causality.add(&[5, 3], 6, fresh(2)),
            Placement::Worker(1),
            "keys of one worker do not conflict"
        );
        causality.reset();
        assert!(causality.is_empty());
        assert_eq!(causality.add(&[4, 3], 7, fresh(2)), Placement::Worker(2));
    }

    #[test]
    fn keys_bind_until_the_transactions_that_placed_them_are_applied() {
        let mut causality = Causality::new();
        let fresh = |w: usize| move || w;
        let generation = GENERATION_KEYS as u64;
        // Transaction 1 fills a generation; its last key, 0, is on worker 3.
        for key in (1..generation).rev().chain([0]) {
            assert_eq!(causality.add(&[key], 1, fresh(3)), Placement::Worker(3));
        }
        // Transaction 2 starts the next one; key 0 still binds, across the generations.
        assert_eq!(
            causality.add(&[generation], 2, fresh(4)),
            Placement::Worker(4)
        );
        assert_eq!(causality.add(&[0], 2, fresh(5)), Placement::Worker(3));
        assert_eq!(
            causality.add(&[1, generation], 2, fresh(5)),
            Placement::Conflict,
            "keys of two workers, one in each generation"
        );
        causality.applied_up_to(0);
        assert_eq!(
            causality.add(&[2], 3, fresh(5)),
            Placement::Worker(3),
            "not yet applied"
        );
        assert!(causality.len() > GENERATION_KEYS);
        causality.applied_up_to(1);
        assert_eq!(
            causality.len(),
            3,
            "transaction 1's generation is forgotten"
        );
        assert_eq!(
            causality.add(&[7], 4, fresh(5)),
            Placement::Worker(5),
            "free again"
        );
        assert_eq!(
            causality.add(&[0], 4, fresh(6)),
            Placement::Worker(3),
            "re-placed by transaction 2, which is not applied"
        );
        causality.applied_up_to(4);
        assert_eq!(causality.len(), 4, "a generation that is not full stays");
    }

    #[test]
    fn spreader_fills_a_worker_per_table_then_moves_on() {
        let mut spreader = Spreader::new(3, 2);
        let picks: Vec<usize> = [7, 7, 8, 7, 8, 8, 7, 7, 7]
            .iter()
            .map(|&table| spreader.worker_for(table, None, &[0; 3]))
            .collect();
        // Table 7 starts on worker 0, table 8 on worker 1; each moves to the next free turn
        // after two changes.
        assert_eq!(picks, [0, 0, 1, 2, 1, 0, 2, 1, 1]);
    }

    #[test]
    fn a_clustering_group_stays_home_until_its_worker_holds_too_much() {
        let mut spreader = Spreader::new(4, 10);
        let (group, home) = (4 * 1000 + 2, 2);
        assert_eq!(spreader.worker_for(7, Some(group), &[5, 5, 5, 5]), home);
        assert_eq!(
            spreader.worker_for(7, Some(group), &[5, 5, 30, 5]),
            home,
            "twice a fair share (11 of 45) and a chunk: still home"
        );
        let spilled: Vec<usize> = (0..3)
            .map(|_| spreader.worker_for(7, Some(group), &[0, 0, 40, 0]))
            .collect();
        assert_eq!(
            spilled,
            [0, 0, 0],
            "a hot group fills the next worker in turn, a chunk at a time"
        );
        assert_eq!(spreader.worker_for(7, Some(group + 1), &[0, 0, 40, 0]), 3);
    }

    #[test]
    fn clustering_groups_follow_the_leading_value_of_a_composite_primary_key() {
        let composite = table(&[("PRIMARY", &["tenant", "id"])]);
        let row = |tenant: ColumnValue, id: i64| {
            dml(
                "t",
                DmlKind::Insert,
                &[("id", Int(id)), ("tenant", tenant)],
                &[],
            )
        };
        let group = |dml: &Dml| clustering_group(dml, &composite);
        assert_eq!(
            group(&row(Text("acme".into()), 1)),
            group(&row(Text("ACME ".into()), 2)),
            "one tenant, one group, as its key values compare"
        );
        let homes: std::collections::HashSet<u64> = (0..64)
            .filter_map(|tenant| group(&row(Int(tenant), 1)))
            .map(|group| group % 16)
            .collect();
        assert!(homes.len() >= 12, "64 tenants have homes {homes:?}");

        let one_column = table(&[("PRIMARY", &["id"])]);
        let unique_only = table(&[("uk", &["tenant", "id"])]);
        for info in [one_column, unique_only, table(&[])] {
            assert_eq!(clustering_group(&row(Int(1), 1), &info), None);
        }
    }

    #[test]
    fn routing_is_stable_and_in_range() {
        for key in [0, 1, 15, 16, u64::MAX] {
            let worker = route(key, 16);
            assert!(worker < 16);
            assert_eq!(route(key, 16), worker);
        }
        assert_eq!(route(123, 1), 0);
    }
}
