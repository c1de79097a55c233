//! The two Caffe-era TSVs (docs/formats.md (a) BUTD `generate_tsv.py`, (b) LXMERT obj36): Python's
//! `csv.DictWriter(delimiter='\t')` rows in the excel dialect (`\r\n`, no header, no quoting
//! needed), numbers in decimal, arrays as standard padded base64 of little-endian bytes.
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::error::FormatError;
use crate::record::Record;

/// `generate_tsv.py`'s FIELDNAMES (width before height).
pub const BUTD_FIELDS: [&str; 6] = [
    "image_id",
    "image_w",
    "image_h",
    "num_boxes",
    "boxes",
    "features",
];
/// LXMERT's FIELDNAMES (height before width).
pub const LXMERT_FIELDS: [&str; 10] = [
    "img_id",
    "img_h",
    "img_w",
    "objects_id",
    "objects_conf",
    "attrs_id",
    "attrs_conf",
    "num_boxes",
    "boxes",
    "features",
];

/// The excel dialect's line terminator, which `csv.DictWriter` writes.
const LINE_END: &str = "\r\n";

/// Appends the standard base64 of `values`' little-endian bytes to `line`.
fn push_b64<T: Copy, const N: usize>(
    line: &mut String,
    bytes: &mut Vec<u8>,
    values: &[T],
    to_le: fn(T) -> [u8; N],
) {
    bytes.clear();
    bytes.extend(values.iter().flat_map(|&v| to_le(v)));
    STANDARD.encode_string(&bytes[..], line);
}

/// A TSV file being written: appended to in place (like `generate_tsv.py`'s `'ab'`), or built
/// under a temporary name beside its path and renamed into place by [`TsvFile::commit`], so an
/// interrupted export leaves no half-written file.
///
/// Appending is idempotent and all-or-nothing: the ids already in the file are read first
/// ([`TsvFile::existing_ids`]; generate_tsv.py skipped them the same way), a torn last row left
/// by a killed earlier run is cut off, and a run that fails or is dropped before
/// [`TsvFile::commit`] truncates the file back to the length it had.
pub struct TsvFile {
    path: PathBuf,
    out: BufWriter<TsvTarget>,
    existing: HashSet<String>,
    torn_bytes: u64,
}

enum TsvTarget {
    Append(AppendGuard),
    Temp(tempfile::NamedTempFile),
}

/// The appended file and its length before this run; truncated back to it when dropped
/// uncommitted.
struct AppendGuard {
    file: File,
    start: u64,
    committed: bool,
}

impl Drop for AppendGuard {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: the run is failing already; its error is the one reported.
            let _ = self.file.set_len(self.start);
        }
    }
}

impl Write for TsvTarget {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            TsvTarget::Append(g) => g.file.write(buf),
            TsvTarget::Temp(f) => f.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            TsvTarget::Append(g) => g.file.flush(),
            TsvTarget::Temp(f) => f.flush(),
        }
    }
}

impl Write for TsvFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The first field of every complete row of `file`, and the length of the complete rows (a
/// last row without its line end was torn by a killed writer).
fn scan_rows(file: &File, path: &Path) -> Result<(HashSet<String>, u64), FormatError> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let (mut ids, mut complete, mut line) = (HashSet::new(), 0u64, Vec::new());
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(FormatError::io(path))?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok((ids, complete));
        }
        complete += n as u64;
        let id = line.split(|&b| b == b'\t').next().unwrap_or_default();
        ids.insert(String::from_utf8_lossy(id).trim_end().to_string());
    }
}

impl TsvFile {
    fn create(path: &Path, append: bool) -> Result<TsvFile, FormatError> {
        let (target, existing, torn_bytes) = if append {
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(path)
                .map_err(FormatError::io(path))?;
            let len = file.metadata().map_err(FormatError::io(path))?.len();
            let (existing, complete) = scan_rows(&file, path)?;
            if complete < len {
                file.set_len(complete).map_err(FormatError::io(path))?;
            }
            let guard = AppendGuard {
                file,
                start: complete,
                committed: false,
            };
            (TsvTarget::Append(guard), existing, len - complete)
        } else {
            let tmp = crate::fs::temp_beside(path)?;
            (TsvTarget::Temp(tmp), HashSet::new(), 0)
        };
        Ok(TsvFile {
            path: path.to_path_buf(),
            out: BufWriter::with_capacity(1 << 20, target),
            existing,
            torn_bytes,
        })
    }

