//! The `arroba` binary: everything happens in [`arroba::cli`].

fn main() -> std::process::ExitCode {
    arroba::cli::main()
}
