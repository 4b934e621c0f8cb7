//! binlogctl's output lines, in the original's log format so scripts that grep them keep working:
//! `[2026/11/21 05:00:00.000 +00:00] [INFO] [nodes.rs] ["query node"] [type=pump] [node="{…}"]`.

use chrono::Utc;

/// Formats one INFO line with `message` and `key=value` fields.
pub fn info_line(source: &str, message: &str, fields: &[(&str, &str)]) -> String {
    let mut line = format!(
        "[{}] [INFO] [{source}] [{}]",
        Utc::now().format("%Y/%m/%d %H:%M:%S%.3f %:z"),
        quote(message)
    );
    for (key, value) in fields {
        line.push_str(&format!(" [{key}={}]", quote(value)));
    }
    line
}

/// Quotes a value the way the original's logger does: bare when it is a plain word, otherwise in
/// double quotes with `"` and `\` escaped.
fn quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:".contains(c));
    if plain {
        value.to_string()
    } else {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let line = info_line(
            "nodes.rs",
            "query node",
            &[("type", "pump"), ("node", "{NodeID: a}")],
        );
        assert!(
            line.ends_with(r#"[INFO] [nodes.rs] ["query node"] [type=pump] [node="{NodeID: a}"]"#),
            "{line}"
        );
        assert_eq!(quote(r#"a"b"#), r#""a\"b""#);
    }
}