    /// The ids (first fields) of the rows already in an appended file; empty for a new one.
    pub fn existing_ids(&self) -> &HashSet<String> {
        &self.existing
    }

    /// Bytes of a torn last row that opening for `--append` cut off (0 when none).
    pub fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }

    /// Flushes, and renames a new file into place (an appended one is synced); returns its
    /// path.
    pub fn commit(self) -> Result<PathBuf, FormatError> {
        let target = self.out.into_inner().map_err(|e| FormatError::Io {
            path: self.path.clone(),
            error: e.into_error(),
        })?;
        match target {
            TsvTarget::Temp(tmp) => crate::fs::persist(tmp, &self.path)?,
            TsvTarget::Append(mut guard) => {
                guard
                    .file
                    .sync_data()
                    .map_err(FormatError::io(&self.path))?;
                guard.committed = true;
            }
        }
        Ok(self.path)
    }
}

/// Shared by both writers: the target, a line buffer and a byte buffer reused across rows.
/// `pub` only because the sealed [`TsvFormat`] names it; nothing outside this module can make
/// or use one.
pub struct TsvOut<W: Write> {
    out: W,
    path: PathBuf,
    line: String,
    bytes: Vec<u8>,
}

impl<W: Write> TsvOut<W> {
    fn new(out: W, path: PathBuf) -> Self {
        TsvOut {
            out,
            path,
            line: String::new(),
            bytes: Vec::new(),
        }
    }

    fn unsupported(&self, r: &Record, message: impl Into<String>) -> FormatError {
        FormatError::Unsupported {
            path: self.path.clone(),
            image_id: r.image_id.clone(),
            message: message.into(),
        }
    }

    fn field(&mut self, text: &str) {
        if !self.line.is_empty() {
            self.line.push('\t');
        }
        self.line.push_str(text);
    }

    fn b64<T: Copy, const N: usize>(&mut self, values: &[T], to_le: fn(T) -> [u8; N]) {
        self.line.push('\t');
        push_b64(&mut self.line, &mut self.bytes, values, to_le);
    }

    fn end_row(&mut self) -> Result<(), FormatError> {
        self.line.push_str(LINE_END);
        self.out
            .write_all(self.line.as_bytes())
            .map_err(FormatError::io(&self.path))?;
        self.line.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<W, FormatError> {
        self.out.flush().map_err(FormatError::io(&self.path))?;
        Ok(self.out)
    }
}

/// Characters that make Python's csv writer quote a field (QUOTE_MINIMAL): a row holding one
/// would need quoting, which no consumer's reader expects from these files.
fn needs_csv_quoting(text: &str) -> bool {
    text.contains(['\t', '\r', '\n', '"'])
}

fn flat_boxes(r: &Record) -> Vec<f32> {
    r.boxes.iter().flatten().copied().collect()
}

/// A TSV row layout: its field names, and how a record becomes one row and one row a record.
/// Sealed: the two layouts are [`ButdTsv`] and [`LxmertTsv`].
pub trait TsvFormat: sealed::Sealed {
    /// The row's fields, in order.
    const FIELDS: &'static [&'static str];
}

mod sealed {
    use super::{FormatError, Record, Row, TsvOut};
    use std::io::Write;

