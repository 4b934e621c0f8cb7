//! The `drainer` binary: flags and config as the original's, then [`binlog_drainer::server::run`].
//!
//! Exit codes: 0 after a pause, close or signal (the final checkpoint is saved); 1 for any
//! failure, with the cause on stderr and in the log.

use std::process::ExitCode;

use binlog_drainer::config::{Config, Flags, version_text};
use binlog_drainer::server;

// Rows, binlogs and gRPC buffers are allocated on one thread and freed on another all the
// time: glibc's malloc took about a fifth of the drainer's CPU while applying rows; with
// mimalloc the apply rate rose about 10% (README, drainer-apply).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    binlog_cluster::allocator::tune();
    let flags = Flags::from_env();
    if flags.version {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&flags) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("drainer: {err}");
            return ExitCode::FAILURE;
        }
    };
    // The Kafka client logs each reconnection attempt, several a second while a broker is
    // down; the Kafka sink reports those itself, once per round of attempts.
    let level = match config.log_level.as_str() {
        "debug" | "trace" => config.log_level.clone(),
        level => format!("{level},rskafka=error"),
    };
    if let Err(err) = binlog_cluster::logging::init(&level, config.log_file.as_deref()) {
        eprintln!("drainer: {err}");
        return ExitCode::FAILURE;
    }
    // One worker thread: the pullers, the merge and the translation hand each binlog from task to
    // task, and with two workers every hand-off woke the idle one to steal a few microseconds of
    // work (about 6,000 voluntary context switches a second while applying a backlog, ~170 with
    // one). The loader runs on a thread of its own, so the drainer still works on two threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("drainer: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(?config, "starting drainer");
    match runtime.block_on(server::run(config)) {
        Ok(reason) => {
            tracing::info!(?reason, "drainer exited");
            ExitCode::SUCCESS
        }
        Err(err) => {
            tracing::error!(error = %err, "drainer failed");
            eprintln!("drainer: {err}");
            ExitCode::FAILURE
        }
    }
}
