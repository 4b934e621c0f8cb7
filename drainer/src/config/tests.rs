use std::collections::HashMap;

use super::*;

fn load(toml: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = |name: &str| env.get(name).cloned();
    let flags = Flags::parse_args(
        std::iter::once("drainer").chain(args.iter().copied()),
        lookup,
    )
    .unwrap();
    let file = binlog_cluster::config_file::parse_toml(toml, std::path::Path::new("drainer.toml"))?;
    Config::resolve(&flags, file, &lookup)
}

fn error(toml: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    load(toml, args, env).unwrap_err().to_string()
}

fn mysql(config: &Config) -> &MysqlSink {
    match &config.sink {
        SinkConfig::Mysql(mysql) => mysql,
        other => panic!("not a MySQL sink: {other:?}"),
    }
}

#[test]
fn defaults_are_the_original_codes() {
    let config = load("", &[], &[]).unwrap();
    assert_eq!(config.addr, "127.0.0.1:8249");
    assert_eq!(config.advertise_addr, "127.0.0.1:8249");
    assert_eq!(config.data_dir, PathBuf::from("data.drainer"));
    assert_eq!(config.pd_urls, ["http://127.0.0.1:2379"]);
    assert_eq!(config.detect_interval, Duration::from_secs(5));
    assert_eq!(config.log_level, "info");
    assert_eq!(config.log_file, None);
    assert_eq!(config.metrics, None);
    assert_eq!(config.initial_commit_ts, -1);
    assert!(!config.gzip);
    assert_eq!(config.synced_check_time, Duration::from_secs(300));
    assert!(!config.security.enabled());
    assert_eq!(config.node_id, None);

    let syncer = &config.syncer;
    assert_eq!(syncer.txn_batch, 20);
    assert_eq!(syncer.worker_count, 16);
    assert_eq!(syncer.cache_binlog_count, 8);
    assert!(!syncer.safe_mode);
    assert!(syncer.enable_dispatch);
    assert!(syncer.enable_causality);
    assert!(!syncer.load_schema_snapshot);
    assert_eq!(syncer.sql_mode, None);
    assert!(syncer.ignore_txn_commit_ts.is_empty());
    assert!(syncer.sync_ddl);

    assert_eq!(
        config.filter.ignore_dbs,
        ["INFORMATION_SCHEMA", "PERFORMANCE_SCHEMA", "mysql"]
    );
    assert!(config.filter.do_dbs.is_empty());

    let sink = mysql(&config);
    assert_eq!(sink.flavor, DbFlavor::Mysql);
    assert_eq!(sink.connection.host, "localhost");
    assert_eq!(sink.connection.port, 3306);
    assert_eq!(sink.connection.user, "root");
    assert_eq!(sink.connection.password.expose(), "");
    assert_eq!(sink.read_timeout, Duration::from_secs(60));
    assert_eq!(sink.sync_mode, SyncMode::Full);
    assert!(!sink.merge);
    assert_eq!(
        config.checkpoint,
        CheckpointConfig::Mysql {
            connection: sink.connection.clone(),
            schema: "tidb_binlog".into(),
            table: "checkpoint".into(),
        }
    );
    assert_eq!(
        config.relay,
        RelayConfig {
            log_dir: None,
            max_file_size: 10 * 1024 * 1024
        }
    );
    assert_eq!(config.event_filter, EventFilterConfig::default());
}

/// The sample from the original user guide (docs/seeds), comments kept short.
const USER_GUIDE_SAMPLE: &str = r#"
# Drainer Configuration.
addr = "192.168.0.13:8249"
detect-interval = 10
data-dir = "data.drainer"
pd-urls = "http://192.168.0.16:2379,http://192.168.0.15:2379,http://192.168.0.14:2379"
log-file = "drainer.log"

[syncer]
ignore-schemas = "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql"
txn-batch = 1
worker-count = 1
disable-dispatch = false
db-type = "mysql"
# replicate-do-db = ["~^b.*","s1"]
# [[syncer.replicate-do-table]]
# db-name ="test"
# tbl-name = "log"

[syncer.to]
host = "192.168.0.13"
user = "root"
password = ""
port = 3306
"#;

