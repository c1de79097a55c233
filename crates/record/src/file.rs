//! Record files on disk: `<id>.safetensors`, written whole or not at all (a temporary file in
//! the same folder, renamed into place), and told apart from a damaged file without reading
//! their tensors.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::meta::{FORMAT, RECORD_FORMAT, RESULT, RESULT_DETECTIONS};

/// Record files end in this.
pub const RECORD_EXTENSION: &str = "safetensors";

/// Temporary record files are `.butd-record-<random>.tmp`: hidden, and never a `*.safetensors`.
const TEMP_PREFIX: &str = ".butd-record-";
const TEMP_SUFFIX: &str = ".tmp";

/// The file name of image `id`'s record.
pub fn record_file_name(id: &str) -> String {
    format!("{id}.{RECORD_EXTENSION}")
}

/// Whether `file_name` names a record: a visible `*.safetensors` file (temporary files are
/// hidden).
pub fn is_record_file_name(file_name: &str) -> bool {
    file_name.ends_with(&format!(".{RECORD_EXTENSION}")) && !file_name.starts_with('.')
}

/// Whether `file_name` is a temporary record file (left behind only when its writer was killed).
pub fn is_temp_record_name(file_name: &str) -> bool {
    file_name.starts_with(TEMP_PREFIX) && file_name.ends_with(TEMP_SUFFIX)
}

/// Writing a record file failed.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write the record: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `bytes` to `path` atomically: a temporary record file in the same folder, flushed to
/// disk, made world-readable, then renamed, so a reader (or a resumed run) never sees half a
/// record.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let io_err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(dir)
        .map_err(io_err)?;
    tmp.write_all(bytes).map_err(io_err)?;
    // The temporary file is private (0600); a record is an ordinary output file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err)?;
    }
    // On disk before the rename, so that after a power cut the name never points at a file
    // whose data was not written yet.
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// What a record file on disk is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    Absent,
    /// A whole `butd-record-v1` file; `result` as its metadata says, and all of its (string)
    /// metadata, for the provenance checks of resume and merge.
    Complete {
        result: String,
        meta: BTreeMap<String, String>,
    },
    /// Something else: why.
    Damaged(String),
}

/// Checks `path` without reading its tensors: the safetensors header parses, says
/// `format = butd-record-v1`, and the file is exactly as long as the header's offsets say.
pub fn record_state(path: &Path) -> RecordState {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return RecordState::Absent,
        Err(e) => return RecordState::Damaged(format!("cannot open: {e}")),
    };
    let damaged = |m: String| RecordState::Damaged(m);
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return damaged(format!("cannot stat: {e}")),
    };
    let mut n = [0u8; 8];
    if file.read_exact(&mut n).is_err() {
        return damaged(format!("{len} bytes, shorter than a safetensors header"));
    }
    let n = u64::from_le_bytes(n);
    if n > len - 8 {
        return damaged(format!("header of {n} bytes in a file of {len}"));
    }
    let mut header = vec![0u8; n as usize];
    if let Err(e) = file.read_exact(&mut header) {
        return damaged(format!("cannot read the header: {e}"));
    }
    let header: serde_json::Value = match serde_json::from_slice(&header) {
        Ok(v) => v,
        Err(e) => return damaged(format!("header is not JSON: {e}")),
    };
    let Some(entries) = header.as_object() else {
        return damaged("header is not a JSON object".into());
    };
    let meta = entries.get("__metadata__");
    let meta_str = |key: &str| meta.and_then(|m| m.get(key)).and_then(|v| v.as_str());
    if meta_str(FORMAT) != Some(RECORD_FORMAT) {
        return damaged(format!("metadata format is not {RECORD_FORMAT}"));
    }
    let data_end = entries
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    if 8 + n + data_end != len {
        return damaged(format!(
            "{len} bytes, but its header describes {}",
            8 + n + data_end
        ));
    }
    RecordState::Complete {
        result: meta_str(RESULT).unwrap_or(RESULT_DETECTIONS).to_string(),
        meta: meta
            .and_then(|m| m.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_and_record_names_are_told_apart() {
        assert!(is_temp_record_name(".butd-record-a1B2c3.tmp"));
        assert!(!is_temp_record_name("r.safetensors"));
        assert!(is_record_file_name(&record_file_name("COCO_1")));
        assert!(!is_record_file_name(".butd-record-a1B2c3.tmp"));
        assert!(!is_record_file_name(".hidden.safetensors"));
    }

    #[test]
    fn an_atomic_write_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.safetensors");
        write_atomically(&path, b"abc").unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["r.safetensors"]);
        assert!(matches!(record_state(&path), RecordState::Damaged(_)));
    }
}
