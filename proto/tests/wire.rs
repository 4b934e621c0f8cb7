//! Byte-exact wire vectors: our encoding must match what the original (gogoproto, non-nullable
//! scalars always emitted, proto2 repeated scalars unpacked) puts on the wire.

#![allow(clippy::unwrap_used)] // tests fail loudly on any unexpected error

use binlog_proto::binlog::{
    Binlog, BinlogType, MutationType, Pos, PrewriteValue, PullBinlogReq, TableMutation,
    WriteBinlogReq,
};
use prost::Message;

fn hex_of(message: &impl Message) -> String {
    hex::encode(message.encode_to_vec())
}

#[test]
fn zero_binlog_emits_every_non_nullable_scalar() {
    let binlog = Binlog::default();
    assert_eq!(hex_of(&binlog), "08001000180038004000");
}

#[test]
fn optional_bytes_are_emitted_only_when_present_even_if_empty() {
    let binlog = Binlog {
        tp: BinlogType::Commit as i32,
        start_ts: 5,
        commit_ts: 300,
        prewrite_key: Some(Vec::new()),
        ddl_query: Some(b"ab".to_vec()),
        ..Default::default()
    };
    // tp=1, start_ts=5, commit_ts=300 (ac 02), prewrite_key empty, ddl_query "ab", job 0, state 0.
    assert_eq!(hex_of(&binlog), "0801100518ac0222003202616238004000");
}

#[test]
fn negative_schema_state_is_a_ten_byte_varint() {
    let binlog = Binlog {
        ddl_schema_state: -1,
        ..Default::default()
    };
    assert_eq!(hex_of(&binlog), "080010001800380040ffffffffffffffffff01");
}

#[test]
fn repeated_scalars_are_unpacked() {
    let mutation = TableMutation {
        table_id: 0,
        deleted_ids: vec![1, 2],
        sequence: vec![MutationType::Insert as i32, MutationType::Update as i32],
        ..Default::default()
    };
    assert_eq!(hex_of(&mutation), "08002001200238003801");
}

#[test]
fn prewrite_value_emits_zero_schema_version_and_nested_table_id() {
    let value = PrewriteValue {
        schema_version: 0,
        mutations: vec![TableMutation::default()],
    };
    assert_eq!(hex_of(&value), "080012020800");
}

#[test]
fn packed_repeated_scalars_are_still_decoded() {
    // A writer that packs `sequence` (field 7, wire type 2) must be understood too.
    let bytes = hex::decode("08033a020104").unwrap();
    let mutation = TableMutation::decode(bytes.as_slice()).unwrap();
    assert_eq!(mutation.table_id, 3);
    assert_eq!(mutation.sequence, vec![1, 4]);
}

#[test]
fn an_empty_payload_decodes_as_a_zero_prewrite() {
    // TiDB probes pumps with an empty payload; it must read as tp=Prewrite, all ts 0.
    let binlog = Binlog::decode(&[][..]).unwrap();
    assert_eq!(binlog.tp, BinlogType::Prewrite as i32);
    assert_eq!((binlog.start_ts, binlog.commit_ts), (0, 0));
    assert_eq!(binlog.prewrite_key, None);
}

#[test]
fn round_trip_preserves_everything() {
    let binlog = Binlog {
        tp: BinlogType::Prewrite as i32,
        start_ts: 412518831338292471,
        commit_ts: 0,
        prewrite_key: Some(b"t\x80\x00key".to_vec()),
        prewrite_value: Some(
            PrewriteValue {
                schema_version: 42,
                mutations: vec![TableMutation {
                    table_id: 45,
                    inserted_rows: vec![b"row".to_vec().into()],
                    updated_rows: vec![b"old".to_vec().into(), b"new".to_vec().into()],
                    deleted_rows: vec![b"gone".to_vec().into()],
                    sequence: vec![0, 1, 4],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
            .into(),
        ),
        ddl_query: None,
        ddl_job_id: 0,
        ddl_schema_state: 0,
    };
    let decoded = Binlog::decode(binlog.encode_to_vec().as_slice()).unwrap();
    assert_eq!(decoded, binlog);
}

#[test]
fn pull_request_always_carries_its_position() {
    // gogo non-nullable `startFrom`: an empty Pos is still encoded as an empty sub-message.
    let request = PullBinlogReq {
        cluster_id: 0,
        start_from: Some(Pos::default()),
    };
    assert_eq!(hex_of(&request), "1200");
    let write = WriteBinlogReq {
        cluster_id: 7,
        payload: vec![0x08, 0x00],
    };
    assert_eq!(hex_of(&write), "080712020800");
}
