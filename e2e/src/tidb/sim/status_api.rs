//! TiDB's HTTP status API for schemas, served from a [`SchemaStore`] (reference
//! tidb-schema-api.md §1): `/ddl/history`, `/schema`, `/schema/{db}`, `/schema/{db}/{table}`,
//! `/schema?table_id=`, `/db-table/{id}`, `/info`, `/status`.
//!
//! Behaviour is that of TiDB v6.3–v8.3 ("G2"): `/ddl/history` without parameters lists every job
//! ascending by id; `?limit=N` the newest N descending; `?start_job_id=S&limit=N` at most N jobs
//! with id ≤ S, descending; bad parameters answer 400 with TiDB's plain-text messages. Parameters
//! come from the query string or a form body, as Go's `FormValue` reads them (body first). JSON
//! is indented by one space like Go's `MarshalIndent`.
//!
//! [`answer`] is the whole behaviour, without sockets; [`router`] puts it on axum.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Serialize;
use serde_json::{Value, json};
use tidb_codec::schema::DdlJob;

use crate::tidb::sim::registration::{GIT_HASH, SERVER_VERSION, ServerIdentity};
use crate::tidb::sim::schema_store::{SchemaSnapshot, SchemaStore};

/// A request, routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    DdlHistory,
    Schema,
    SchemaDb(String),
    SchemaTable(String, String),
    DbTable(String),
    Info,
    Status,
}

/// A reply: status code and body (JSON, or plain text for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub json: bool,
}

impl Reply {
    fn error(message: impl Into<String>) -> Reply {
        Reply {
            status: 400,
            body: message.into(),
            json: false,
        }
    }

    fn data<T: Serialize + ?Sized>(value: &T) -> Reply {
        match go_json(value) {
            Ok(body) => Reply {
                status: 200,
                body,
                json: true,
            },
            Err(err) => Reply {
                status: 500,
                body: err.to_string(),
                json: false,
            },
        }
    }
}

