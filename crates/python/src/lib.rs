//! `butd._butd`: the extension module inside the Python package `butd` (python/butd/). Thin
//! wrappers over the public APIs of the butd crates; the Python package adds the friendly
//! layer (PIL images, torch tensors, the `Features` / `Report` classes, type stubs).
//!
//! ```python
//! import butd                                   # imports torch first: one libtorch per process
//! ex = butd.Extractor("w.safetensors")          # weights as `butd convert` writes them
//! f = ex.extract("photo.jpg")                   # numpy arrays; f.torch() for tensors, no copy
//! print(f.boxes.shape, f.features.shape)
//! ```
//!
//! # Design
//! - **One libtorch.** The module links the libtorch of the installed `torch` wheel
//!   (`LIBTORCH_USE_PYTORCH=1` at build time, rpath `$ORIGIN/../torch/lib`, build.rs), and the
//!   package imports `torch` before it, so both share the libraries loaded by soname.
//! - **No panic crosses the boundary.** Every entry point runs through [`guard`]: Rust errors
//!   become `butd.ButdError` with the message the CLI prints (`{e:#}`), and a panic — a bug,
//!   never user input — becomes a `ButdError` too, the interpreter lives on.
//! - **The GIL is released** for all work ([`guard`] detaches), so other Python threads (a
//!   DataLoader's) run while an image is extracted.
//! - **No copies of the region tensors**: `features` (K × 2048) moves from the detector's `Vec`
//!   into the numpy array ([`numpy::IntoPyArray`]), and `torch.from_numpy` shares it.
//! - **The CLI in-process** ([`cli_main`]): the Python install's `butd` command is
//!   `butd_cli::run`, and its `extract` subcommand `butd_extract::main_with` (this module links
//!   libtorch already, so there is no separate `butd-extract` executable to find).
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

mod convert;
mod extract;
mod features;
mod verify;

create_exception!(
    _butd,
    ButdError,
    PyException,
    "An error reported by butd (the message is the one the `butd` command prints)."
);

/// Runs `work` without the GIL and turns its error, or a panic, into a `ButdError`.
pub(crate) fn guard<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: FnOnce() -> anyhow::Result<T> + Send,
    T: Send,
{
    py.detach(|| catch(work))
}

/// [`guard`] for work that needs the GIL (building Python objects).
pub(crate) fn catch<T>(work: impl FnOnce() -> anyhow::Result<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(ButdError::new_err(format!("{e:#}"))),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(ButdError::new_err(format!(
                "internal error (a bug in butd, please report it): {what}"
            )))
        }
    }
}

/// The `butd` console script: `argv` as `sys.argv` gives it; returns the exit status.
#[pyfunction]
fn cli_main(py: Python<'_>, argv: Vec<String>) -> PyResult<u8> {
    let code = guard(py, || {
        let code = match argv.get(1).map(String::as_str) {
            // `butd extract …` runs `butd-extract …` (crates/cli/src/cmd/extract.rs) in a process
            // of its own; here the same library runs in this one.
            Some("extract") => {
                let mut args = vec!["butd extract".to_string()];
                args.extend(argv.into_iter().skip(2));
                butd_extract::main_with(args)
            }
            _ => butd_cli::run(argv),
        };
        Ok(code)
    })?;
    Ok(exit_status(code))
}

/// `ExitCode` keeps its value private; these are the statuses the commands return.
fn exit_status(code: ExitCode) -> u8 {
    (0..=255u8)
        .find(|&n| ExitCode::from(n) == code)
        .unwrap_or(2)
}

#[pymodule]
fn _butd(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ButdError", m.py().get_type::<ButdError>())?;
    m.add_function(wrap_pyfunction!(cli_main, m)?)?;
    extract::register(m)?;
    convert::register(m)?;
    verify::register(m)?;
    features::register(m)?;
    Ok(())
}
