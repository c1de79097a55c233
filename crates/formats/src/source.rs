//! Any feature file opened as records: a directory of records or a file / LMDB of a downstream
//! format, detected by content ([`detect_format`]). A source lists its images by native id
//! ([`Reader::list`]) or, for a TSV, streams them line by line; raw items are fetched on the
//! thread that owns the source (an LMDB read transaction stays on its thread) and decoded
//! anywhere ([`load`]) into the canonical [`Record`] (`crate::canonical`).
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use butd_record::{meta, tensors as t};

use crate::canonical::{
    from_tsv, from_uniter, from_vqa, shift_labels, uniter_options_from_db_name, Format,
};
use crate::tensors::Record;
use crate::{
    read_uniter_npz, ButdTsvReader, FormatError, LxmertTsvReader, UniterEntry, UniterLmdbReader,
    UniterOptions, VqaHdf5, VqaImage,
};

/// One side of a comparison, as the caller names it.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub path: PathBuf,
    /// `None`: detected from the content ([`detect_format`]).
    pub format: Option<Format>,
    /// UNITER entry names are `<prefix><image id>.npz` (generate_npz.py writes `nlvr2_…`);
    /// the prefix is taken off to get the id.
    pub name_prefix: String,
    /// 1 when the source's object / attribute ids count from 1 (background 0); they are moved
    /// to the records' 0-based convention.
    pub label_base: i64,
}

impl SourceSpec {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        SourceSpec {
            path: path.into(),
            format: None,
            name_prefix: String::new(),
            label_base: 0,
        }
    }

    pub fn with_format(mut self, format: Format) -> Self {
        self.format = Some(format);
        self
    }
}

/// The HDF5 superblock signature.
const HDF5_MAGIC: &[u8; 8] = b"\x89HDF\r\n\x1a\n";
/// Longest first line read to tell the TSVs apart (a 100-box row is about 1.1 MB).
const FIRST_LINE_LIMIT: u64 = 64 << 20;

