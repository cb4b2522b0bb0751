//! `model-pins`: the tool as a command of its own, with the `models` subcommands at the
//! top (`model-pins fetch`), found on PATH after `pip install`. It reads the nearest
//! `models.toml` from the current folder up, as `cargo xtask models` does.

fn main() -> std::process::ExitCode {
    xtask::run_pins(std::env::args_os())
}