    pub trait Sealed {
        /// Checks that `r` fits the layout, then writes it as one row.
        fn write_row<W: Write>(out: &mut TsvOut<W>, r: &Record) -> Result<(), FormatError>;
        /// Parses one row split into the layout's fields.
        fn read_row(row: &Row<'_>) -> Result<Record, FormatError>;
    }
}

/// Writes one record per row in the layout `F`; see [`ButdTsvWriter`], [`LxmertTsvWriter`].
pub struct TsvWriter<F: TsvFormat, W: Write = TsvFile> {
    out: TsvOut<W>,
    format: PhantomData<F>,
}

/// Writes BUTD TSV rows: `image_id, image_w, image_h, num_boxes, boxes, features`.
pub type ButdTsvWriter<W = TsvFile> = TsvWriter<ButdTsv, W>;
/// Writes LXMERT obj36 TSV rows: `img_id, img_h, img_w, objects_id, objects_conf, attrs_id,
/// attrs_conf, num_boxes, boxes, features` (ids int64, confidences float32).
pub type LxmertTsvWriter<W = TsvFile> = TsvWriter<LxmertTsv, W>;

impl<F: TsvFormat> TsvWriter<F> {
    /// Creates (or, with `append`, appends to) `path`; `finish()?.commit()` completes it.
    pub fn create(path: &Path, append: bool) -> Result<Self, FormatError> {
        Ok(TsvWriter::new(TsvFile::create(path, append)?, path))
    }
}

impl<F: TsvFormat, W: Write> TsvWriter<F, W> {
    /// `path` names the target in errors.
    pub fn new(out: W, path: impl Into<PathBuf>) -> Self {
        TsvWriter {
            out: TsvOut::new(out, path.into()),
            format: PhantomData,
        }
    }

    pub fn write(&mut self, r: &Record) -> Result<(), FormatError> {
        crate::ids::check_image_id(&r.image_id).map_err(|e| self.out.unsupported(r, e))?;
        F::write_row(&mut self.out, r)
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(self) -> Result<W, FormatError> {
        self.out.finish()
    }

    /// The underlying writer (e.g. [`TsvFile::existing_ids`]).
    pub fn target(&self) -> &W {
        &self.out.out
    }
}

/// The BUTD layout, [`BUTD_FIELDS`] (`generate_tsv.py`).
pub enum ButdTsv {}

impl TsvFormat for ButdTsv {
    const FIELDS: &'static [&'static str] = &BUTD_FIELDS;
}

/// The LXMERT obj36 layout, [`LXMERT_FIELDS`].
pub enum LxmertTsv {}

impl TsvFormat for LxmertTsv {
    const FIELDS: &'static [&'static str] = &LXMERT_FIELDS;
}

/// The LXMERT data loaders normalise boxes by the image size and assert the result lies in
/// `[0, 1 + 1e-5]` (`np.testing.assert_array_less` in `src/tasks/*_data.py`), in float32.
fn lxmert_box_in_range(b: &[f32; 4], w: usize, h: usize) -> bool {
    let (w, h) = (w as f32, h as f32);
    [b[0] / w, b[1] / h, b[2] / w, b[3] / h]
        .iter()
        .all(|&x| x < 1.0 + 1e-5 && -x < 1e-5)
}

/// Line-by-line reading shared by both readers: `\r\n` or `\n` endings, blank lines skipped
/// (as `csv.DictReader` does), fields split on tabs.
struct TsvIn<R: BufRead> {
    input: R,
    path: PathBuf,
    line_no: usize,
    line: Vec<u8>,
}

/// One row's fields with what the errors need to name them (`pub` only as [`TsvOut`] is).
pub struct Row<'a> {
    fields: Vec<&'a [u8]>,
    names: &'static [&'static str],
    path: &'a Path,
    line_no: usize,
}

impl<R: BufRead> TsvIn<R> {
    fn new(input: R, path: PathBuf) -> Self {
        TsvIn {
            input,
            path,
            line_no: 0,
            line: Vec::new(),
        }
    }

