//! The ConfigMaps holding `pump.toml` and each `drainer.toml`, and the hash of their content that
//! goes into pod-template annotations so that a config change rolls the pods.
//!
//! Each file is the user's TOML passthrough with the operator-owned keys written over it. The
//! rendering is deterministic (keys sorted), so the hash changes exactly when the content does.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use sha2::{Digest, Sha256};
use toml::{Table, Value};

use super::{BuildError, Owner};
use crate::crd::{BinlogCluster, Downstream, DrainerSpec};
use crate::disk::{default_stop_write_at_available_space, humanize_bytes, quantity_bytes};
use crate::labels;
use crate::names;

/// The rendered `pump.toml`.
///
/// Operator-owned keys: `gc` (from `gcDays`, when set), `[storage]
/// stop-write-at-available-space` (from `stopWriteAtAvailableSpace`; else the user's value; else
/// min(10 GiB, 10% of the volume)), and `[security] ssl-ca/ssl-cert/ssl-key` when TLS is on.
pub fn render_pump_toml(cluster: &BinlogCluster) -> Result<String, BuildError> {
    let pump = &cluster.spec.pump;
    let field = "spec.pump.config";
    let mut table = parse(field, pump.config.as_deref())?;
    if let Some(days) = pump.gc_days {
        table.insert("gc".into(), Value::Integer(i64::from(days)));
    }
    let storage = subtable(&mut table, field, "storage")?;
    let threshold = match &pump.stop_write_at_available_space {
        Some(quantity) => Some(quantity_bytes(quantity).map_err(|err| invalid(field, err))?),
        None if storage.contains_key("stop-write-at-available-space") => None,
        None => {
            let volume = quantity_bytes(&pump.storage.size).map_err(|err| invalid(field, err))?;
            Some(default_stop_write_at_available_space(volume))
        }
    };
    if let Some(bytes) = threshold {
        storage.insert(
            "stop-write-at-available-space".into(),
            Value::String(humanize_bytes(bytes)),
        );
    }
    if cluster.spec.tls.is_some() {
        set_tls(
            subtable(&mut table, field, "security")?,
            names::CLUSTER_TLS_DIR,
        );
    }
    render(field, &table)
}

/// The rendered `drainer.toml` of one drainer.
///
/// Operator-owned keys: `[syncer] db-type`; `[syncer.to]` `host`/`port`/`user` (mysql, tidb; a
/// `password` in the passthrough is dropped when `passwordSecretRef` is set, since the password
/// then comes from the `MYSQL_PSWD` environment variable), `dir`/`retention-time` (file),
/// `kafka-addrs`/`topic-name` (kafka); `[syncer.to.security]` with a downstream TLS secret;
/// `[security]` with cluster TLS.
pub fn render_drainer_toml(
    cluster: &BinlogCluster,
    drainer: &DrainerSpec,
) -> Result<String, BuildError> {
    let field = format!("spec.drainers[{}].config", drainer.name);
    let mut table = parse(&field, drainer.config.as_deref())?;
    let syncer = subtable(&mut table, &field, "syncer")?;
    syncer.insert(
        "db-type".into(),
        Value::String(drainer.downstream.db_type().into()),
    );
    let to = subtable(syncer, &field, "to")?;
    match &drainer.downstream {
        Downstream::Mysql(sql) | Downstream::Tidb(sql) => {
            to.insert("host".into(), Value::String(sql.host.clone()));
            to.insert("port".into(), Value::Integer(i64::from(sql.port)));
            to.insert("user".into(), Value::String(sql.user.clone()));
            if sql.password_secret_ref.is_some() {
                to.remove("password");
                to.remove("encrypted_password");
            }
            if sql.tls_secret_name.is_some() {
                set_tls(subtable(to, &field, "security")?, names::DOWNSTREAM_TLS_DIR);
            }
        }
        Downstream::File(file) => {
            to.insert("dir".into(), Value::String(names::DRAINER_FILE_DIR.into()));
            if let Some(days) = file.retention_days {
                to.insert("retention-time".into(), Value::Integer(i64::from(days)));
            }
        }
        Downstream::Kafka(kafka) => {
            to.insert("kafka-addrs".into(), Value::String(kafka.addrs.join(",")));
            if let Some(topic) = &kafka.topic {
                to.insert("topic-name".into(), Value::String(topic.clone()));
            }
        }
    }
    if cluster.spec.tls.is_some() {
        set_tls(
            subtable(&mut table, &field, "security")?,
            names::CLUSTER_TLS_DIR,
        );
    }
    render(&field, &table)
}