fn source_error(path: &Path, message: impl Into<String>) -> FormatError {
    FormatError::Source {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// The LMDB directories (holding `data.mdb`) directly in `dir`.
fn lmdb_children(dir: &Path) -> Result<Vec<PathBuf>, FormatError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(FormatError::io(dir))? {
        let p = entry.map_err(FormatError::io(dir))?.path();
        if p.join("data.mdb").is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// An img_db path: the LMDB directory itself, or a split directory holding exactly one.
fn lmdb_dir(path: &Path) -> Result<PathBuf, FormatError> {
    if path.join("data.mdb").is_file() {
        return Ok(path.to_path_buf());
    }
    match &lmdb_children(path)?[..] {
        [one] => Ok(one.clone()),
        [] => Err(source_error(path, "no data.mdb here or in a subdirectory")),
        many => Err(source_error(
            path,
            format!(
                "{} img_db LMDBs here ({}); name one",
                many.len(),
                many.iter()
                    .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Which format `path` holds, by content, and the path to read it from (an img_db split
/// directory resolves to its LMDB): a directory of `*.safetensors` records or of UNITER
/// `*.npz`, an LMDB directory (`data.mdb`), an HDF5 file (signature), or a TSV (6 fields: BUTD,
/// 10: LXMERT, counted on its first line).
pub fn detect_format(path: &Path) -> Result<(Format, PathBuf), FormatError> {
    let meta = std::fs::metadata(path).map_err(FormatError::io(path))?;
    if meta.is_dir() {
        if path.join("data.mdb").is_file() {
            return Ok((Format::UniterLmdb, path.to_path_buf()));
        }
        let (mut records, mut npz) = (0, 0);
        for entry in std::fs::read_dir(path).map_err(FormatError::io(path))? {
            let p = entry.map_err(FormatError::io(path))?.path();
            match p.extension().and_then(|e| e.to_str()) {
                Some("safetensors") => records += 1,
                Some("npz") => npz += 1,
                _ => {}
            }
        }
        return if records > 0 {
            Ok((Format::Records, path.to_path_buf()))
        } else if npz > 0 {
            Ok((Format::UniterNpz, path.to_path_buf()))
        } else {
            lmdb_dir(path)
                .map(|p| (Format::UniterLmdb, p))
                .map_err(|_| {
                    source_error(
                        path,
                        "directory without *.safetensors records, UNITER *.npz files or an \
                         img_db LMDB (data.mdb)",
                    )
                })
        };
    }
    let mut file = File::open(path).map_err(FormatError::io(path))?;
    let mut magic = [0u8; 8];
    let n = file.read(&mut magic).map_err(FormatError::io(path))?;
    if n == 8 && &magic == HDF5_MAGIC {
        return Ok((Format::VqaHdf5, path.to_path_buf()));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(FormatError::io(path))?;
    let mut lines = TsvLines::new(path, file)?;
    let mut line = Vec::new();
    let first = lines
        .next_limited(&mut line, FIRST_LINE_LIMIT)
        .map_err(FormatError::io(path))?;
    if first.is_none() {
        return Err(source_error(
            path,
            "empty file: not a TSV or HDF5 feature file",
        ));
    }
    let fields = line.split(|&b| b == b'\t').count();
    match fields {
        6 => Ok((Format::ButdTsv, path.to_path_buf())),
        10 => Ok((Format::LxmertTsv, path.to_path_buf())),
        n => Err(source_error(
            path,
            format!(
                "line 1 has {n} tab-separated field(s): not a BUTD TSV (6) or an LXMERT TSV \
                 (10), nor an HDF5 file; pass the format explicitly if it is one"
            ),
        )),
    }
}

/// A TSV read line by line, `\r\n` / `\n` endings, blank lines skipped (as csv does).
pub struct TsvLines {
    path: PathBuf,
    input: BufReader<File>,
    line_no: usize,
    offset: u64,
    len: u64,
}

impl TsvLines {
    fn new(path: &Path, file: File) -> Result<Self, FormatError> {
        let len = file.metadata().map_err(FormatError::io(path))?.len();
        Ok(TsvLines {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(1 << 20, file),
            line_no: 0,
            offset: 0,
            len,
        })
    }

    fn open(path: &Path) -> Result<Self, FormatError> {
        TsvLines::new(path, File::open(path).map_err(FormatError::io(path))?)
    }

    /// The next non-blank line into `buf` (ending stripped): its line number and byte offset.
    fn next_limited(
        &mut self,
        buf: &mut Vec<u8>,
        limit: u64,
    ) -> std::io::Result<Option<(usize, u64)>> {
        loop {
            buf.clear();
            let start = self.offset;
            let n = (&mut self.input).take(limit).read_until(b'\n', buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.offset += n as u64;
            self.line_no += 1;
            while buf.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
                buf.pop();
            }
            if !buf.is_empty() {
                return Ok(Some((self.line_no, start)));
            }
        }
    }

    fn next_line(&mut self, buf: &mut Vec<u8>) -> Result<Option<(usize, u64)>, FormatError> {
        self.next_limited(buf, u64::MAX)
            .map_err(FormatError::io(&self.path))
    }

    /// Calls `visit(id, locator, where)` for every line, read through once for its id (first
    /// field) and byte offset; the listing of a TSV [`Reader`], apart so that it can run on
    /// another thread (the LMDB reader cannot move).
    pub fn list(
        &mut self,
        mut visit: impl FnMut(&str, Locator, String),
    ) -> Result<(), FormatError> {
        let mut buf = Vec::new();
        while let Some((line, offset)) = self.next_line(&mut buf)? {
            let at = format!("line {line}");
            visit(&first_field(&buf), Locator::Line { offset, line }, at);
        }
        Ok(())
    }

    fn read_at(&mut self, offset: u64) -> std::io::Result<Vec<u8>> {
        self.input.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        self.input.read_until(b'\n', &mut buf)?;
        while buf.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
            buf.pop();
        }
        Ok(buf)
    }
}

/// The first field of a TSV line: the image id.
pub fn first_field(line: &[u8]) -> String {
    let end = line.iter().position(|&b| b == b'\t').unwrap_or(line.len());
    String::from_utf8_lossy(&line[..end]).into_owned()
}

/// What the workers need to decode a source's raw items (shared across threads).
#[derive(Debug)]
pub struct Meta {
    pub format: Format,
    pub path: PathBuf,
    pub label_base: i64,
    pub prefix: String,
    /// UNITER img_db: `convert_imgdir.py`'s options, read from the DB directory's name.
    pub uniter: Option<UniterOptions>,
}

/// Where an image lives in its source.
#[derive(Clone, Debug)]
pub enum Locator {
    File(PathBuf),
    Line { offset: u64, line: usize },
    Key(String),
    VqaIndex(usize),
}

/// An image as fetched, before decoding.
pub enum Raw {
    File(PathBuf),
    Line { bytes: Vec<u8>, line: usize },
    Uniter(Box<UniterEntry>),
    Vqa(Box<VqaImage>),
}

/// The stateful half of a source, used only on the thread that opened it.
pub enum Reader {
    /// `(native id, file)`, sorted by id.
    Files(Vec<(String, PathBuf)>),
    Tsv(TsvLines),
    Lmdb(UniterLmdbReader),
    Vqa(Box<VqaHdf5>),
}

/// An opened source: what workers share and the reader its thread keeps.
pub struct Source {
    pub meta: Meta,
    pub reader: Reader,
}

impl Source {
    pub fn open(spec: &SourceSpec) -> Result<Source, FormatError> {
        let (format, path) = match spec.format {
            None => detect_format(&spec.path)?,
            Some(Format::UniterLmdb) => (Format::UniterLmdb, lmdb_dir(&spec.path)?),
            Some(f) => (f, spec.path.clone()),
        };
        if !matches!(spec.label_base, 0 | 1) {
            return Err(source_error(
                &path,
                format!("label base {} (expected 0 or 1)", spec.label_base),
            ));
        }
        let prefix = spec.name_prefix.clone();
        let uniter_id = |name: &str| -> String {
            let stem = name.strip_suffix(".npz").unwrap_or(name);
            stem.strip_prefix(prefix.as_str())
                .unwrap_or(stem)
                .to_string()
        };
        let mut uniter = None;
        let reader = match format {
            Format::Records | Format::UniterNpz => {
                if !path.is_dir() {
                    return Err(source_error(&path, "not a directory"));
                }
                let ext = if format == Format::Records {
                    "safetensors"
                } else {
                    "npz"
                };
                let mut files = Vec::new();
                for entry in std::fs::read_dir(&path).map_err(FormatError::io(&path))? {
                    let p = entry.map_err(FormatError::io(&path))?.path();
                    if p.extension().is_some_and(|e| e == ext) {
                        let name = p.file_name().and_then(|n| n.to_str());
                        let stem = p.file_stem().and_then(|s| s.to_str());
                        let native = match (format, name, stem) {
                            (Format::Records, _, Some(stem)) => stem.to_string(),
                            (_, Some(name), _) => uniter_id(name),
                            _ => continue,
                        };
                        files.push((native, p));
                    }
                }
                files.sort();
                Reader::Files(files)
            }
            Format::ButdTsv | Format::LxmertTsv => Reader::Tsv(TsvLines::open(&path)?),
            Format::UniterLmdb => {
                uniter = path
                    .file_name()
                    .and_then(|n| uniter_options_from_db_name(&n.to_string_lossy()));
                Reader::Lmdb(UniterLmdbReader::open(&path)?)
            }
            Format::VqaHdf5 => Reader::Vqa(Box::new(VqaHdf5::open(&path)?)),
        };
        Ok(Source {
            meta: Meta {
                format,
                path,
                label_base: spec.label_base,
                prefix,
                uniter,
            },
            reader,
        })
    }
}

impl Reader {
    /// File size of a TSV (the streaming decision), 0 for the others.
    pub fn tsv_len(&self) -> u64 {
        match self {
            Reader::Tsv(t) => t.len,
            _ => 0,
        }
    }

    /// Calls `visit(native id, locator, where)` for every image, in source order; a TSV is
    /// read through once for its ids and byte offsets.
    pub fn list(
        &mut self,
        meta: &Meta,
        mut visit: impl FnMut(&str, Locator, String),
    ) -> Result<(), FormatError> {
        let prefix = meta.prefix.as_str();
        match self {
            Reader::Files(files) => {
                for (native, path) in files.iter() {
                    visit(
                        native,
                        Locator::File(path.clone()),
                        path.display().to_string(),
                    );
                }
            }
            Reader::Lmdb(db) => {
                for name in db.keys() {
                    let stem = name.strip_suffix(".npz").unwrap_or(name);
                    let native = stem.strip_prefix(prefix).unwrap_or(stem);
                    visit(native, Locator::Key(name.clone()), format!("key {name}"));
                }
            }
            Reader::Vqa(h5) => {
                for (i, id) in h5.image_ids().iter().enumerate() {
                    visit(
                        &id.to_string(),
                        Locator::VqaIndex(i),
                        format!("image index {i}"),
                    );
                }
            }
            Reader::Tsv(lines) => lines.list(visit)?,
        }
        Ok(())
    }

    /// The next TSV line to stream: `(line number, bytes)`; `None` at the end (or for a source
    /// that is not a TSV).
    pub fn next_line(&mut self) -> Result<Option<(usize, Vec<u8>)>, FormatError> {
        let Reader::Tsv(lines) = self else {
            return Ok(None);
        };
        let mut buf = Vec::new();
        Ok(lines.next_line(&mut buf)?.map(|(line, _)| (line, buf)))
    }

    /// Bytes of a TSV read so far.
    pub fn position(&self) -> u64 {
        match self {
            Reader::Tsv(t) => t.offset,
            _ => 0,
        }
    }

    /// The raw item at `loc`; an error message when it cannot be read.
    pub fn fetch(&mut self, meta: &Meta, loc: &Locator) -> Result<Raw, String> {
        match (self, loc) {
            (_, Locator::File(p)) => Ok(Raw::File(p.clone())),
            (Reader::Tsv(t), Locator::Line { offset, line }) => t
                .read_at(*offset)
                .map(|bytes| Raw::Line { bytes, line: *line })
                .map_err(|e| format!("{}: line {line}: {e}", meta.path.display())),
            (Reader::Lmdb(db), Locator::Key(k)) => db
                .get(k)
                .map(|e| Raw::Uniter(Box::new(e)))
                .map_err(|e| e.to_string()),
            (Reader::Vqa(h5), Locator::VqaIndex(i)) => h5
                .image(*i)
                .map(|img| Raw::Vqa(Box::new(img)))
                .map_err(|e| e.to_string()),
            _ => Err(format!(
                "{}: internal: locator {loc:?} does not fit a {} source",
                meta.path.display(),
                meta.format.name()
            )),
        }
    }
}

/// A format reader's error for a row read on its own (which it numbers line 1), renumbered.
fn at_line(e: FormatError, line: usize) -> String {
    match e {
        FormatError::Parse { path, at, message } => format!(
            "{}: {}: {message}",
            path.display(),
            at.replacen("line 1", &format!("line {line}"), 1)
        ),
        other => other.to_string(),
    }
}

/// Decodes one TSV line with the format's own reader (errors numbered by the line in the file).
pub fn parse_tsv(meta: &Meta, bytes: &[u8], line: usize) -> Result<crate::Record, String> {
    let input = Cursor::new(bytes);
    let row = match meta.format {
        Format::ButdTsv => ButdTsvReader::new(input, &meta.path).next(),
        _ => LxmertTsvReader::new(input, &meta.path).next(),
    };
    match row {
        Some(r) => r.map_err(|e| at_line(e, line)),
        None => Err(format!("{}: line {line}: empty", meta.path.display())),
    }
}

/// A raw item as a canonical record; `size` = (h, w) of the paired record de-normalises UNITER
/// boxes.
pub fn load(meta: &Meta, raw: Raw, size: Option<(usize, usize)>) -> Result<Record, String> {
    let mut rec = match raw {
        Raw::File(p) if meta.format == Format::Records => {
            Record::open(&p).map_err(|e| e.to_string())?
        }
        Raw::File(p) => {
            let entry = read_uniter_npz(&p).map_err(|e| e.to_string())?;
            from_uniter(&entry, size, &p)?
        }
        Raw::Line { bytes, line } => from_tsv(&parse_tsv(meta, &bytes, line)?, &meta.path),
        Raw::Uniter(entry) => from_uniter(&entry, size, &meta.path)?,
        Raw::Vqa(img) => from_vqa(&img, &meta.path),
    };
    shift_labels(&mut rec, meta.label_base);
    Ok(rec)
}

/// Why a record file holds no detections (the crash record, K = 0), if it holds none: such an
/// image cannot be in any downstream format.
pub fn no_detections(meta: &Meta, loc: &Locator) -> Option<String> {
    let (Format::Records, Locator::File(p)) = (meta.format, loc) else {
        return None;
    };
    let rec = Record::open(p).ok()?;
    let rows = rec.get(t::BOXES).map_or(0, |b| b.rows());
    (rows == 0).then(|| {
        rec.metadata
            .get(meta::CAFFE_RESULT)
            .cloned()
            .unwrap_or_else(|| "no kept boxes".into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_kind_comes_from_the_field_count() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tsv");
        std::fs::write(&p, "\r\n1\t2\t3\t1\tAAAA\tAAAA\r\n").unwrap();
        assert_eq!(detect_format(&p).unwrap().0, Format::ButdTsv);
        std::fs::write(&p, "a\tb\tc\td\te\tf\tg\th\ti\tj\n").unwrap();
        assert_eq!(detect_format(&p).unwrap().0, Format::LxmertTsv);
        std::fs::write(&p, "a\tb\n").unwrap();
        let e = detect_format(&p).unwrap_err().to_string();
        assert!(e.contains("x.tsv") && e.contains("2 tab-separated"), "{e}");
        std::fs::write(&p, "").unwrap();
        assert!(detect_format(&p).unwrap_err().to_string().contains("empty"));
        std::fs::write(&p, b"\x89HDF\r\n\x1a\nrest").unwrap();
        assert_eq!(detect_format(&p).unwrap().0, Format::VqaHdf5);
        let e = detect_format(dir.path()).unwrap_err().to_string();
        assert!(e.contains("without *.safetensors"), "{e}");
    }

    #[test]
    fn lines_skip_blanks_and_keep_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tsv");
        std::fs::write(&p, "7\tab\r\n\r\n42\tcd\n").unwrap();
        let mut t = TsvLines::open(&p).unwrap();
        let mut buf = Vec::new();
        assert_eq!(t.next_line(&mut buf).unwrap(), Some((1, 0)));
        assert_eq!(first_field(&buf), "7");
        assert_eq!(t.next_line(&mut buf).unwrap(), Some((3, 8)));
        assert_eq!(buf, b"42\tcd");
        assert_eq!(t.next_line(&mut buf).unwrap(), None);
        assert_eq!(t.read_at(8).unwrap(), b"42\tcd");
    }

    #[test]
    fn a_tsv_row_fetched_by_id_is_parsed_and_its_errors_name_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.tsv");
        let row = "1\tAAAAAAAAAAAAAAAAAAAAAA==\tAAAAAA==\n";
        std::fs::write(&p, format!("7\t2\t3\t{row}\n8\tnot-a-width\t3\t{row}")).unwrap();
        let Source { meta, mut reader } = Source::open(&SourceSpec::new(&p)).unwrap();
        let mut at = std::collections::HashMap::new();
        reader
            .list(&meta, |id, loc, _| {
                at.insert(id.to_string(), loc);
            })
            .unwrap();
        let Raw::Line { bytes, line } = reader.fetch(&meta, &at["7"]).unwrap() else {
            panic!("a TSV row is fetched as a line");
        };
        let row = parse_tsv(&meta, &bytes, line).unwrap();
        assert_eq!(
            (row.image_id.as_str(), row.image_h, row.image_w),
            ("7", 3, 2)
        );
        let Raw::Line { bytes, line } = reader.fetch(&meta, &at["8"]).unwrap() else {
            panic!("a TSV row is fetched as a line");
        };
        let e = parse_tsv(&meta, &bytes, line).unwrap_err();
        assert!(e.contains("x.tsv") && e.contains("line 3"), "{e}");
    }
}
