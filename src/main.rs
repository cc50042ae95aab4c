//! Binary entry point: parse the command line, run, exit with the command's code.

use clap::Parser;

// Polars allocates and frees many large column buffers. The system allocator hands them back to
// the kernel and gets freshly zeroed pages for the next one: `perf` put a quarter of a 1M-customer
// run in the kernel's page zeroing. mimalloc reuses them instead (see `keep_freed_memory`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A batch job's memory is only ever measured at its peak, so freed pages are kept for reuse
/// rather than returned to the kernel after mimalloc's default delay (1 s, 10 s for arenas),
/// which made every pipeline wait for freshly zeroed pages again (docs/performance.md).
/// `MIMALLOC_PURGE_DELAY` in the environment still wins.
fn keep_freed_memory() {
    // `mi_option_purge_delay` in mimalloc v3's include/mimalloc.h; libmimalloc-sys exports no
    // name for it. Only set when the option reads as its documented default, so a different
    // numbering in another mimalloc version changes nothing.
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    const DEFAULT_PURGE_DELAY_MS: std::ffi::c_long = 1000;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: reading and setting a mimalloc option has no preconditions.
        unsafe {
            if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == DEFAULT_PURGE_DELAY_MS {
                libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
            }
        }
    }
}

fn main() {
    keep_freed_memory();
    // Bad input must never show a panic backtrace: panics inside guarded reads are turned into
    // input errors, and any other panic into exit 1 with a one-line message.
    std::panic::set_hook(Box::new(|_| {}));
    let cli = match cxmetrics::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap: 0 for --help/--version, 2 for usage errors.
            std::process::exit(e.exit_code());
        }
    };
    let code = match std::panic::catch_unwind(|| cxmetrics::app::execute(cli)) {
        Ok(code) => code,
        Err(_) => {
            eprintln!("cxmetrics: internal error (panic); please report this with the job file");
            1
        }
    };
    std::process::exit(code);
}
