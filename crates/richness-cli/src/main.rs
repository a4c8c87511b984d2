//! The `richness` command: argument parsing and printing only; all logic is in the
//! `richness` library, so every command is also a library call.

mod args;
mod cmd;

use clap::Parser;

/// Where the process ends: 0 success, 1 a failed verdict, 2 bad input or a failure,
/// 3 a diverged training run.
pub enum Exit {
    Ok,
    Fail,
    Diverged,
}

fn main() {
    default_sigpipe();
    keep_large_allocations();
    let cli = match args::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            match e.kind() {
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
                _ => {
                    // One line, naming the problem (clap's first line).
                    let text = e.render().to_string();
                    let first = text
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("invalid arguments");
                    eprintln!("{}", richness::error::for_terminal(first));
                    std::process::exit(2);
                }
            }
        }
    };
    richness::budget::set_max_memory(cli.max_memory);
    let threads = cli.threads_or_default();
    // One global pool; matrix products and parallel loops run inside it. If it cannot
    // start (a thread limit), rayon would panic at the first parallel loop instead.
    if let Err(e) = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
    {
        eprintln!("error: --threads {threads}: cannot start the thread pool: {e}");
        std::process::exit(2);
    }
    match cmd::dispatch(cli) {
        Ok(Exit::Ok) => {}
        Ok(Exit::Fail) => std::process::exit(1),
        Ok(Exit::Diverged) => std::process::exit(3),
        Err(e) => {
            eprintln!(
                "error: {}",
                richness::error::for_terminal(&format!("{e:#}"))
            );
            std::process::exit(2);
        }
    }
}

/// Output into a closed pipe (`richness train c.toml --dry-run | head -1`) ends the
/// process quietly, as it does for any Unix tool. Rust starts programs with SIGPIPE
/// ignored, which turns the write into an EPIPE error that `println!` panics on;
/// restoring the default disposition makes the kernel end the process instead,
/// wherever the write happens (stdout, stderr, clap's help).
#[cfg(unix)]
fn default_sigpipe() {
    // SAFETY: sets one signal's disposition, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn default_sigpipe() {}

/// glibc serves allocations above 128 KiB–32 MiB with fresh `mmap`s and returns them
/// at `free`, so every probe's weights and buffers (tens of MB at width 2048) were
/// page-faulted in anew: 2 of 10 CPU-seconds of a T1 scan went to the kernel zeroing
/// pages. Serving them from the heap and keeping freed memory lets the next probe
/// reuse it. One arena for all threads: a worker thread's own arena grows in 64 MiB
/// mmap'd heaps, so a larger block (a 4096² weight matrix) bypassed it with a fresh
/// mmap again (sys time of a 30-probe T2 scan 1.2–1.3 s → 0.5 s, 2 threads); the few large
/// allocations a probe makes do not contend for the one lock.
fn keep_large_allocations() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