#[test]
fn the_user_guide_sample_loads() {
    let config = load(USER_GUIDE_SAMPLE, &[], &[]).unwrap();
    assert_eq!(config.addr, "192.168.0.13:8249");
    assert_eq!(config.detect_interval, Duration::from_secs(10));
    assert_eq!(config.pd_urls.len(), 3);
    assert_eq!(config.log_file, Some(PathBuf::from("drainer.log")));
    assert_eq!(config.syncer.txn_batch, 1);
    assert_eq!(config.syncer.worker_count, 1);
    assert_eq!(mysql(&config).connection.host, "192.168.0.13");
}

/// Every key of the original's drainer.toml (and of its integration tests) at once.
const EVERY_KEY: &str = r#"
log-level = "debug"
node-id = "drainer-1"
addr = "0.0.0.0:8249"
advertise-addr = "drainer-1.svc:8249"
data-dir = "/var/lib/drainer"
detect-interval = 3
pd-urls = "pd-0:2379"
log-file = ""
initial-commit-ts = 0
synced-check-time = 1
compressor = "gzip"

[security]
ssl-ca = ""
ssl-cert = ""
ssl-key = ""
cert-allowed-cn = ["binlog"]

[syncer]
sql-mode = "STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION"
ignore-txn-commit-ts = [410000000000000000, 410000000000000001]
ignore-schemas = "INFORMATION_SCHEMA,PERFORMANCE_SCHEMA,mysql,test"
txn-batch = 200
worker-count = 20
loopback-control = false
sync-ddl = false
channel-id = 1
replicate-do-db = ["~^b.*", "s1"]
db-type = "tidb"
disable-dispatch = false
enable-dispatch = true
safe-mode = true
disable-detect = false
enable-detect = true
load-schema-snapshot = true
case-sensitive = true

[[syncer.ignore-table]]
db-name = "test"
tbl-name = "log"

[[syncer.replicate-do-table]]
db-name = "test"
tbl-name = "~^a.*"

[syncer.binlog-filter-rule.no-truncate]
ignore-event = ["truncate table", "Delete"]
ignore-sql = ["alter table .* add column aaa int"]

[[syncer.table-migrate-rule]]
binlog-filter-rule = ["no-truncate"]
[syncer.table-migrate-rule.source]
schema = "s1"
table = "t*"
[syncer.table-migrate-rule.target]
schema = "s2"
table = "t"

[syncer.relay]
log-dir = "/var/lib/drainer/relay"
max-file-size = 1048576

[syncer.to]
host = "tidb.downstream"
user = "binlog"
password = "secret"
port = 4000
read-timeout = "30s"
sync-mode = 2
merge = true
oracle-service-name = ""
oracle-connect-string = ""
dir = "/unused/for/tidb"
retention-time = 7
kafka-addrs = "k:9092"

[syncer.to.params]
tidb_txn_mode = "optimistic"

[syncer.to.security]
ssl-ca = "/etc/tls/ca.pem"
ssl-cert = "/etc/tls/cert.pem"
ssl-key = "/etc/tls/key.pem"

[syncer.to.checkpoint]
type = "mysql"
schema = "binlog_meta"
table = "cp"
host = "meta.db"
user = "meta"
password = "meta-pass"
port = 3307
oracle-service-name = ""
oracle-connect-string = ""

[syncer.to.checkpoint.security]
ssl-ca = "/etc/tls/meta-ca.pem"
"#;