    /// The next non-blank row, split into exactly `names.len()` fields.
    fn next_row(&mut self, names: &'static [&'static str]) -> Option<Result<Row<'_>, FormatError>> {
        loop {
            self.line.clear();
            self.line_no += 1;
            match self.input.read_until(b'\n', &mut self.line) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    return Some(Err(FormatError::Io {
                        path: self.path.clone(),
                        error: e,
                    }))
                }
            }
            while self.line.last().is_some_and(|&c| c == b'\n' || c == b'\r') {
                self.line.pop();
            }
            if !self.line.is_empty() {
                break;
            }
        }
        let fields: Vec<&[u8]> = self.line.split(|&c| c == b'\t').collect();
        if fields.len() != names.len() {
            return Some(Err(FormatError::parse(
                &self.path,
                format!("line {}", self.line_no),
                format!(
                    "{} tab-separated fields, expected {} ({})",
                    fields.len(),
                    names.len(),
                    names.join(", ")
                ),
            )));
        }
        Some(Ok(Row {
            fields,
            names,
            path: &self.path,
            line_no: self.line_no,
        }))
    }
}

impl Row<'_> {
    fn error(&self, i: usize, message: impl std::fmt::Display) -> FormatError {
        FormatError::parse(
            self.path,
            format!("line {}, field {}", self.line_no, self.names[i]),
            message.to_string(),
        )
    }

    fn text(&self, i: usize) -> Result<String, FormatError> {
        String::from_utf8(self.fields[i].to_vec()).map_err(|_| self.error(i, "not UTF-8"))
    }

    fn int(&self, i: usize) -> Result<usize, FormatError> {
        let text = self.text(i)?;
        text.parse()
            .map_err(|_| self.error(i, format!("{text:?} is not a non-negative integer")))
    }

    /// Decodes a base64 field of `N`-byte little-endian values; `count` checks their number.
    fn b64<T, const N: usize>(
        &self,
        i: usize,
        count: Option<usize>,
        from_le: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, FormatError> {
        let bytes = STANDARD
            .decode(self.fields[i])
            .map_err(|e| self.error(i, format!("bad base64: {e}")))?;
        if bytes.len() % N != 0 || count.is_some_and(|c| c * N != bytes.len()) {
            let want = count.map_or_else(
                || format!("a multiple of {N}"),
                |c| format!("{c} values of {N} bytes"),
            );
            return Err(self.error(i, format!("{} bytes, expected {want}", bytes.len())));
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|c| from_le(c.try_into().expect("chunks_exact(N)")))
            .collect())
    }

    fn boxes(&self, i: usize, k: usize) -> Result<Vec<[f32; 4]>, FormatError> {
        Ok(self
            .b64(i, Some(4 * k), f32::from_le_bytes)?
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect())
    }

    /// `(features, feature_dim)`: `k` rows of equal length, as `reshape(num_boxes, -1)` needs.
    fn features(&self, i: usize, k: usize) -> Result<(Vec<f32>, usize), FormatError> {
        let features = self.b64(i, None, f32::from_le_bytes)?;
        if k == 0 || features.len() % k != 0 {
            return Err(self.error(
                i,
                format!(
                    "{} values do not split into num_boxes = {k} rows",
                    features.len()
                ),
            ));
        }
        let dim = features.len() / k;
        Ok((features, dim))
    }
}

/// Reads rows of the layout `F` back into records; see [`ButdTsvReader`], [`LxmertTsvReader`].
pub struct TsvReader<F: TsvFormat, R: BufRead = BufReader<File>> {
    input: TsvIn<R>,
    format: PhantomData<F>,
}

/// Reads BUTD TSV rows back into records (`objects_*`, `attrs_*`, `conf`, `soft_labels` are
/// `None`: the format does not hold them).
pub type ButdTsvReader<R = BufReader<File>> = TsvReader<ButdTsv, R>;
/// Reads LXMERT obj36 TSV rows back into records (`conf`, `soft_labels` are `None`).
pub type LxmertTsvReader<R = BufReader<File>> = TsvReader<LxmertTsv, R>;

impl<F: TsvFormat> TsvReader<F> {
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path))?;
        Ok(TsvReader::new(
            BufReader::with_capacity(1 << 20, file),
            path,
        ))
    }
}

impl<F: TsvFormat, R: BufRead> TsvReader<F, R> {
    pub fn new(input: R, path: impl Into<PathBuf>) -> Self {
        TsvReader {
            input: TsvIn::new(input, path.into()),
            format: PhantomData,
        }
    }
}

