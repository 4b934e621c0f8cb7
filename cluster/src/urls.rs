//! Parsing `pd-urls`: a comma-separated list of `scheme://host:port` (bare `host:port` is taken as
//! `http://`, or `https://` when TLS is on), validated up front so a typo is reported by name.

/// A `pd-urls` entry that is not a usable URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid pd-urls entry {url:?}: {reason}; expected scheme://host:port with scheme http or https"
)]
pub struct InvalidUrl {
    /// The offending entry.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Splits and normalises a `pd-urls` value into `scheme://host:port` entries.
pub fn parse_pd_urls(value: &str, tls: bool) -> Result<Vec<String>, InvalidUrl> {
    let urls: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| normalise(entry, tls))
        .collect::<Result<_, _>>()?;
    if urls.is_empty() {
        return Err(InvalidUrl {
            url: value.to_string(),
            reason: "no URL given",
        });
    }
    Ok(urls)
}

fn normalise(entry: &str, tls: bool) -> Result<String, InvalidUrl> {
    let invalid = |reason| InvalidUrl {
        url: entry.to_string(),
        reason,
    };
    let (scheme, rest) = match entry.split_once("://") {
        Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        None if tls => ("https".to_string(), entry),
        None => ("http".to_string(), entry),
    };
    if scheme != "http" && scheme != "https" {
        return Err(invalid("unsupported scheme"));
    }
    let host_port = rest.strip_suffix('/').unwrap_or(rest);
    if host_port.contains('/') {
        return Err(invalid("a path is not allowed"));
    }
    let (host, port) = host_port
        .rsplit_once(':')
        .ok_or_else(|| invalid("missing port"))?;
    if host.is_empty() {
        return Err(invalid("missing host"));
    }
    port.parse::<u16>().map_err(|_| invalid("invalid port"))?;
    Ok(format!("{scheme}://{host_port}"))
}

/// The `host:port` part of a URL produced by [`parse_pd_urls`].
pub fn host_port(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_split_and_normalised() {
        assert_eq!(
            parse_pd_urls("http://127.0.0.1:2379, 10.0.0.2:2379/", false).unwrap(),
            vec!["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            parse_pd_urls("pd:2379", true).unwrap(),
            vec!["https://pd:2379"]
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let err = parse_pd_urls("http://a:2379,ftp://b:1", false).unwrap_err();
        assert_eq!(err.url, "ftp://b:1");
        assert_eq!(err.reason, "unsupported scheme");
        assert_eq!(
            parse_pd_urls("http://a", false).unwrap_err().reason,
            "missing port"
        );
        assert_eq!(
            parse_pd_urls("http://a:x", false).unwrap_err().reason,
            "invalid port"
        );
        assert_eq!(
            parse_pd_urls("http://a:1/pd", false).unwrap_err().reason,
            "a path is not allowed"
        );
        assert_eq!(
            parse_pd_urls(" , ", false).unwrap_err().reason,
            "no URL given"
        );
    }

    #[test]
    fn host_port_strips_the_scheme() {
        assert_eq!(host_port("https://pd:2379"), "pd:2379");
        assert_eq!(host_port("pd:2379"), "pd:2379");
    }
}
