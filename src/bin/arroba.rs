//! The `arroba` binary: installs logging (`RUST_LOG`, default `info`), then everything happens
//! in [`arroba::cli`].

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    arroba::cli::main()
}
