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

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the Rust bindings lack it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// How long freed memory stays with the process before mimalloc returns it to the OS. With its
/// default of 1 s, memory freed while rows were applied went back to the OS and was faulted in
/// again, often as a 2 MiB transparent huge page zeroed on the spot: ~450 page faults a second
/// and 8.7% of the drainer's CPU in `clear_page` during drainer-apply (12 a second with 10 s).
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

fn main() -> ExitCode {
    // SAFETY: sets one integer option of the allocator; mimalloc reads options atomically, so
    // this is sound at any time, and nothing else is running yet.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
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
    if let Err(err) = binlog_cluster::logging::init(&config.log_level, config.log_file.as_deref()) {
        eprintln!("drainer: {err}");
        return ExitCode::FAILURE;
    }
    // One worker thread: the pullers, the merge and the translation hand each binlog from task to
    // task, and with two workers every hand-off woke the idle one (about 6,000 futex wake-ups a
    // second while applying a backlog) to steal a few microseconds of work. The loader runs on a
    // thread of its own, so the drainer still keeps two cores busy.
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
