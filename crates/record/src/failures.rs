//! `failures.tsv`: `image\tid\treason`, one line per image of an output folder that has no
//! features. `butd extract` appends a line as each failure happens; `butd merge` joins the
//! files of several folders. Both read and rewrite it here.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name in an output folder.
pub const FAILURES_FILE: &str = "failures.tsv";
/// Its first line.
pub const FAILURES_HEADER: &str = "image\tid\treason";

#[derive(Debug, thiserror::Error)]
pub enum FailuresError {
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
}

fn io_error(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> FailuresError {
    let path = path.to_path_buf();
    move |source| FailuresError::Io { path, what, source }
}

/// One TSV field: tabs and line breaks would break the row.
pub fn tsv_field(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// One line of `failures.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureLine {
    pub id: String,
    /// The whole line, as written.
    pub line: String,
}

/// The lines of an existing `failures.tsv` after its header (none when it does not exist).
/// Refuses a file whose first line is not [`FAILURES_HEADER`] or a line without exactly three
/// fields, naming the line.
pub fn read_failures(path: &Path) -> Result<Vec<FailureLine>, FailuresError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error(path, "cannot read")(e)),
    };
    let bad = |message: String| FailuresError::Format {
        path: path.to_path_buf(),
        message,
    };
    // A last line without its line end was torn by a kill or a power cut during its write
    // (each line is one write, synced): it is dropped, and its image is retried.
    let text = match text.rfind('\n') {
        Some(end) if end + 1 < text.len() => &text[..end + 1],
        None if text != FAILURES_HEADER => "",
        _ => &text[..],
    };
    let mut lines = text.lines();
    match lines.next() {
        None => return Ok(Vec::new()),
        Some(FAILURES_HEADER) => {}
        Some(other) => {
            return Err(bad(format!(
                "line 1 is {other:?}, expected the header {FAILURES_HEADER:?}"
            )))
        }
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            let fields: Vec<&str> = l.split('\t').collect();
            if fields.len() != 3 {
                return Err(bad(format!(
                    "line {} has {} tab-separated fields, expected 3 (image, id, reason)",
                    i + 2,
                    fields.len()
                )));
            }
            Ok(FailureLine {
                id: fields[1].to_string(),
                line: l.to_string(),
            })
        })
        .collect()
}

/// Writes `dir/failures.tsv` with the header and `lines` (each once, in first-seen order),
/// atomically (a temporary file, then a rename). Returns the path and the number of lines.
pub fn write_failures<'a>(
    dir: &Path,
    lines: impl IntoIterator<Item = &'a str>,
) -> Result<(PathBuf, usize), FailuresError> {
    let path = dir.join(FAILURES_FILE);
    let mut seen = HashSet::new();
    let mut text = format!("{FAILURES_HEADER}\n");
    for line in lines {
        if seen.insert(line) {
            text.push_str(line);
            text.push('\n');
        }
    }
    let tmp = dir.join(format!(".{FAILURES_FILE}.tmp"));
    std::fs::write(&tmp, text).map_err(io_error(&tmp, "cannot write"))?;
    std::fs::rename(&tmp, &path).map_err(io_error(&path, "cannot rename the temporary file to"))?;
    Ok((path, seen.len()))
}

/// `failures.tsv`, open for appending.
pub struct Failures {
    path: PathBuf,
    file: File,
}

impl Failures {
    /// Keeps the `existing` lines of images not in `retry`, drops the others (rewritten
    /// atomically), and opens the file for appending.
    pub fn open(
        dir: &Path,
        existing: &[FailureLine],
        retry: &HashSet<&str>,
    ) -> Result<Failures, FailuresError> {
        let kept = existing
            .iter()
            .filter(|f| !retry.contains(f.id.as_str()))
            .map(|f| f.line.as_str());
        let (path, _) = write_failures(dir, kept)?;
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io_error(&path, "cannot open"))?;
        Ok(Failures { path, file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line, in one write, and syncs it to disk (`fdatasync`), so that a killed run
    /// or a power cut keeps every line it reported; a line torn midway is dropped when the file
    /// is read ([`read_failures`]).
    pub fn add(&mut self, image: &Path, id: &str, reason: &str) -> Result<(), FailuresError> {
        let line = format!(
            "{}\t{}\t{}\n",
            tsv_field(&image.display().to_string()),
            tsv_field(id),
            tsv_field(reason)
        );
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data())
            .map_err(io_error(&self.path, "cannot append to"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_kept_dropped_and_appended() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Failures::open(dir.path(), &[], &HashSet::new()).unwrap();
        f.add(Path::new("a/x.jpg"), "x", "bad\tthing\nhere")
            .unwrap();
        f.add(Path::new("a/y.jpg"), "y", "no proposals").unwrap();
        drop(f);
        let lines = read_failures(&dir.path().join(FAILURES_FILE)).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].line, "a/x.jpg\tx\tbad thing here");
        let retry: HashSet<&str> = ["x"].into_iter().collect();
        drop(Failures::open(dir.path(), &lines, &retry).unwrap());
        let text = std::fs::read_to_string(dir.path().join(FAILURES_FILE)).unwrap();
        assert_eq!(text, "image\tid\treason\na/y.jpg\ty\tno proposals\n");
    }

    #[test]
    fn a_failures_file_without_its_header_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.tsv");
        std::fs::write(&bad, "image\treason\nx\ty\n").unwrap();
        assert!(read_failures(&bad)
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        std::fs::write(&bad, "image\tid\treason\nx\ty\n").unwrap();
        assert!(read_failures(&bad)
            .unwrap_err()
            .to_string()
            .contains("line 2 has 2"));
    }

    #[test]
    fn a_torn_last_line_is_dropped_on_resume() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FAILURES_FILE);
        std::fs::write(&path, "image\tid\treason\na.jpg\ta\tbad\nb.jpg\tb").unwrap();
        let lines = read_failures(&path).unwrap();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].id, "a");
        // Torn inside the header: an empty list, not an error.
        std::fs::write(&path, "image\tid").unwrap();
        assert!(read_failures(&path).unwrap().is_empty());
        // Reopening rewrites the file without the torn line.
        drop(Failures::open(dir.path(), &lines, &HashSet::new()).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "image\tid\treason\na.jpg\ta\tbad\n"
        );
    }

    #[test]
    fn written_lines_are_unique_in_first_seen_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, n) = write_failures(dir.path(), ["b\tb\tr", "a\ta\tr", "b\tb\tr"]).unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            std::fs::read_to_string(path).unwrap(),
            "image\tid\treason\nb\tb\tr\na\ta\tr\n"
        );
    }
}