impl<F: TsvFormat, R: BufRead> Iterator for TsvReader<F, R> {
    type Item = Result<Record, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        Some(
            self.input
                .next_row(F::FIELDS)?
                .and_then(|row| F::read_row(&row)),
        )
    }
}

impl sealed::Sealed for ButdTsv {
    fn write_row<W: Write>(o: &mut TsvOut<W>, r: &Record) -> Result<(), FormatError> {
        // The consumers call int(image_id) (COCO/VG numeric ids).
        if r.image_id.parse::<i64>().is_err() {
            return Err(o.unsupported(
                r,
                "BUTD TSV image_id must be an integer (its readers call int()); use the int-suffix id policy or an id map",
            ));
        }
        o.field(&r.image_id);
        o.field(&r.image_w.to_string());
        o.field(&r.image_h.to_string());
        o.field(&r.num_boxes().to_string());
        o.b64(&flat_boxes(r), f32::to_le_bytes);
        o.b64(&r.features, f32::to_le_bytes);
        o.end_row()
    }

    fn read_row(row: &Row<'_>) -> Result<Record, FormatError> {
        let image_id = row.text(0)?;
        if image_id.parse::<i64>().is_err() {
            return Err(row.error(0, format!("{image_id:?} is not an integer")));
        }
        let (image_w, image_h, k) = (row.int(1)?, row.int(2)?, row.int(3)?);
        let boxes = row.boxes(4, k)?;
        let (features, feature_dim) = row.features(5, k)?;
        Ok(Record {
            image_id,
            image_w,
            image_h,
            boxes,
            features,
            feature_dim,
            objects_id: None,
            objects_conf: None,
            attrs_id: None,
            attrs_conf: None,
            conf: None,
            soft_labels: None,
        })
    }
}

impl sealed::Sealed for LxmertTsv {
    fn write_row<W: Write>(o: &mut TsvOut<W>, r: &Record) -> Result<(), FormatError> {
        if needs_csv_quoting(&r.image_id) {
            return Err(o.unsupported(
                r,
                "img_id holds a tab, newline or quote, which csv would quote",
            ));
        }
        let (Some(objects_id), Some(objects_conf), Some(attrs_id), Some(attrs_conf)) =
            (&r.objects_id, &r.objects_conf, &r.attrs_id, &r.attrs_conf)
        else {
            return Err(o.unsupported(
                r,
                "LXMERT TSV needs objects_id, objects_conf, attrs_id and attrs_conf",
            ));
        };
        if let Some(b) = r
            .boxes
            .iter()
            .find(|b| !lxmert_box_in_range(b, r.image_w, r.image_h))
        {
            return Err(o.unsupported(
                r,
                format!(
                    "box {b:?} leaves the {}×{} image; LXMERT's loaders assert boxes lie inside",
                    r.image_w, r.image_h
                ),
            ));
        }
        o.field(&r.image_id);
        o.field(&r.image_h.to_string());
        o.field(&r.image_w.to_string());
        o.b64(objects_id, i64::to_le_bytes);
        o.b64(objects_conf, f32::to_le_bytes);
        o.b64(attrs_id, i64::to_le_bytes);
        o.b64(attrs_conf, f32::to_le_bytes);
        o.field(&r.num_boxes().to_string());
        o.b64(&flat_boxes(r), f32::to_le_bytes);
        o.b64(&r.features, f32::to_le_bytes);
        o.end_row()
    }