#[test]
fn every_key_of_the_original_loads_into_its_typed_place() {
    let config = load(EVERY_KEY, &[], &[]).unwrap();
    assert_eq!(config.log_level, "debug");
    assert_eq!(config.node_id.as_deref(), Some("drainer-1"));
    assert_eq!(config.addr, "0.0.0.0:8249");
    assert_eq!(config.advertise_addr, "drainer-1.svc:8249");
    assert_eq!(config.pd_urls, ["http://pd-0:2379"]);
    assert_eq!(config.initial_commit_ts, 0);
    assert_eq!(config.synced_check_time, Duration::from_secs(60));
    assert!(config.gzip);
    assert_eq!(config.security.cert_allowed_cn, ["binlog"]);

    let syncer = &config.syncer;
    assert_eq!(
        syncer.sql_mode.as_deref(),
        Some("STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION")
    );
    assert_eq!(
        syncer.ignore_txn_commit_ts,
        [410000000000000000, 410000000000000001]
    );
    assert_eq!((syncer.txn_batch, syncer.worker_count), (200, 20));
    assert!(syncer.safe_mode && syncer.load_schema_snapshot);
    assert!(!syncer.sync_ddl);
    assert_eq!(config.filter.ignore_dbs.len(), 4);
    assert_eq!(config.filter.do_dbs, ["~^b.*", "s1"]);
    assert_eq!(config.filter.do_tables, [TableName::new("test", "~^a.*")]);
    assert_eq!(config.filter.ignore_tables, [TableName::new("test", "log")]);

    let events = &config.event_filter;
    assert!(events.case_sensitive);
    assert_eq!(
        events.rules["no-truncate"].ignore_events,
        ["truncate table", "delete"]
    );
    assert_eq!(
        events.table_rules,
        [TableMigrateRule {
            source: SchemaTable {
                schema: "s1".into(),
                table: "t*".into()
            },
            target: Some(SchemaTable {
                schema: "s2".into(),
                table: "t".into()
            }),
            filter_rules: vec!["no-truncate".into()],
        }]
    );
    assert_eq!(
        config.relay,
        RelayConfig {
            log_dir: Some("/var/lib/drainer/relay".into()),
            max_file_size: 1048576
        }
    );

    let sink = mysql(&config);
    assert_eq!(sink.flavor, DbFlavor::Tidb);
    assert_eq!(
        (sink.connection.host.as_str(), sink.connection.port),
        ("tidb.downstream", 4000)
    );
    assert_eq!(sink.connection.user, "binlog");
    assert_eq!(sink.connection.password.expose(), "secret");
    assert_eq!(
        sink.connection.tls.ssl_ca,
        Some(PathBuf::from("/etc/tls/ca.pem"))
    );
    assert_eq!(sink.read_timeout, Duration::from_secs(30));
    assert_eq!(sink.sync_mode, SyncMode::Partial);
    assert!(sink.merge);
    assert_eq!(sink.params["tidb_txn_mode"], "optimistic");

    let CheckpointConfig::Mysql {
        connection,
        schema,
        table,
    } = &config.checkpoint
    else {
        panic!("{:?}", config.checkpoint)
    };
    assert_eq!((schema.as_str(), table.as_str()), ("binlog_meta", "cp"));
    assert_eq!(
        (connection.host.as_str(), connection.port),
        ("meta.db", 3307)
    );
    assert_eq!(connection.user, "meta");
    assert_eq!(connection.password.expose(), "meta-pass");
    assert_eq!(
        connection.tls.ssl_ca,
        Some(PathBuf::from("/etc/tls/meta-ca.pem"))
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_key_in_every_table() {
    for (toml, key) in [
        ("stop-write = 1", "stop-write"),
        ("[security]\nssl-cacert = \"x\"", "ssl-cacert"),
        ("[syncer]\nworkers = 1", "workers"),
        ("[syncer.to]\nhostname = \"x\"", "hostname"),
        (
            "[syncer.to]\nencrypted-password = \"x\"",
            "encrypted-password",
        ),
        ("[syncer.to.checkpoint]\nkind = \"mysql\"", "kind"),
        ("[syncer.to.security]\nca = \"x\"", "ca"),
        ("[syncer.relay]\ndir = \"x\"", "dir"),
        ("[[syncer.ignore-table]]\ndb = \"x\"", "db"),
        ("[[syncer.replicate-do-table]]\ntable = \"x\"", "table"),
        ("[syncer.binlog-filter-rule.r]\nevents = []", "events"),
        ("[[syncer.table-migrate-rule]]\nrules = []", "rules"),
        // Keys after an array-of-tables header belong to that element, as in TOML.
        (
            "[[syncer.ignore-table]]\ndb-name = \"a\"\ntbl-name = \"b\"\ntxn-batch = 1",
            "txn-batch",
        ),
    ] {
        let err = error(toml, &[], &[]);
        assert!(
            err.starts_with("config file drainer.toml is invalid: ")
                && err.contains(&format!("unknown field `{key}`")),
            "{toml:?}: {err}"
        );
    }
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let toml = "addr = \"127.0.0.1:1\"\npd-urls = \"http://file:2379\"\n[syncer]\nworker-count = 2\ntxn-batch = 3\ndb-type = \"tidb\"";
    let env = [
        ("BINLOG_SERVER_ADDR", "127.0.0.1:2"),
        ("BINLOG_SERVER_PD_URLS", "http://env:2379"),
        ("BINLOG_SERVER_C", "5"),
    ];
    let config = load(toml, &["-addr", "127.0.0.1:3", "-dest-db-type=mysql"], &env).unwrap();
    assert_eq!(config.addr, "127.0.0.1:3", "flag over env and file");
    assert_eq!(config.pd_urls, ["http://env:2379"], "env over file");
    assert_eq!(config.syncer.worker_count, 5, "env over file");
    assert_eq!(config.syncer.txn_batch, 3, "file over default");
    assert_eq!(config.syncer.cache_binlog_count, 8, "default");
    assert_eq!(mysql(&config).flavor, DbFlavor::Mysql, "flag over file");
}

#[test]
fn disable_beats_enable() {
    let dispatch = |toml: &str, args: &[&str]| {
        let config = load(toml, args, &[]).unwrap();
        (config.syncer.enable_dispatch, config.syncer.worker_count)
    };
    let syncer = |keys: &str| format!("[syncer]\n{keys}");
    assert_eq!(dispatch("", &[]), (true, 16));
    assert_eq!(
        dispatch(&syncer("enable-dispatch = false"), &[]),
        (false, 1)
    );
    assert_eq!(
        dispatch(
            &syncer("enable-dispatch = true\ndisable-dispatch = true"),
            &[]
        ),
        (false, 1)
    );
    assert_eq!(
        dispatch(&syncer("disable-dispatch = true"), &["-enable-dispatch"]),
        (false, 1),
        "the file's disable beats the flag's enable"
    );
    assert_eq!(
        dispatch(
            &syncer("disable-dispatch = true"),
            &["-disable-dispatch=false"]
        ),
        (true, 16),
        "the flag's disable beats the file's"
    );
    assert_eq!(
        dispatch(
            &syncer("enable-dispatch = false"),
            &["-enable-dispatch=true"]
        ),
        (true, 16)
    );
    let causality =
        |toml: &str, args: &[&str]| load(toml, args, &[]).unwrap().syncer.enable_causality;
    assert!(!causality("", &["-disable-detect", "-enable-detect=true"]));
    assert!(!causality(&syncer("enable-detect = false"), &[]));
}

#[test]
fn mysql_connection_falls_back_to_mysql_env_vars() {
    let env = [
        ("MYSQL_HOST", "db.env"),
        ("MYSQL_PORT", "3307"),
        ("MYSQL_USER", "envuser"),
        ("MYSQL_PSWD", "envpass"),
    ];
    let connection = mysql(&load("", &[], &env).unwrap()).connection.clone();
    assert_eq!(
        (
            connection.host.as_str(),
            connection.port,
            connection.user.as_str(),
            connection.password.expose()
        ),
        ("db.env", 3307, "envuser", "envpass")
    );

    let keys = "[syncer.to]\nhost = \"db.file\"\nport = 3308\nuser = \"fileuser\"\npassword = \"filepass\"";
    let connection = mysql(&load(keys, &[], &env).unwrap()).connection.clone();
    assert_eq!(
        (
            connection.host.as_str(),
            connection.port,
            connection.user.as_str(),
            connection.password.expose()
        ),
        ("db.file", 3308, "fileuser", "filepass")
    );

    let err = error("", &[], &[("MYSQL_PORT", "33o6")]);
    assert_eq!(
        err,
        "invalid MYSQL_PORT \"33o6\": expected a port number 1-65535"
    );
    let err = error("[syncer.to]\nport = 70000", &[], &[]);
    assert!(err.starts_with("invalid syncer.to.port \"70000\""), "{err}");
}

#[test]
fn encrypted_passwords_are_decrypted_and_win_over_plain_ones() {
    let sealed = binlog_cluster::secret::seal(b"s3cret").unwrap();
    let toml = format!(
        "[syncer.to]\npassword = \"plain\"\nencrypted_password = \"{sealed}\"\n[syncer.to.checkpoint]\nhost = \"meta\"\nencrypted_password = \"{}\"",
        binlog_cluster::secret::seal(b"meta-s3cret").unwrap()
    );
    let config = load(&toml, &[], &[("MYSQL_PSWD", "env")]).unwrap();
    assert_eq!(mysql(&config).connection.password.expose(), "s3cret");
    let CheckpointConfig::Mysql { connection, .. } = &config.checkpoint else {
        panic!("{:?}", config.checkpoint)
    };
    assert_eq!(
        connection.password.expose(),
        "meta-s3cret",
        "the checkpoint's own field, not the sink's"
    );

    let err = error(
        "[syncer.to]\nencrypted_password = \"not base64!\"",
        &[],
        &[],
    );
    assert_eq!(
        err,
        "cannot decrypt syncer.to.encrypted_password: encrypted text is malformed: not base64"
    );
}

#[test]
fn passwords_do_not_show_in_debug_output() {
    let config = load("[syncer.to]\npassword = \"hunter2\"", &[], &[]).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("***"), "{debug}");
}

#[test]
fn db_type_aliases_and_refusals() {
    let config = load("data-dir = \"/d\"\n[syncer]\ndb-type = \"pb\"", &[], &[]).unwrap();
    assert_eq!(
        config.sink,
        SinkConfig::File(FileSink {
            dir: "/d".into(),
            retention: None
        })
    );
    assert_eq!(
        config.checkpoint,
        CheckpointConfig::File { dir: "/d".into() }
    );
    assert_eq!(config.syncer.worker_count, 1);

    let config = load(
        "[syncer]\ndb-type = \"file\"\n[syncer.to]\ndir = \"/pb\"\nretention-time = 3",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(
        config.sink,
        SinkConfig::File(FileSink {
            dir: "/pb".into(),
            retention: Some(Duration::from_secs(3 * 86_400))
        })
    );
    assert_eq!(
        config.checkpoint,
        CheckpointConfig::File {
            dir: "data.drainer".into()
        }
    );

    let config = load("", &["-dest-db-type", "tidb"], &[]).unwrap();
    assert_eq!(mysql(&config).flavor, DbFlavor::Tidb);

    let err = error("[syncer]\ndb-type = \"flash\"", &[], &[]);
    assert!(
        err.starts_with("invalid db-type \"flash\": the flash sink is no longer supported"),
        "{err}"
    );
    let err = error("", &["-dest-db-type", "postgres"], &[]);
    assert_eq!(
        err,
        "invalid db-type \"postgres\": expected mysql, tidb, file (or its alias pb) or kafka"
    );
    assert!(error("[syncer]\ndb-type = \"oracle\"", &[], &[]).contains("not supported"));
}

#[test]
fn kafka_sink_defaults_and_keys() {
    let config = load("[syncer]\ndb-type = \"kafka\"", &[], &[]).unwrap();
    assert_eq!(
        config.sink,
        SinkConfig::Kafka(KafkaSink {
            addrs: vec!["127.0.0.1:9092".into()],
            version: "0.8.2.0".into(),
            max_messages: 1024,
            max_message_size: 1 << 30,
            client_id: "tidb_binlog".into(),
            topic_name: None,
        })
    );
    assert!(matches!(config.checkpoint, CheckpointConfig::File { .. }));
    assert_eq!(config.syncer.worker_count, 1);

    let config = load(
        "[syncer]\ndb-type = \"kafka\"",
        &[],
        &[("KAFKA_ADDRS", "a:1,b:2")],
    )
    .unwrap();
    let SinkConfig::Kafka(kafka) = &config.sink else {
        panic!()
    };
    assert_eq!(kafka.addrs, ["a:1", "b:2"]);

    let toml = "[syncer]\ndb-type = \"kafka\"\n[syncer.to]\nkafka-addrs = \"k1:9092, k2:9092\"\nkafka-version = \"2.0.0\"\nkafka-max-messages = 10\nkafka-max-message-size = 1048576\nkafka-client-id = \"me\"\ntopic-name = \"t\"\n[syncer.to.checkpoint]\ntype = \"mysql\"\nschema = \"cp\"";
    let config = load(toml, &[], &[("KAFKA_ADDRS", "ignored:1")]).unwrap();
    assert_eq!(
        config.sink,
        SinkConfig::Kafka(KafkaSink {
            addrs: vec!["k1:9092".into(), "k2:9092".into()],
            version: "2.0.0".into(),
            max_messages: 10,
            max_message_size: 1048576,
            client_id: "me".into(),
            topic_name: Some("t".into()),
        })
    );
    let CheckpointConfig::Mysql {
        connection, schema, ..
    } = &config.checkpoint
    else {
        panic!("{:?}", config.checkpoint)
    };
    assert_eq!(schema, "cp");
    assert_eq!(
        (
            connection.host.as_str(),
            connection.port,
            connection.user.as_str()
        ),
        ("127.0.0.1", 3306, "root"),
        "a MySQL checkpoint without a host defaults like the original's"
    );

    let err = error(
        "[syncer]\ndb-type = \"kafka\"\n[syncer.to]\nzookeeper-addrs = \"zk:2181\"",
        &[],
        &[],
    );
    assert!(err.contains("set syncer.to.kafka-addrs"), "{err}");
}

#[test]
fn loopback_control_is_refused_rather_than_ignored() {
    for (toml, args) in [
        ("[syncer]\nloopback-control = true\nchannel-id = 3", &[][..]),
        ("", &["--loopback-control"][..]),
    ] {
        let err = error(toml, args, &[]);
        assert!(
            err.contains("syncer.loopback-control") && err.contains("one direction"),
            "{err}"
        );
    }
    let config = load(
        "[syncer]\nloopback-control = false\nchannel-id = 3",
        &[],
        &[],
    )
    .unwrap();
    assert!(config.syncer.sync_ddl);
}

#[test]
fn checkpoint_type_is_validated() {
    let err = error("[syncer.to.checkpoint]\ntype = \"oracle\"", &[], &[]);
    assert_eq!(
        err,
        "invalid syncer.to.checkpoint.type \"oracle\": expected mysql, tidb or file"
    );
    let config = load("[syncer.to.checkpoint]\ntype = \"file\"", &[], &[]).unwrap();
    assert!(matches!(config.checkpoint, CheckpointConfig::File { .. }));
}

#[test]
fn filter_lists_are_validated() {
    let err = error("[syncer]\nignore-schemas = \"a,,b\"", &[], &[]);
    assert!(
        err.starts_with("invalid ignore-schemas \"a,,b\": empty schema name"),
        "{err}"
    );
    let err = error("", &["-ignore-schemas", "a,b,"], &[]);
    assert!(err.starts_with("invalid ignore-schemas"), "{err}");
    let config = load("[syncer]\nignore-schemas = \"a, b\"", &[], &[]).unwrap();
    assert_eq!(config.filter.ignore_dbs, ["a", "b"]);

    let err = error("[syncer]\nreplicate-do-db = [\"a\", \"\"]", &[], &[]);
    assert!(err.starts_with("invalid syncer.replicate-do-db"), "{err}");
    let err = error("[[syncer.replicate-do-table]]\ndb-name = \"a\"", &[], &[]);
    assert_eq!(
        err,
        "invalid syncer.replicate-do-table \"a\": empty table name (tbl-name)"
    );
    let err = error("[[syncer.ignore-table]]\ntbl-name = \"t\"", &[], &[]);
    assert!(err.contains("empty schema name (db-name)"), "{err}");
    let err = error("[syncer]\nreplicate-do-db = [\"~(\"]", &[], &[]);
    assert!(err.starts_with("invalid replicate-do-db \"~(\": "), "{err}");
}

#[test]
fn binlog_filter_rules_are_validated() {
    let err = error(
        "[syncer.binlog-filter-rule.r]\nignore-event = [\"truncate tables\"]",
        &[],
        &[],
    );
    assert!(
        err.starts_with(
            "invalid syncer.binlog-filter-rule.r.ignore-event \"truncate tables\": unknown event"
        ),
        "{err}"
    );
    let err = error(
        "[syncer.binlog-filter-rule.r]\nignore-sql = [\"alter table (\"]",
        &[],
        &[],
    );
    assert!(
        err.starts_with("invalid syncer.binlog-filter-rule.r.ignore-sql \"alter table (\""),
        "{err}"
    );
    let err = error(
        "[[syncer.table-migrate-rule]]\nbinlog-filter-rule = [\"missing\"]\n[syncer.table-migrate-rule.source]\nschema = \"s\"",
        &[],
        &[],
    );
    assert_eq!(
        err,
        "invalid syncer.table-migrate-rule[0].binlog-filter-rule \"missing\": no [syncer.binlog-filter-rule.<name>] of that name"
    );
    let err = error(
        "[[syncer.table-migrate-rule]]\nbinlog-filter-rule = []",
        &[],
        &[],
    );
    assert!(err.contains("source.schema"), "{err}");
}

#[test]
fn scalar_values_are_validated() {
    for (toml, args, expected) in [
        (
            "compressor = \"zstd\"",
            &[][..],
            "invalid compressor \"zstd\": expected \"\" or gzip",
        ),
        (
            "",
            &["-c", "0"][..],
            "invalid worker-count \"0\": must be > 0",
        ),
        (
            "[syncer]\ntxn-batch = -1",
            &[][..],
            "invalid txn-batch \"-1\": must be > 0",
        ),
        (
            "initial-commit-ts = -2",
            &[][..],
            "invalid initial-commit-ts \"-2\"",
        ),
        (
            "log-level = \"verbose\"",
            &[][..],
            "invalid log-level \"verbose\"",
        ),
        (
            "addr = \"8249\"",
            &[][..],
            "invalid addr \"8249\": expected host:port",
        ),
        (
            "addr = \"0.0.0.0:8249\"",
            &[][..],
            "invalid advertise-addr \"0.0.0.0:8249\"",
        ),
        (
            "pd-urls = \"ftp://pd:1\"",
            &[][..],
            "invalid pd-urls \"ftp://pd:1\"",
        ),
        (
            "[syncer]\nsql-mode = \"STRICT,ANSI\"",
            &[][..],
            "invalid syncer.sql-mode \"STRICT,ANSI\": unknown SQL mode STRICT",
        ),
        (
            "[syncer.to]\nsync-mode = 3",
            &[][..],
            "invalid syncer.to.sync-mode \"3\"",
        ),
        (
            "[syncer.to]\nread-timeout = \"1 minute\"",
            &[][..],
            "invalid syncer.to.read-timeout",
        ),
        (
            "[syncer]\ndb-type = \"pb\"\n[syncer.to]\nretention-time = -1",
            &[][..],
            "invalid syncer.to.retention-time \"-1\"",
        ),
    ] {
        let err = error(toml, args, &[]);
        assert!(err.starts_with(expected), "{toml:?} {args:?}: {err}");
    }
}

#[test]
fn small_conveniences() {
    let config = load(
        "log-level = \"FATAL\"\ndetect-interval = 0\n[syncer]\nsql-mode = \" ansi_quotes, ,strict_trans_tables \"",
        &["-metrics-addr", "pushgw:9091", "-metrics-interval", "30"],
        &[],
    )
    .unwrap();
    assert_eq!(config.log_level, "error");
    assert_eq!(
        config.detect_interval,
        Duration::from_secs(5),
        "0 means the default"
    );
    assert_eq!(
        config.syncer.sql_mode.as_deref(),
        Some("ANSI_QUOTES,STRICT_TRANS_TABLES")
    );
    assert_eq!(
        config.metrics,
        Some(MetricsPush {
            addr: "pushgw:9091".into(),
            interval: Duration::from_secs(30)
        })
    );
    let config = load(
        "",
        &["-metrics-addr", "pushgw:9091", "-metrics-interval", "0"],
        &[],
    )
    .unwrap();
    assert_eq!(config.metrics, None, "interval 0 disables pushing");
    assert!(version_text().contains("Component: drainer"));
}

#[test]
fn a_missing_config_file_is_named() {
    let flags = Flags {
        config: Some("/nonexistent/drainer.toml".into()),
        ..Flags::default()
    };
    let err = Config::load(&flags).unwrap_err().to_string();
    assert!(
        err.starts_with("cannot read config file /nonexistent/drainer.toml: "),
        "{err}"
    );
}
