//! `cargo xtask`: the entry point stays thin; the engine lives in the library so tests
//! can call it directly.

fn main() -> std::process::ExitCode {
    xtask::cli::main()
}
