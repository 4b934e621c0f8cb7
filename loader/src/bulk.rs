//! A plain bulk loader: multi-row `INSERT`s of given rows over N connections in autocommit, no
//! ordering, no conflict detection, no retries. It is the baseline the loader's apply rate is
//! measured against (same rows, same connection count, same downstream).

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params};
use tidb_codec::ColumnValue;

use crate::sql::{quote_ident, quote_table, to_param};

/// Inserts `rows` (values in `columns` order) into `database`.`table`, `rows_per_statement` rows
/// per statement, spread over `connections` connections working in parallel.
pub async fn insert_rows(
    opts: Opts,
    database: &str,
    table: &str,
    columns: &[String],
    rows: Vec<Vec<ColumnValue>>,
    connections: usize,
    rows_per_statement: usize,
) -> Result<(), mysql_async::Error> {
    let connections = connections.max(1);
    let rows_per_statement = rows_per_statement.max(1);
    let one_row = format!("({})", vec!["?"; columns.len()].join(","));
    let head = format!(
        "INSERT INTO {}({}) VALUES ",
        quote_table(database, table),
        columns
            .iter()
            .map(|c| quote_ident(c))
            .collect::<Vec<_>>()
            .join(",")
    );
    let mut shares: Vec<Vec<Vec<ColumnValue>>> = vec![Vec::new(); connections];
    for (i, row) in rows.into_iter().enumerate() {
        shares[i % connections].push(row);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for share in shares {
        let (opts, head, one_row) = (opts.clone(), head.clone(), one_row.clone());
        tasks.spawn(async move {
            let mut conn = Conn::new(opts).await?;
            for statement_rows in share.chunks(rows_per_statement) {
                let sql = format!(
                    "{head}{}",
                    vec![one_row.as_str(); statement_rows.len()].join(",")
                );
                let params: Vec<_> = statement_rows.iter().flatten().map(to_param).collect();
                conn.exec_drop(sql, Params::Positional(params)).await?;
            }
            conn.disconnect().await
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => result?,
            Err(join) => return Err(mysql_async::Error::Other(Box::new(join))),
        }
    }
    Ok(())
}