    fn read_row(row: &Row<'_>) -> Result<Record, FormatError> {
        let k = row.int(7)?;
        let (image_id, image_h, image_w) = (row.text(0)?, row.int(1)?, row.int(2)?);
        let objects_id = Some(row.b64(3, Some(k), i64::from_le_bytes)?);
        let objects_conf = Some(row.b64(4, Some(k), f32::from_le_bytes)?);
        let attrs_id = Some(row.b64(5, Some(k), i64::from_le_bytes)?);
        let attrs_conf = Some(row.b64(6, Some(k), f32::from_le_bytes)?);
        let boxes = row.boxes(8, k)?;
        let (features, feature_dim) = row.features(9, k)?;
        Ok(Record {
            image_id,
            image_h,
            image_w,
            objects_id,
            objects_conf,
            attrs_id,
            attrs_conf,
            boxes,
            features,
            feature_dim,
            conf: None,
            soft_labels: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn record(id: &str) -> Record {
        Record {
            image_id: id.into(),
            image_h: 30,
            image_w: 45,
            boxes: vec![[0.0, 1.5, 44.25, 29.0], [3.0, 4.0, 5.0, 6.0]],
            features: vec![1.0, -2.0, f32::MIN_POSITIVE, 7.5, 0.0, -0.0],
            feature_dim: 3,
            objects_id: Some(vec![0, 1599]),
            objects_conf: Some(vec![0.25, 0.5]),
            attrs_id: Some(vec![399, 7]),
            attrs_conf: Some(vec![0.125, 1.0]),
            conf: None,
            soft_labels: None,
        }
    }

    fn without_labels(mut r: Record) -> Record {
        (r.objects_id, r.objects_conf, r.attrs_id, r.attrs_conf) = (None, None, None, None);
        r
    }

    #[test]
    fn butd_rows_round_trip_bit_for_bit() {
        let mut w = ButdTsvWriter::new(Vec::new(), "mem.tsv");
        w.write(&record("42")).unwrap();
        w.write(&record("7")).unwrap();
        let bytes = w.finish().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("42\t45\t30\t2\t"), "{}", &text[..20]);
        assert_eq!(text.matches("\r\n").count(), 2);
        let back: Vec<Record> = ButdTsvReader::new(Cursor::new(bytes), "mem.tsv")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            back,
            vec![without_labels(record("42")), without_labels(record("7"))]
        );
        // -0.0 == 0.0 would hide a sign flip: compare the bits.
        assert_eq!(back[0].features[5].to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn lxmert_rows_round_trip_bit_for_bit() {
        let mut w = LxmertTsvWriter::new(Vec::new(), "mem.tsv");
        w.write(&record("COCO_val2014_000000000042")).unwrap();
        let bytes = w.finish().unwrap();
        assert!(bytes.starts_with(b"COCO_val2014_000000000042\t30\t45\t"));
        let back: Vec<Record> = LxmertTsvReader::new(Cursor::new(bytes), "mem.tsv")
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, vec![record("COCO_val2014_000000000042")]);
    }

    #[test]
    fn butd_refuses_a_non_integer_id() {
        let mut w = ButdTsvWriter::new(Vec::new(), "out.tsv");
        let e = w.write(&record("coffee")).unwrap_err().to_string();
        assert!(
            e.contains("out.tsv") && e.contains("coffee") && e.contains("integer"),
            "{e}"
        );
    }

    #[test]
    fn lxmert_refuses_missing_labels_and_boxes_outside_the_image() {
        let mut w = LxmertTsvWriter::new(Vec::new(), "out.tsv");
        let e = w
            .write(&without_labels(record("a")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("objects_id"), "{e}");
        let mut r = record("a");
        r.boxes[1][2] = 45.5;
        let e = w.write(&r).unwrap_err().to_string();
        assert!(e.contains("leaves"), "{e}");
        assert!(w.write(&record("a\tb")).is_err());
    }

    #[test]
    fn reader_errors_name_line_and_field() {
        let text = "1\t2\t3\t1\tAAAA\tAAAA\r\n\r\n1\t2\t3\t1\tAAAA\n";
        let mut rows = ButdTsvReader::new(Cursor::new(text), "x.tsv");
        let e = rows.next().unwrap().unwrap_err().to_string();
        assert!(
            e.contains("x.tsv: line 1, field boxes") && e.contains("3 bytes"),
            "{e}"
        );
        let e = rows.next().unwrap().unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("5 tab-separated fields"),
            "{e}"
        );
        assert!(rows.next().is_none());
    }
}
