//! The output folder of a run: one lock holder, records (`<id>.safetensors`, written by
//! `butd_model::record`), leftover temporary files, and `failures.tsv`.
//!
//! `failures.tsv` (`butd_record::failures`) gets one line per image that has no features,
//! appended and synced to disk as each failure happens, so a killed run keeps every line it
//! wrote (a line torn by a power cut is dropped when the file is read again).
//! When a run starts, the lines of the images it is about to (re)try are dropped (they come
//! back if the image fails again); lines of other images stay.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

// `failures.tsv` is part of the record contract (`butd merge` reads it too).
pub use butd_record::failures::{read_failures, Failures, FAILURES_FILE};

const LOCK_FILE: &str = ".butd-extract.lock";

/// The output folder, locked for this process (an advisory lock on `.butd-extract.lock`,
/// released when the process ends, however it ends).
pub struct OutDir {
    dir: PathBuf,
    _lock: File,
}

impl OutDir {
    /// Creates the folder if needed and takes its lock: two runs writing into one folder would
    /// remove each other's temporary files and interleave their failure lists.
    pub fn open(dir: &Path) -> anyhow::Result<OutDir> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another butd-extract is writing into {} (it holds {}); give each process, \
                 e.g. each shard, its own output folder and combine them with `butd merge`",
                dir.display(),
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()))
            }
        }
        Ok(OutDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn record_path(&self, id: &str) -> PathBuf {
        self.dir.join(butd_record::file::record_file_name(id))
    }

    /// Removes the temporary record files a killed run left (none of them is a record: a
    /// record only gets its name once it is whole). Returns how many.
    pub fn remove_temp_files(&self) -> anyhow::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", self.dir.display()))?;
            if butd_record::is_temp_record_name(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("cannot remove {}", entry.path().display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_process_is_refused_and_temp_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::open(dir.path()).unwrap();
        let err = OutDir::open(dir.path()).err().unwrap().to_string();
        assert!(err.contains("another butd-extract"), "{err}");
        std::fs::write(dir.path().join(".butd-record-abc.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join("x.safetensors"), b"kept").unwrap();
        assert_eq!(out.remove_temp_files().unwrap(), 1);
        assert!(dir.path().join("x.safetensors").exists());
    }
}
