//! The `butd` binary: [`butd_cli::run`] on the process arguments.
use std::process::ExitCode;

fn main() -> ExitCode {
    butd_cli::run(std::env::args_os())
}
