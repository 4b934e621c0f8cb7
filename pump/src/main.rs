//! The `pump` binary: flags and config as the original's, then [`binlog_pump::server::run`].
//!
//! Exit codes: 0 after a pause, close or signal; 2 when a new pump could not notify the drainers
//! (it is registered `offline`); 1 for any other failure.

use std::process::ExitCode;

use binlog_pump::config::{Config, Flags};
use binlog_pump::server::{self, RunError};

// The drainer's allocator (see its main.rs), for the same reason: binlogs and gRPC buffers are
// allocated on one thread and freed on another.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    binlog_cluster::allocator::tune();
    let flags = Flags::from_env();
    if flags.version {
        print!("{}", binlog_cluster::flags::version_text("pump"));
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(&flags) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("pump: {err}");
            return ExitCode::FAILURE;
        }
    };
    let log_file = Some(&config.log_file)
        .filter(|f| !f.is_empty())
        .map(std::path::Path::new);
    if let Err(err) = binlog_cluster::logging::init(&config.log_level, log_file) {
        eprintln!("pump: {err}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pump: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(?config, "starting pump");
    match runtime.block_on(server::run(config)) {
        Ok(reason) => {
            tracing::info!(?reason, "pump exited");
            ExitCode::SUCCESS
        }
        Err(err @ RunError::NotifyFailed(_)) => {
            tracing::error!(error = %err, "pump is offline: could not notify drainers");
            eprintln!("pump: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            tracing::error!(error = %err, "pump failed");
            eprintln!("pump: {err}");
            ExitCode::FAILURE
        }
    }
}
