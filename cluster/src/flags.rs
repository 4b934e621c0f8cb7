//! Command lines in the original's Go style: `-cmd pumps`, `-pd-urls=...`, `-L info`, alongside the
//! usual `--cmd pumps`. Every binary parses with clap after [`go_style_args`] has rewritten
//! single-dash long flags into double-dash ones.

use std::ffi::OsString;

use clap::{ArgAction, Command};

/// Rewrites `-name` / `-name=value` into `--name` / `--name=value` for every long flag `command`
/// knows, leaving values, short flags (`-L`, `-V`), `--` and everything after it untouched.
pub fn go_style_args<I>(command: &Command, args: I) -> Vec<OsString>
where
    I: IntoIterator<Item = OsString>,
{
    let mut out = Vec::new();
    let mut value_expected = false;
    let mut rest_is_positional = false;
    for arg in args {
        if rest_is_positional || value_expected {
            value_expected = false;
            out.push(arg);
            continue;
        }
        let Some(text) = arg.to_str() else {
            out.push(arg);
            continue;
        };
        if text == "--" {
            rest_is_positional = true;
            out.push(arg);
            continue;
        }
        let (dashes, body) = if let Some(body) = text.strip_prefix("--") {
            ("--", body)
        } else if let Some(body) = text.strip_prefix('-') {
            ("-", body)
        } else {
            out.push(arg);
            continue;
        };
        let (name, inline_value) = match body.split_once('=') {
            Some((name, _)) => (name, true),
            None => (body, false),
        };
        let known = command.get_arguments().find(|a| {
            a.get_long() == Some(name)
                || (dashes == "-" && name.len() == 1 && a.get_short() == name.chars().next())
        });
        match known {
            Some(flag) => {
                let takes_value = flag.get_action().takes_values()
                    && flag.get_num_args().is_none_or(|n| n.min_values() > 0);
                value_expected = takes_value && !inline_value;
                if dashes == "-" && flag.get_long() == Some(name) {
                    out.push(OsString::from(format!("-{text}")));
                } else {
                    out.push(arg);
                }
            }
            None => out.push(arg),
        }
    }
    out
}

/// Marks a boolean flag Go-style: `-flag` and `-flag=true|false` both work.
pub fn go_bool(arg: clap::Arg) -> clap::Arg {
    arg.action(ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .default_value("false")
        .value_parser(clap::value_parser!(bool))
}

/// The `-V` text every binary prints.
pub fn version_text(component: &str) -> String {
    format!(
        "Release Version: v{}\nComponent: {component}\nGit Commit Hash: {}\nRust Version: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("BINLOG_GIT_HASH").unwrap_or("None"),
        option_env!("BINLOG_RUSTC_VERSION").unwrap_or("unknown"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Arg;

    fn command() -> Command {
        Command::new("t")
            .arg(Arg::new("cmd").long("cmd"))
            .arg(Arg::new("pd-urls").long("pd-urls"))
            .arg(Arg::new("initial-commit-ts").long("initial-commit-ts"))
            .arg(go_bool(
                Arg::new("show-offline-nodes").long("show-offline-nodes"),
            ))
            .arg(Arg::new("log-level").short('L'))
            .arg(Arg::new("version").short('V').action(ArgAction::SetTrue))
    }

    fn rewrite(args: &[&str]) -> Vec<String> {
        go_style_args(&command(), args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_get_a_second_dash() {
        assert_eq!(
            rewrite(&["-cmd", "pumps", "-pd-urls=http://a:1", "--cmd=x"]),
            ["--cmd", "pumps", "--pd-urls=http://a:1", "--cmd=x"]
        );
    }

    #[test]
    fn values_that_look_like_flags_stay_values() {
        assert_eq!(
            rewrite(&["-initial-commit-ts", "-1", "-cmd", "-cmd"]),
            ["--initial-commit-ts", "-1", "--cmd", "-cmd"]
        );
    }

    #[test]
    fn short_flags_and_unknown_words_are_untouched() {
        assert_eq!(
            rewrite(&["-L", "debug", "-V", "-bogus"]),
            ["-L", "debug", "-V", "-bogus"]
        );
    }

    #[test]
    fn go_bools_parse_both_forms() {
        let parse = |args: &[&str]| {
            command()
                .try_get_matches_from(std::iter::once("t".to_string()).chain(rewrite(args)))
                .unwrap()
                .get_one::<bool>("show-offline-nodes")
                .copied()
        };
        assert_eq!(parse(&["-show-offline-nodes"]), Some(true));
        assert_eq!(parse(&["-show-offline-nodes=false"]), Some(false));
        assert_eq!(parse(&[]), Some(false));
    }
}
