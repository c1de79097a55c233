//! `butd extract` runs the sibling executable `butd-extract` (crates/extract), the only butd
//! binary that links libtorch: every other subcommand starts in milliseconds without it.
use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    /// Arguments of `butd-extract` (see `butd extract --help`)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// Whether the loader will find libtorch for `exe`: in its RUNPATH or on `ld_library_path`.
/// Checked before the exec, because afterwards the loader's bare "cannot open shared object
/// file" (exit 127) is all a user would see.
fn check_libtorch(exe: &Path, ld_library_path: Option<OsString>) -> anyhow::Result<()> {
    let Some(linked) = butd_exe::linked_libtorch(exe) else {
        return Ok(());
    };
    let lib = "libtorch_cpu.so";
    let on_path = ld_library_path
        .map(|p| std::env::split_paths(&p).any(|d| d.join(lib).is_file()))
        .unwrap_or(false);
    if linked.join(lib).is_file() || on_path {
        return Ok(());
    }
    bail!(
        "{} was built against the libtorch in {}, which is gone ({lib} not found there nor on \
         LD_LIBRARY_PATH). Run scripts/setup.sh (it installs libtorch and rebuilds), or point \
         LD_LIBRARY_PATH at a libtorch 2.11 lib folder.",
        exe.display(),
        linked.display()
    )
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let exe = butd_exe::sibling_executable("butd-extract");
    check_libtorch(&exe, std::env::var_os("LD_LIBRARY_PATH"))?;
    // exec replaces this process, so exit status, signals and progress output are the child's.
    let err = std::process::Command::new(&exe).args(&args.args).exec();
    Err(err).with_context(|| {
        format!(
            "cannot run {} (it is built with `cargo build --release -p butd-extract`)",
            exe.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_libtorch_that_has_gone_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("butd-extract");
        let marker = butd_exe::libtorch_marker!();
        std::fs::write(&exe, format!("\x7fELF...{marker}/nowhere/torch/lib\n...")).unwrap();
        let err = check_libtorch(&exe, None).unwrap_err().to_string();
        assert!(
            err.contains("/nowhere/torch/lib") && err.contains("scripts/setup.sh"),
            "{err}"
        );
    }

    #[test]
    fn an_executable_without_the_marker_is_left_to_the_loader() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("butd-extract");
        std::fs::write(&exe, b"\x7fELF no marker").unwrap();
        assert!(check_libtorch(&exe, None).is_ok());
    }
}
