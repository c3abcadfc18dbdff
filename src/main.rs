/// Every process `corepax` starts (node, cluster, load generator) allocates through
/// mimalloc: a request's buffers are allocated on one core and mostly freed there, the
/// pattern its per-thread free lists serve without locks. glibc malloc was 10–12 % of a
/// replica's profile under the main job; with mimalloc the main job's servers spend
/// 11–15 % less CPU per operation (results/mimalloc-20261204/).
///
/// Two of its defaults are changed, both for memory: transparent huge pages off (the
/// `no_thp` feature; with them an idle node held 22 MiB instead of 11) and freed pages
/// returned to the kernel after 1 ms instead of 1 s ([`configure_allocator`]; with the
/// default a node holding 1M keys stayed above 2× their raw bytes, the memory target).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers; the
/// crate names only older options). The test below checks that it holds the documented
/// default before it is changed.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const PURGE_DELAY_MS: std::ffi::c_long = 1;

/// Sets the purge delay unless `MIMALLOC_PURGE_DELAY` chose one (mimalloc read it at start).
fn configure_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one of mimalloc's option values; any delay is valid at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

fn main() -> std::process::ExitCode {
    configure_allocator();
    corepax::cli::main()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_index_names_mimallocs_purge_delay() {
        // SAFETY: reads an option's value.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let by_default = std::env::var_os("MIMALLOC_PURGE_DELAY").is_none();
        if by_default {
            // v3's default purge delay; the options beside it default to 0 or 1.
            assert_eq!(
                get(),
                1000,
                "index {MI_OPTION_PURGE_DELAY} is not the purge delay"
            );
        }
        configure_allocator();
        if by_default {
            assert_eq!(get(), PURGE_DELAY_MS);
        }
    }
}
