//! The `butd-extract` binary: [`butd_extract::main_with`] on the process arguments.
use std::process::ExitCode;

/// The libtorch directory this executable was linked against (its RUNPATH, build.rs), as a
/// marker `butd extract` finds in the file: when libtorch has moved since, `butd` says so and
/// what to do instead of the loader's bare "cannot open shared object file".
#[used]
static LIBTORCH_MARKER: &[u8] = concat!(
    butd_exe::libtorch_marker!(),
    env!("BUTD_LIBTORCH_LIB"),
    "\n"
)
.as_bytes();

fn main() -> ExitCode {
    butd_extract::main_with(std::env::args_os())
}
