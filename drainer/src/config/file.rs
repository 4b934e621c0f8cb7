//! The TOML file as written, key for key the original's: every table denies unknown keys, so a
//! typo is an error naming the key. Nothing here is interpreted; `super` validates and types it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct FileConfig {
    pub log_level: Option<String>,
    pub node_id: Option<String>,
    pub addr: Option<String>,
    pub advertise_addr: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub detect_interval: Option<i64>,
    pub pd_urls: Option<String>,
    pub log_file: Option<String>,
    pub initial_commit_ts: Option<i64>,
    pub synced_check_time: Option<i64>,
    pub compressor: Option<String>,
    pub security: Option<SecurityFile>,
    pub syncer: Option<SyncerFile>,
}

/// `[security]`, `[syncer.to.security]`, `[syncer.to.checkpoint.security]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SecurityFile {
    pub ssl_ca: Option<String>,
    pub ssl_cert: Option<String>,
    pub ssl_key: Option<String>,
    pub cert_allowed_cn: Option<Vec<String>>,
}

/// `db-name` / `tbl-name` of `[[syncer.ignore-table]]` and `[[syncer.replicate-do-table]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TableNameFile {
    #[serde(default)]
    pub db_name: String,
    #[serde(default)]
    pub tbl_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct SyncerFile {
    pub sql_mode: Option<String>,
    pub ignore_txn_commit_ts: Option<Vec<i64>>,
    pub ignore_schemas: Option<String>,
    pub ignore_table: Option<Vec<TableNameFile>>,
    pub txn_batch: Option<i64>,
    pub worker_count: Option<i64>,
    pub loopback_control: Option<bool>,
    pub sync_ddl: Option<bool>,
    #[allow(dead_code)] // accepted so files written for the original load; see loopback-control
    pub channel_id: Option<i64>,
    pub replicate_do_db: Option<Vec<String>>,
    pub replicate_do_table: Option<Vec<TableNameFile>>,
    pub db_type: Option<String>,
    pub disable_dispatch: Option<bool>,
    pub enable_dispatch: Option<bool>,
    pub safe_mode: Option<bool>,
    pub disable_detect: Option<bool>,
    pub enable_detect: Option<bool>,
    pub load_schema_snapshot: Option<bool>,
    pub case_sensitive: Option<bool>,
    pub table_migrate_rule: Option<Vec<TableMigrateRuleFile>>,
    pub binlog_filter_rule: Option<BTreeMap<String, BinlogFilterRuleFile>>,
    pub relay: Option<RelayFile>,
    pub to: Option<ToFile>,
}

/// `[[syncer.table-migrate-rule]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TableMigrateRuleFile {
    pub source: Option<SchemaTableFile>,
    pub target: Option<SchemaTableFile>,
    #[serde(default)]
    pub binlog_filter_rule: Vec<String>,
}

/// `source` / `target` of a table-migrate rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SchemaTableFile {
    #[serde(default)]
    pub schema: String,
    #[serde(default)]
    pub table: String,
}

/// `[syncer.binlog-filter-rule.<name>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct BinlogFilterRuleFile {
    #[serde(default)]
    pub ignore_event: Vec<String>,
    #[serde(default)]
    pub ignore_sql: Vec<String>,
}

/// `[syncer.relay]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RelayFile {
    pub log_dir: Option<String>,
    pub max_file_size: Option<i64>,
}

/// `[syncer.to]`: one table for every sink; each sink reads its own keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ToFile {
    pub host: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    #[serde(rename = "encrypted_password")]
    pub encrypted_password: Option<String>,
    pub port: Option<i64>,
    pub security: Option<SecurityFile>,
    pub sync_mode: Option<i64>,
    pub read_timeout: Option<String>,
    pub merge: Option<bool>,
    pub params: Option<BTreeMap<String, String>>,
    pub checkpoint: Option<CheckpointFile>,
    pub dir: Option<PathBuf>,
    pub retention_time: Option<i64>,
    pub zookeeper_addrs: Option<String>,
    pub kafka_addrs: Option<String>,
    pub kafka_version: Option<String>,
    pub kafka_max_messages: Option<i64>,
    pub kafka_max_message_size: Option<i64>,
    pub kafka_client_id: Option<String>,
    pub topic_name: Option<String>,
    #[allow(dead_code)] // accepted so Oracle-era files load; the Oracle sink is not supported
    pub oracle_service_name: Option<String>,
    #[allow(dead_code)] // as above
    pub oracle_connect_string: Option<String>,
}

/// `[syncer.to.checkpoint]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct CheckpointFile {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub schema: Option<String>,
    pub table: Option<String>,
    pub host: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    #[serde(rename = "encrypted_password")]
    pub encrypted_password: Option<String>,
    pub port: Option<i64>,
    pub security: Option<SecurityFile>,
    #[allow(dead_code)]
    // accepted so Oracle-era files load; the Oracle checkpoint is not supported
    pub oracle_service_name: Option<String>,
    #[allow(dead_code)] // as above
    pub oracle_connect_string: Option<String>,
}
