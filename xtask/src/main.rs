//! `cargo xtask`: the entry point stays thin; the engine lives in the library so tests
//! and other workspaces can call it directly.

fn main() -> std::process::ExitCode {
    xtask::main()
}
