//! Finding the project's binaries from tests and tools: they sit in the same target directory as
//! the running executable (`target/<profile>/`, tests run from `target/<profile>/deps/`).

use std::path::PathBuf;

/// The path of the workspace binary `name`, built by `cargo build` / `cargo test --workspace`.
///
/// Panics with the command to run when the binary has not been built: a test that needs it cannot
/// do anything useful without it.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable has a path");
    let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it first with `cargo build --workspace --bins` (same profile as this run)",
        path.display()
    );
    path
}
