//! What the two butd executables share as processes: `butd` (no libtorch) and `butd-extract`
//! (the only one that links it) run each other, so each must find the other, `butd` must read
//! the libtorch marker `butd-extract` carries, and both print an error the same way.
//!
//! ```
//! use std::path::PathBuf;
//!
//! // Beside the running executable when installed together, else left to PATH.
//! let exe = butd_exe::sibling_executable("no-such-butd-tool");
//! assert_eq!(exe, PathBuf::from("no-such-butd-tool"));
//!
//! let dir = tempfile::tempdir()?;
//! let fake = dir.path().join("butd-extract");
//! std::fs::write(&fake, concat!("\x7fELF…", butd_exe::libtorch_marker!(), "/opt/torch/lib\n"))?;
//! assert_eq!(butd_exe::linked_libtorch(&fake), Some(PathBuf::from("/opt/torch/lib")));
//!
//! let err = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::NotFound))
//!     .context("x.jpg");
//! assert_eq!(butd_exe::error_text(&err), "x.jpg: entity not found");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! - A crate of its own, with no dependency but anyhow: `butd` must never link libtorch, and
//!   `butd-extract` must not depend on the CLI crate (nor the CLI on extract), so what both
//!   need sits below both.
//! - The marker's text is a macro, not a `const`: `butd-extract` writes it with `concat!` into a
//!   static (a compile-time string), which a `const` cannot feed.
use std::path::{Path, PathBuf};

/// `name` beside the running executable (the butd executables are built and installed
/// together), else `name` alone, for the OS to look up on PATH.
pub fn sibling_executable(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The text before the libtorch directory that `butd-extract` carries in its file (a static
/// written by its build, crates/extract/build.rs), ended by a newline.
#[macro_export]
macro_rules! libtorch_marker {
    () => {
        "BUTD-LIBTORCH-LIB="
    };
}

/// The libtorch directory the executable `exe` was linked against, read from its marker
/// ([`libtorch_marker!`]). None for a file without one (or an empty one).
pub fn linked_libtorch(exe: &Path) -> Option<PathBuf> {
    let marker = libtorch_marker!().as_bytes();
    let bytes = std::fs::read(exe).ok()?;
    let start = bytes.windows(marker.len()).position(|w| w == marker)? + marker.len();
    let len = bytes[start..].iter().position(|&b| b == b'\n')?;
    let dir = std::str::from_utf8(&bytes[start..start + len]).ok()?;
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// How both executables print an error: `error` and its causes joined by ": ", a cause whose
/// text the line already holds left out. Many error types show their cause in their own
/// message and also return it as `source()`, so a plain `{:#}` printed "No such file or
/// directory (os error 2): No such file or directory (os error 2)".
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_is_printed_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        #[derive(Debug)]
        struct Wrapped(std::io::Error);
        impl std::fmt::Display for Wrapped {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "x.jpg: cannot read the file: {}", self.0)
            }
        }
        impl std::error::Error for Wrapped {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = anyhow::Error::new(Wrapped(io)).context("image 3");
        assert_eq!(
            error_text(&e),
            "image 3: x.jpg: cannot read the file: entity not found"
        );
    }

    #[test]
    fn a_file_without_the_marker_names_no_libtorch() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("butd-extract");
        std::fs::write(&exe, b"\x7fELF no marker").unwrap();
        assert_eq!(linked_libtorch(&exe), None);
        std::fs::write(&exe, b"\x7fELF BUTD-LIBTORCH-LIB=\n").unwrap();
        assert_eq!(linked_libtorch(&exe), None);
    }

    #[test]
    fn an_executable_found_beside_this_one_is_named_by_its_path() {
        let this = std::env::current_exe().unwrap();
        let name = this.file_name().unwrap().to_str().unwrap();
        assert_eq!(sibling_executable(name), this);
    }
}
