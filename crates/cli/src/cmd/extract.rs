//! `butd extract` runs the sibling executable `butd-extract` (crates/extract), the only butd
//! binary that links libtorch: every other subcommand starts in milliseconds without it.
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Arguments of `butd-extract` (see `butd extract --help`)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// `butd-extract` beside the running `butd` (both are built and installed together), else on PATH.
fn extract_executable() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("butd-extract")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("butd-extract"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let exe = extract_executable();
    // exec replaces this process, so exit status, signals and progress output are the child's.
    let err = std::process::Command::new(&exe).args(&args.args).exec();
    Err(err).with_context(|| {
        format!(
            "cannot run {} (it is built with `cargo build --release -p butd-extract`)",
            exe.display()
        )
    })
}