/// The hash put into the pod template's [`names::CONFIG_HASH_ANNOTATION`]: the first 16 hex
/// digits of the SHA-256 of the rendered file.
pub fn config_hash(rendered: &str) -> String {
    let digest = Sha256::digest(rendered.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// ConfigMap `<cluster>-pump` with key `pump.toml`.
pub fn pump_config_map(cluster: &BinlogCluster) -> Result<ConfigMap, BuildError> {
    let owner = Owner::of(cluster)?;
    Ok(ConfigMap {
        metadata: owner.meta(
            names::pump(&owner.name),
            labels::with_managed_by(labels::pump_selector(&owner.name)),
        ),
        data: Some(BTreeMap::from([(
            names::PUMP_CONFIG_FILE.to_string(),
            render_pump_toml(cluster)?,
        )])),
        ..ConfigMap::default()
    })
}

/// ConfigMap `<cluster>-drainer-<name>` with key `drainer.toml`.
pub fn drainer_config_map(
    cluster: &BinlogCluster,
    drainer: &DrainerSpec,
) -> Result<ConfigMap, BuildError> {
    let owner = Owner::of(cluster)?;
    Ok(ConfigMap {
        metadata: owner.meta(
            names::drainer(&owner.name, &drainer.name),
            labels::with_managed_by(labels::drainer_selector(&owner.name, &drainer.name)),
        ),
        data: Some(BTreeMap::from([(
            names::DRAINER_CONFIG_FILE.to_string(),
            render_drainer_toml(cluster, drainer)?,
        )])),
        ..ConfigMap::default()
    })
}

fn parse(field: &str, text: Option<&str>) -> Result<Table, BuildError> {
    match text {
        None => Ok(Table::new()),
        Some(text) => text
            .parse::<Table>()
            .map_err(|err| BuildError::InvalidConfig {
                field: field.to_string(),
                reason: format!("not valid TOML: {}", err.message()),
            }),
    }
}

fn render(field: &str, table: &Table) -> Result<String, BuildError> {
    toml::to_string(table).map_err(|err| invalid(field, err))
}

/// The table under `key`, created when missing; an error when the user put a non-table there.
fn subtable<'a>(table: &'a mut Table, field: &str, key: &str) -> Result<&'a mut Table, BuildError> {
    match table
        .entry(key)
        .or_insert_with(|| Value::Table(Table::new()))
    {
        Value::Table(inner) => Ok(inner),
        other => Err(BuildError::InvalidConfig {
            field: field.to_string(),
            reason: format!("`{key}` must be a table, found {}", other.type_str()),
        }),
    }
}

fn set_tls(security: &mut Table, dir: &str) {
    for (key, file) in [
        ("ssl-ca", "ca.crt"),
        ("ssl-cert", "tls.crt"),
        ("ssl-key", "tls.key"),
    ] {
        security.insert(key.into(), Value::String(format!("{dir}/{file}")));
    }
}

