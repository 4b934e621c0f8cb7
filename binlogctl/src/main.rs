//! binlogctl: inspect and command a TiDB-Binlog cluster through PD, as the original tool does.

mod cli;
mod meta;
mod nodes;
mod output;

use std::process::ExitCode;

use anyhow::Context;
use binlog_cluster::{PdClient, Registry, secret, urls};

use cli::{Args, Command};

fn main() -> ExitCode {
    let args = Args::from_env();
    if args.version {
        print!("{}", binlog_cluster::flags::version_text("binlogctl"));
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("binlogctl: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("binlogctl: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<Vec<String>> {
    let command: Command = args.cmd.parse()?;
    let tls = args.tls();
    let pd_urls = || urls::parse_pd_urls(&args.pd_urls, tls.enabled());
    let registry = || async { anyhow::Ok(Registry::connect(&pd_urls()?, &tls).await?) };
    Ok(match command {
        Command::Encrypt => vec![encrypt(&args.text)?],
        Command::GenerateMeta => {
            vec![generate_meta(args, &PdClient::connect(&pd_urls()?, &tls).await?).await?]
        }
        Command::List(kind) => {
            nodes::list(&registry().await?, kind, args.show_offline_nodes).await?
        }
        Command::UpdateState(kind) => {
            vec![nodes::update_state(&registry().await?, kind, &args.node_id, &args.state).await?]
        }
        Command::Apply(kind, action) => {
            vec![nodes::apply(&registry().await?, &tls, kind, &args.node_id, action).await?]
        }
    })
}

async fn generate_meta(args: &Args, pd: &PdClient) -> anyhow::Result<String> {
    let commit_ts = pd
        .get_ts()
        .await
        .context("cannot get a timestamp from PD")?;
    let content = meta::savepoint_content(commit_ts, meta::parse_zone(&args.time_zone));
    let path = meta::write_savepoint(&args.data_dir, &content)?;
    Ok(output::info_line(
        "meta.rs",
        "save meta",
        &[
            ("path", &path.display().to_string()),
            ("commitTS", &commit_ts.to_string()),
        ],
    ))
}

fn encrypt(text: &str) -> anyhow::Result<String> {
    if text.is_empty() {
        anyhow::bail!("encrypt needs -text: the text to encrypt");
    }
    let sealed = secret::seal(text.as_bytes())?;
    Ok(output::info_line(
        "encrypt.rs",
        "encrypt text",
        &[("encrypted", &sealed)],
    ))
}
