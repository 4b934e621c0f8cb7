//! Facts about DDL text the loader needs without a SQL parser (reference drainer.md §4.5): which
//! statements must not run after `USE db`, and which server errors mean "already done".

/// Server errors a re-run or already-applied DDL produces; they count as success: database
/// exists / unknown database / drop of a missing database, table exists / unknown table / drop
/// of a missing table, duplicate column, unknown column, duplicate key name, key does not exist,
/// cannot drop field or key.
pub const IGNORABLE_DDL_CODES: &[u16] = &[
    1007, 1049, 1008, 1050, 1146, 1051, 1060, 1054, 1061, 1176, 1091,
];

/// The leading keywords of `sql`, upper-cased, skipping whitespace and comments (`/* */`, `-- `,
/// `#`). Executable comments (`/*! … */`, `/*T! … */`) are read as their content.
fn leading_words(sql: &str, count: usize) -> Vec<String> {
    let mut words = Vec::with_capacity(count);
    let mut rest = sql;
    while words.len() < count {
        rest = rest.trim_start();
        if let Some(comment) = rest.strip_prefix("/*") {
            if let Some(body) = comment
                .strip_prefix('!')
                .or_else(|| comment.strip_prefix("T!"))
            {
                // Executable comment: skip an optional version number and read on inside.
                rest = body.trim_start_matches(|c: char| c.is_ascii_digit());
                continue;
            }
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
            continue;
        }
        if rest.starts_with("-- ") || rest.starts_with('#') {
            rest = rest.split_once('\n').map_or("", |(_, after)| after);
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        words.push(rest[..end].to_ascii_uppercase());
        rest = &rest[end..];
    }
    words
}

/// `CREATE DATABASE`/`CREATE SCHEMA`: runs without `USE db`, since the database does not exist
/// yet.
pub fn is_create_database(sql: &str) -> bool {
    let words = leading_words(sql, 2);
    words.len() == 2 && words[0] == "CREATE" && (words[1] == "DATABASE" || words[1] == "SCHEMA")
}

/// `ALTER TABLE … SET TIFLASH REPLICA …`: TiDB-only, any error is ignored.
pub fn is_set_tiflash_replica(sql: &str) -> bool {
    let words = leading_words(sql, 2);
    let upper = sql.to_ascii_uppercase();
    words == ["ALTER", "TABLE"]
        && upper
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w == ["SET", "TIFLASH", "REPLICA"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_create_database_through_comments_and_case() {
        assert!(is_create_database("create database x"));
        assert!(is_create_database(
            "  /* hi */ CREATE\n\tSCHEMA IF NOT EXISTS `x`"
        ));
        assert!(is_create_database("-- note\nCreate Database x"));
        assert!(is_create_database("/*!40000 CREATE DATABASE x */"));
        assert!(!is_create_database("CREATE TABLE database(a int)"));
        assert!(!is_create_database("DROP DATABASE x"));
        assert!(!is_create_database(""));
    }

    #[test]
    fn recognizes_set_tiflash_replica() {
        assert!(is_set_tiflash_replica(
            "ALTER TABLE t SET  TIFLASH replica 1"
        ));
        assert!(!is_set_tiflash_replica("ALTER TABLE t ADD COLUMN c int"));
    }
}
