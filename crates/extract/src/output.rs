//! The output folder of a run: one lock holder, records (`<id>.safetensors`, written by
//! `butd_model::record`), leftover temporary files, and `failures.tsv`.
//!
//! `failures.tsv` is `image\tid\treason`, one line per image that has no features, appended
//! and flushed as each failure happens, so a killed run keeps every line it wrote. When a run
//! starts, the lines of the images it is about to (re)try are dropped (they come back if the
//! image fails again); lines of other images stay.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

pub const FAILURES_FILE: &str = "failures.tsv";
pub const FAILURES_HEADER: &str = "image\tid\treason";
const LOCK_FILE: &str = ".butd-extract.lock";

/// One TSV field: tabs and line breaks would break the row.
pub fn tsv_field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

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
        self.dir.join(format!("{id}.safetensors"))
    }

    /// Removes the temporary record files a killed run left (none of them is a record: a
    /// record only gets its name once it is whole). Returns how many.
    pub fn remove_temp_files(&self) -> anyhow::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let entry = entry.with_context(|| format!("cannot list {}", self.dir.display()))?;
            if butd_model::record::is_temp_record_name(&entry.file_name().to_string_lossy()) {
                std::fs::remove_file(entry.path())
                    .with_context(|| format!("cannot remove {}", entry.path().display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// One line of `failures.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureLine {
    pub id: String,
    /// The whole line, as written.
    pub line: String,
}

/// The lines of an existing `failures.tsv` (none when it does not exist).
pub fn read_failures(path: &Path) -> anyhow::Result<Vec<FailureLine>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut lines = text.lines();
    match lines.next() {
        None => return Ok(Vec::new()),
        Some(FAILURES_HEADER) => {}
        Some(other) => bail!(
            "{}: line 1 is {other:?}, expected the header {FAILURES_HEADER:?}",
            path.display()
        ),
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            let fields: Vec<&str> = l.split('\t').collect();
            if fields.len() != 3 {
                bail!(
                    "{}: line {} has {} tab-separated fields, expected 3 (image, id, reason)",
                    path.display(),
                    i + 2,
                    fields.len()
                );
            }
            Ok(FailureLine {
                id: fields[1].to_string(),
                line: l.to_string(),
            })
        })
        .collect()
}

/// `failures.tsv`, open for appending.
pub struct Failures {
    path: PathBuf,
    file: File,
}

impl Failures {
    /// Keeps the existing lines of images not in `retry`, drops the others (rewritten
    /// atomically), and opens the file for appending.
    pub fn open(
        out: &OutDir,
        existing: &[FailureLine],
        retry: &HashSet<&str>,
    ) -> anyhow::Result<Failures> {
        let path = out.path().join(FAILURES_FILE);
        let mut text = format!("{FAILURES_HEADER}\n");
        for f in existing.iter().filter(|f| !retry.contains(f.id.as_str())) {
            text.push_str(&f.line);
            text.push('\n');
        }
        let tmp = out.path().join(format!(".{FAILURES_FILE}.tmp"));
        std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Failures { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, in one write, and flushes it to the file.
    pub fn add(&mut self, image: &Path, id: &str, reason: &str) -> anyhow::Result<()> {
        let line = format!(
            "{}\t{}\t{}\n",
            tsv_field(&image.display().to_string()),
            tsv_field(id),
            tsv_field(reason)
        );
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("cannot append to {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_kept_dropped_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let out = OutDir::open(dir.path()).unwrap();
        let mut f = Failures::open(&out, &[], &HashSet::new()).unwrap();
        f.add(Path::new("a/x.jpg"), "x", "bad\tthing\nhere")
            .unwrap();
        f.add(Path::new("a/y.jpg"), "y", "no proposals").unwrap();
        drop(f);
        let lines = read_failures(&out.path().join(FAILURES_FILE)).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, "a/x.jpg\tx\tbad thing here");
        let retry: HashSet<&str> = ["x"].into_iter().collect();
        drop(Failures::open(&out, &lines, &retry).unwrap());
        let text = std::fs::read_to_string(out.path().join(FAILURES_FILE)).unwrap();
        assert_eq!(text, "image\tid\treason\na/y.jpg\ty\tno proposals\n");
    }

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
        let bad = dir.path().join("bad.tsv");
        std::fs::write(&bad, "image\treason\nx\ty\n").unwrap();
        assert!(read_failures(&bad)
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }
}
