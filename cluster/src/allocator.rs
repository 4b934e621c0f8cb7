//! How the pump and the drainer get their memory: tuning of mimalloc, the allocator both declare in
//! their `main.rs` (both allocate binlogs and gRPC buffers on one thread and free them on another,
//! all the time), and the process's huge-page setting that mimalloc's mappings are subject to.

/// `mi_option_purge_delay` in mimalloc.h's `mi_option_e` (the Rust bindings lack it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the process before mimalloc returns it to the OS. With its
/// default of 1 s, memory freed while rows were applied went back to the OS and was faulted in
/// again, often as a 2 MiB transparent huge page zeroed on the spot: ~450 page faults a second
/// and 8.7% of the drainer's CPU in `clear_page` during drainer-apply (12 a second with 10 s);
/// a pump serving pulls spent 18% of its CPU there.
const PURGE_DELAY_MS: std::ffi::c_long = 10_000;

/// Sets the allocator up for a long-running server. Call it first thing in `main`.
pub fn tune() {
    delay_purging();
    disable_transparent_huge_pages();
}

/// Keeps freed memory with the process for [`PURGE_DELAY_MS`] before returning it to the OS.
fn delay_purging() {
    // SAFETY: sets one integer option of the allocator; mimalloc reads options atomically, so
    // this is sound at any time.
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// Turns transparent huge pages off for this process. mimalloc asks for them on every region it
/// maps, so each first touch commits and zeroes 2 MiB: the drainer's peak RSS in drainer-apply
/// was 120–132 MiB with them and 90–99 MiB without, at the same CPU per row (five alternating
/// runs each). TiDB's deployment guide asks for them off too. mimalloc's own `allow_thp` option
/// is read when its first region is mapped, before `main`, so setting it here would be too late;
/// the process-wide switch is not.
fn disable_transparent_huge_pages() {
    // A kernel without the switch refuses it, which leaves things as they were: nothing to report.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn tuning_turns_transparent_huge_pages_off() {
        super::tune();
        assert_eq!(
            rustix::thread::transparent_huge_pages_are_disabled().ok(),
            Some(true)
        );
    }
}