fn invalid(field: &str, err: impl std::fmt::Display) -> BuildError {
    BuildError::InvalidConfig {
        field: field.to_string(),
        reason: err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::fixtures::{SPEC, cluster, cluster_from};
    use crate::crd::TlsSpec;

    fn toml_of(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn pump_toml_keeps_user_keys_and_sizes_the_threshold_for_the_volume() {
        let rendered = toml_of(&render_pump_toml(&cluster()).unwrap());
        assert_eq!(rendered["log-level"].as_str(), Some("debug"));
        assert_eq!(rendered["storage"]["sync-log"].as_bool(), Some(true));
        // 20Gi volume: 10% = 2 GiB, below the 10 GiB cap.
        assert_eq!(
            rendered["storage"]["stop-write-at-available-space"].as_str(),
            Some("2 GiB")
        );
        assert!(rendered.get("gc").is_none());
        assert!(rendered.get("security").is_none());
    }

    #[test]
    fn typed_fields_win_over_the_passthrough() {
        let mut bc = cluster();
        bc.spec.pump.config = Some(
            "gc = 30\n[storage]\nstop-write-at-available-space = \"1 GiB\"\n\
             [security]\nssl-ca = \"/elsewhere\"\n"
                .into(),
        );
        let untouched = toml_of(&render_pump_toml(&bc).unwrap());
        assert_eq!(untouched["gc"].as_integer(), Some(30));
        assert_eq!(
            untouched["storage"]["stop-write-at-available-space"].as_str(),
            Some("1 GiB"),
            "a user threshold is kept when the typed field is unset"
        );

        bc.spec.pump.gc_days = Some(3);
        bc.spec.pump.stop_write_at_available_space = Some(
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("512Mi".into()),
        );
        bc.spec.tls = Some(TlsSpec {
            cluster_secret_name: "tls".into(),
        });
        let owned = toml_of(&render_pump_toml(&bc).unwrap());
        assert_eq!(owned["gc"].as_integer(), Some(3));
        assert_eq!(
            owned["storage"]["stop-write-at-available-space"].as_str(),
            Some("512 MiB")
        );
        assert_eq!(
            owned["security"]["ssl-ca"].as_str(),
            Some("/var/lib/binlog-tls/ca.crt")
        );
        assert_eq!(
            owned["security"]["ssl-key"].as_str(),
            Some("/var/lib/binlog-tls/tls.key")
        );
    }

    #[test]
    fn bad_passthrough_names_the_field() {
        let mut bc = cluster();
        bc.spec.pump.config = Some("gc = ".into());
        let err = render_pump_toml(&bc).unwrap_err().to_string();
        assert!(err.starts_with("spec.pump.config: not valid TOML"), "{err}");
        bc.spec.pump.config = Some("storage = 1".into());
        let err = render_pump_toml(&bc).unwrap_err().to_string();
        assert!(err.contains("`storage` must be a table"), "{err}");
    }

    #[test]
    fn drainer_toml_per_downstream() {
        let bc = cluster();
        let mysql = toml_of(&render_drainer_toml(&bc, &bc.spec.drainers[0]).unwrap());
        assert_eq!(mysql["syncer"]["db-type"].as_str(), Some("mysql"));
        assert_eq!(mysql["syncer"]["worker-count"].as_integer(), Some(4));
        assert_eq!(mysql["syncer"]["to"]["host"].as_str(), Some("mysql.db"));
        assert_eq!(mysql["syncer"]["to"]["port"].as_integer(), Some(3307));
        assert_eq!(mysql["syncer"]["to"]["user"].as_str(), Some("repl"));
        assert!(mysql["syncer"]["to"].get("password").is_none());

        let file = toml_of(&render_drainer_toml(&bc, &bc.spec.drainers[1]).unwrap());
        assert_eq!(file["syncer"]["db-type"].as_str(), Some("file"));
        assert_eq!(file["syncer"]["to"]["dir"].as_str(), Some("/data/pb"));
        assert_eq!(file["syncer"]["to"]["retention-time"].as_integer(), Some(7));

        let kafka = toml_of(&render_drainer_toml(&bc, &bc.spec.drainers[2]).unwrap());
        assert_eq!(kafka["syncer"]["db-type"].as_str(), Some("kafka"));
        assert_eq!(
            kafka["syncer"]["to"]["kafka-addrs"].as_str(),
            Some("k1:9092,k2:9092")
        );
        assert_eq!(kafka["syncer"]["to"]["topic-name"].as_str(), Some("binlog"));
    }

    #[test]
    fn a_password_in_the_passthrough_gives_way_to_the_secret() {
        let mut bc = cluster();
        bc.spec.drainers[0].config = Some("[syncer.to]\npassword = \"plain\"\n".into());
        let mysql = toml_of(&render_drainer_toml(&bc, &bc.spec.drainers[0]).unwrap());
        assert!(mysql["syncer"]["to"].get("password").is_none());
    }

    #[test]
    fn config_maps_carry_the_rendered_files() {
        let bc = cluster();
        let pump = pump_config_map(&bc).unwrap();
        assert_eq!(pump.metadata.name.as_deref(), Some("demo-pump"));
        assert_eq!(
            pump.data.as_ref().unwrap()["pump.toml"],
            render_pump_toml(&bc).unwrap()
        );
        let drainer = drainer_config_map(&bc, &bc.spec.drainers[1]).unwrap();
        assert_eq!(
            drainer.metadata.name.as_deref(),
            Some("demo-drainer-backup")
        );
        assert!(drainer.data.unwrap().contains_key("drainer.toml"));
    }

    #[test]
    fn hash_changes_with_the_config_and_only_then() {
        let base = render_pump_toml(&cluster()).unwrap();
        assert_eq!(config_hash(&base).len(), 16);
        assert_eq!(
            config_hash(&base),
            config_hash(&render_pump_toml(&cluster_from(SPEC)).unwrap())
        );

        // Changes outside the config (replicas, resources) leave it alone.
        let mut scaled = cluster();
        scaled.spec.pump.replicas = 7;
        scaled.spec.pump.resources = None;
        assert_eq!(
            config_hash(&base),
            config_hash(&render_pump_toml(&scaled).unwrap())
        );

        let mut changed = cluster();
        changed.spec.pump.config = Some("log-level = \"info\"\n".into());
        assert_ne!(
            config_hash(&base),
            config_hash(&render_pump_toml(&changed).unwrap())
        );
        let mut gc = cluster();
        gc.spec.pump.gc_days = Some(2);
        assert_ne!(
            config_hash(&base),
            config_hash(&render_pump_toml(&gc).unwrap())
        );
    }
}
