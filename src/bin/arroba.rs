//! The `arroba` binary: installs logging (`RUST_LOG`, default `info`; JSON lines when
//! `ARROBA_LOG_FORMAT=json`, as the container sets), then everything happens in [`arroba::cli`].

/// mimalloc rather than glibc's allocator: a commit allocates and frees many small buffers from
/// many threads, and under load glibc's `malloc`/`free` were a fifth of the server's CPU time
/// (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("ARROBA_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
    arroba::cli::main()
}