/// JSON indented by one space, as Go's `json.MarshalIndent(v, "", " ")`.
pub fn go_json<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_json::Error> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    value.serialize(&mut ser)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Form parameters in `FormValue` order: body first, then the query string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| char::from(b).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(h), Some(l)) => hex(*h).zip(hex(*l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match (bytes[i], escaped) {
            (_, Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` text and appends it.
    pub fn extend_from(&mut self, encoded: &str) {
        for pair in encoded.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            self.0.push((percent_decode(k), percent_decode(v)));
        }
    }

    /// The first value of `name`; empty when absent (like `FormValue`).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Go's `strconv.Atoi`, with its error text.
fn atoi(s: &str) -> Result<i64, String> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("strconv.Atoi: parsing {s:?}: invalid syntax"));
    }
    s.parse()
        .map_err(|_| format!("strconv.Atoi: parsing {s:?}: value out of range"))
}

fn ddl_history(snapshot: &SchemaSnapshot, params: &Params) -> Reply {
    let mut start = 0;
    let mut limit = 0;
    let s = params.get("start_job_id");
    if !s.is_empty() {
        match atoi(s) {
            Ok(v) if v < 1 => {
                return Reply::error("ddl history start_job_id must be greater than 0");
            }
            Ok(v) => start = v,
            Err(e) => return Reply::error(e),
        }
    }
    let s = params.get("limit");
    if !s.is_empty() {
        match atoi(s) {
            Ok(v) if v < 1 => return Reply::error("ddl history limit must be greater than 0"),
            Ok(v) => limit = v,
            Err(e) => return Reply::error(e),
        }
    }
    if start > 0 && limit == 0 {
        return Reply::error("when 'start_job_id' is specified, it must work with a 'limit'");
    }
    let jobs = &snapshot.jobs;
    if start == 0 && limit == 0 {
        let all: Vec<&DdlJob> = jobs.iter().map(|j| j.as_ref()).collect();
        return Reply::data(&all);
    }
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    let selected: Vec<&DdlJob> = jobs
        .iter()
        .map(|j| j.as_ref())
        .rev()
        .filter(|j| start == 0 || j.id <= start)
        .take(take)
        .collect();
    Reply::data(&selected)
}

fn table_not_exists(id: impl std::fmt::Display) -> Reply {
    Reply::error(format!("Table which ID = {id} does not exist."))
}

fn schema(snapshot: &SchemaSnapshot, params: &Params) -> Reply {
    let table_id = params.get("table_id");
    if table_id.is_empty() {
        let dbs: Vec<_> = snapshot.catalog.dbs().collect();
        return Reply::data(&dbs);
    }
    match atoi(table_id) {
        Err(e) => Reply::error(e),
        Ok(id) if id < 0 => table_not_exists(table_id),
        Ok(id) => match snapshot.catalog.table(id) {
            Some(t) => Reply::data(&t.info),
            None => table_not_exists(table_id),
        },
    }
}

fn unknown_db(db: &str) -> Reply {
    Reply::error(format!("[schema:1049]Unknown database '{db}'"))
}

/// Answers one request from a snapshot.
pub fn answer(
    snapshot: &SchemaSnapshot,
    server: &ServerIdentity,
    endpoint: &Endpoint,
    params: &Params,
) -> Reply {
    let catalog = &snapshot.catalog;
    match endpoint {
        Endpoint::DdlHistory => ddl_history(snapshot, params),
        Endpoint::Schema => schema(snapshot, params),
        Endpoint::SchemaDb(db) => match catalog.db_by_name(db) {
            None => unknown_db(db),
            Some(info) => {
                let tables: Vec<_> = catalog.tables_in(info.id).map(|t| &t.info).collect();
                Reply::data(&tables)
            }
        },
        Endpoint::SchemaTable(db, table) => {
            if catalog.db_by_name(db).is_none() {
                return unknown_db(db);
            }
            match catalog.table_by_name(db, table) {
                Some(t) => Reply::data(&t.info),
                None => Reply::error(format!("[schema:1146]Table '{db}.{table}' doesn't exist")),
            }
        }
        Endpoint::DbTable(id) => {
            let Ok(id) = id.parse::<i64>() else {
                return Reply::error(format!("Wrong tableID: {id}"));
            };
            match catalog.table(id) {
                None => table_not_exists(id),
                Some(t) => Reply::data(&json!({
                    "db_info": catalog.db(t.db_id),
                    "table_info": t.info,
                    "schema_version": catalog.schema_version(),
                })),
            }
        }
        Endpoint::Info => {
            let mut info = server.server_info();
            if let Value::Object(m) = &mut info {
                m.insert("is_owner".into(), json!(true));
            }
            Reply::data(&info)
        }
        Endpoint::Status => Reply::data(&json!({
            "connections": 0,
            "version": SERVER_VERSION,
            "git_hash": GIT_HASH,
            "status": {"init_stats_percentage": 100},
        })),
    }
}

/// What the axum handlers share.
struct ApiState {
    store: SchemaStore,
    server: ServerIdentity,
}

fn reply_response(reply: Reply) -> Response {
    let content_type = if reply.json {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [(header::CONTENT_TYPE, content_type)], reply.body).into_response()
}

fn params(headers: &HeaderMap, query: Option<String>, body: &Bytes) -> Params {
    let mut params = Params::default();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form {
        params.extend_from(&String::from_utf8_lossy(body));
    }
    if let Some(q) = query {
        params.extend_from(&q);
    }
    params
}

async fn serve_endpoint(
    state: Arc<ApiState>,
    endpoint: Endpoint,
    headers: HeaderMap,
    query: Option<String>,
    body: Bytes,
) -> Response {
    let params = params(&headers, query, &body);
    let snapshot = state.store.snapshot();
    reply_response(answer(&snapshot, &state.server, &endpoint, &params))
}

/// The status API on axum.
pub fn router(store: SchemaStore, server: ServerIdentity) -> Router {
    let state = Arc::new(ApiState { store, server });
    Router::new()
        .route(
            "/ddl/history",
            any(
                |State(s): State<Arc<ApiState>>, h: HeaderMap, RawQuery(q): RawQuery, b: Bytes| {
                    serve_endpoint(s, Endpoint::DdlHistory, h, q, b)
                },
            ),
        )
        .route(
            "/schema",
            any(
                |State(s): State<Arc<ApiState>>, h: HeaderMap, RawQuery(q): RawQuery, b: Bytes| {
                    serve_endpoint(s, Endpoint::Schema, h, q, b)
                },
            ),
        )
        .route(
            "/schema/{db}",
            any(
                |State(s): State<Arc<ApiState>>,
                 Path(db): Path<String>,
                 h: HeaderMap,
                 RawQuery(q): RawQuery,
                 b: Bytes| serve_endpoint(s, Endpoint::SchemaDb(db), h, q, b),
            ),
        )
        .route(
            "/schema/{db}/{table}",
            any(
                |State(s): State<Arc<ApiState>>,
                 Path((db, table)): Path<(String, String)>,
                 h: HeaderMap,
                 RawQuery(q): RawQuery,
                 b: Bytes| {
                    serve_endpoint(s, Endpoint::SchemaTable(db, table), h, q, b)
                },
            ),
        )
        .route(
            "/db-table/{table_id}",
            any(
                |State(s): State<Arc<ApiState>>,
                 Path(id): Path<String>,
                 h: HeaderMap,
                 RawQuery(q): RawQuery,
                 b: Bytes| serve_endpoint(s, Endpoint::DbTable(id), h, q, b),
            ),
        )
        .route(
            "/info",
            any(
                |State(s): State<Arc<ApiState>>, h: HeaderMap, RawQuery(q): RawQuery, b: Bytes| {
                    serve_endpoint(s, Endpoint::Info, h, q, b)
                },
            ),
        )
        .route(
            "/status",
            any(
                |State(s): State<Arc<ApiState>>, h: HeaderMap, RawQuery(q): RawQuery, b: Bytes| {
                    serve_endpoint(s, Endpoint::Status, h, q, b)
                },
            ),
        )
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tidb::sim::catalog::Catalog;
    use crate::tidb::sim::ddl_gen::{setup_ddl, setup_len};

    fn snapshot() -> SchemaSnapshot {
        let mut catalog = Catalog::default();
        let mut jobs = Vec::new();
        for step in 0..setup_len() {
            let p = catalog
                .plan(&setup_ddl(step, &catalog).unwrap(), 5)
                .unwrap();
            catalog.apply(&p.job).unwrap();
            jobs.push(p.job);
        }
        let store = SchemaStore::new(jobs).unwrap();
        let s = store.snapshot();
        SchemaSnapshot {
            jobs: s.jobs.clone(),
            catalog: s.catalog.clone(),
        }
    }

    fn server() -> ServerIdentity {
        ServerIdentity {
            ddl_id: "x".into(),
            ip: "127.0.0.1".into(),
            sql_port: 4000,
            status_port: 10080,
            start_timestamp: 1,
        }
    }

    fn get(s: &SchemaSnapshot, endpoint: Endpoint, query: &str) -> Reply {
        let mut p = Params::default();
        p.extend_from(query);
        answer(s, &server(), &endpoint, &p)
    }

    fn ids(reply: &Reply) -> Vec<i64> {
        assert_eq!(reply.status, 200, "{}", reply.body);
        let v: Vec<Value> = serde_json::from_str(&reply.body).unwrap();
        v.iter().map(|j| j["id"].as_i64().unwrap()).collect()
    }

    #[test]
    fn ddl_history_generation_two() {
        let s = snapshot();
        let all = ids(&get(&s, Endpoint::DdlHistory, ""));
        assert_eq!(all.len(), setup_len());
        assert!(all.windows(2).all(|w| w[0] < w[1]), "ascending: {all:?}");
        let newest = ids(&get(&s, Endpoint::DdlHistory, "limit=2"));
        assert_eq!(newest, [all[all.len() - 1], all[all.len() - 2]]);
        let one = ids(&get(
            &s,
            Endpoint::DdlHistory,
            &format!("start_job_id={}&limit=1", all[2]),
        ));
        assert_eq!(one, [all[2]]);
        let below = ids(&get(
            &s,
            Endpoint::DdlHistory,
            &format!("start_job_id={}&limit=3", all[2] + 1),
        ));
        assert_eq!(
            below,
            [all[2], all[1], all[0]],
            "a missing id gives the next lower"
        );
        for (q, msg) in [
            (
                "start_job_id=5",
                "when 'start_job_id' is specified, it must work with a 'limit'",
            ),
            (
                "start_job_id=0&limit=1",
                "ddl history start_job_id must be greater than 0",
            ),
            ("limit=0", "ddl history limit must be greater than 0"),
            ("limit=x", "strconv.Atoi: parsing \"x\": invalid syntax"),
        ] {
            let r = get(&s, Endpoint::DdlHistory, q);
            assert_eq!(
                (r.status, r.body.as_str(), r.json),
                (400, msg, false),
                "{q}"
            );
        }
        let body = get(&s, Endpoint::DdlHistory, "limit=1").body;
        assert!(
            body.starts_with("[\n {\n  \"id\": "),
            "one-space indent: {body}"
        );
    }

    #[test]
    fn schema_endpoints() {
        let s = snapshot();
        let dbs: Vec<Value> = serde_json::from_str(&get(&s, Endpoint::Schema, "").body).unwrap();
        assert_eq!(dbs.len(), 2);
        assert_eq!(dbs[0]["db_name"]["O"], "sim_a");
        let tables: Vec<Value> =
            serde_json::from_str(&get(&s, Endpoint::SchemaDb("SIM_A".into()), "").body).unwrap();
        assert_eq!(tables.len(), 3);
        let t = get(&s, Endpoint::SchemaTable("sim_a".into(), "Ints".into()), "");
        let t: Value = serde_json::from_str(&t.body).unwrap();
        assert_eq!(t["pk_is_handle"], true);
        let id = t["id"].as_i64().unwrap();
        let by_id: Value =
            serde_json::from_str(&get(&s, Endpoint::Schema, &format!("table_id={id}")).body)
                .unwrap();
        assert_eq!(by_id, t);
        let db_table: Value =
            serde_json::from_str(&get(&s, Endpoint::DbTable(id.to_string()), "").body).unwrap();
        assert_eq!(db_table["table_info"], t);
        assert_eq!(db_table["db_info"]["db_name"]["L"], "sim_a");
        assert_eq!(db_table["schema_version"], s.catalog.schema_version());
        assert_eq!(
            get(&s, Endpoint::SchemaDb("nope".into()), "").body,
            "[schema:1049]Unknown database 'nope'"
        );
        assert_eq!(
            get(&s, Endpoint::SchemaTable("sim_a".into(), "nope".into()), "").body,
            "[schema:1146]Table 'sim_a.nope' doesn't exist"
        );
        assert_eq!(
            get(&s, Endpoint::Schema, "table_id=-3").body,
            "Table which ID = -3 does not exist."
        );
        assert_eq!(
            get(&s, Endpoint::Schema, "table_id=99999").body,
            "Table which ID = 99999 does not exist."
        );
        assert_eq!(
            get(&s, Endpoint::DbTable("x".into()), "").body,
            "Wrong tableID: x"
        );
        let info: Value = serde_json::from_str(&get(&s, Endpoint::Info, "").body).unwrap();
        assert_eq!(
            (info["is_owner"].clone(), info["status_port"].clone()),
            (json!(true), json!(10080))
        );
        let status: Value = serde_json::from_str(&get(&s, Endpoint::Status, "").body).unwrap();
        assert_eq!(status["version"], SERVER_VERSION);
    }

    #[test]
    fn form_parsing() {
        let mut p = Params::default();
        p.extend_from("limit=3&a=b%20c+d&empty");
        p.extend_from("limit=9");
        assert_eq!(p.get("limit"), "3", "first value wins");
        assert_eq!(p.get("a"), "b c d");
        assert_eq!(p.get("empty"), "");
        assert_eq!(p.get("missing"), "");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(atoi("+12"), Ok(12));
        assert!(
            atoi("99999999999999999999")
                .unwrap_err()
                .contains("value out of range")
        );
    }
}
