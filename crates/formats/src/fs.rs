//! Outputs appear whole or not at all: each is built under a temporary name in its target's
//! directory and renamed into place.
use std::io::Write;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::FormatError;

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A temporary file beside `path`.
pub(crate) fn temp_beside(path: &Path) -> Result<NamedTempFile, FormatError> {
    let dir = parent_dir(path);
    NamedTempFile::new_in(dir).map_err(FormatError::io(dir))
}

/// Gives a temporary file or directory the permissions of an ordinary output (tempfile makes
/// them private: 0600 / 0700).
pub(crate) fn make_public(path: &Path, is_dir: bool) -> Result<(), FormatError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if is_dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(FormatError::io(path))?;
    }
    #[cfg(not(unix))]
    let _ = (path, is_dir);
    Ok(())
}

/// Renames `tmp` to `path`.
pub(crate) fn persist(tmp: NamedTempFile, path: &Path) -> Result<(), FormatError> {
    make_public(tmp.path(), false)?;
    tmp.persist(path).map_err(|e| FormatError::Io {
        path: path.to_path_buf(),
        error: e.error,
    })?;
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let mut tmp = temp_beside(path)?;
    tmp.write_all(bytes).map_err(FormatError::io(path))?;
    persist(tmp, path)
}
