//! NumPy's `.npy` (format version 1.0, C order, little-endian) and `.npz` (a zip of `.npy`
//! members), written byte for byte as current NumPy's `np.save` writes them.
use std::io::{Cursor, Read, Seek, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::error::FormatError;

/// The dtypes the formats here store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NpyDtype {
    F16,
    F32,
    F64,
    I32,
    I64,
    Bool,
}

impl NpyDtype {
    /// NumPy's `dtype.str`.
    pub fn descr(self) -> &'static str {
        match self {
            NpyDtype::F16 => "<f2",
            NpyDtype::F32 => "<f4",
            NpyDtype::F64 => "<f8",
            NpyDtype::I32 => "<i4",
            NpyDtype::I64 => "<i8",
            NpyDtype::Bool => "|b1",
        }
    }

    pub fn from_descr(descr: &str) -> Option<NpyDtype> {
        [
            NpyDtype::F16,
            NpyDtype::F32,
            NpyDtype::F64,
            NpyDtype::I32,
            NpyDtype::I64,
            NpyDtype::Bool,
        ]
        .into_iter()
        .find(|d| d.descr() == descr)
    }

    pub fn size(self) -> usize {
        match self {
            NpyDtype::Bool => 1,
            NpyDtype::F16 => 2,
            NpyDtype::F32 | NpyDtype::I32 => 4,
            NpyDtype::F64 | NpyDtype::I64 => 8,
        }
    }
}

/// An n-d array as NumPy stores it: dtype, C-order shape, raw little-endian bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub dtype: NpyDtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl NdArray {
    pub fn f16(values: &[half::f16], shape: &[usize]) -> NdArray {
        NdArray::from_le(
            NpyDtype::F16,
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()),
        )
    }

    pub fn from_le(
        dtype: NpyDtype,
        shape: &[usize],
        bytes: impl IntoIterator<Item = u8>,
    ) -> NdArray {
        let data: Vec<u8> = bytes.into_iter().collect();
        debug_assert_eq!(data.len(), shape.iter().product::<usize>() * dtype.size());
        NdArray {
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f16, `None` unless the dtype is float16.
    pub fn to_f16(&self) -> Option<Vec<half::f16>> {
        (self.dtype == NpyDtype::F16).then(|| {
            self.data
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect()
        })
    }

    /// The first `rows` rows (all when fewer), as NumPy's `arr[:rows]`.
    pub fn first_rows(&self, rows: usize) -> NdArray {
        let Some((&n, rest)) = self.shape.split_first() else {
            return self.clone();
        };
        let rows = rows.min(n);
        let row_bytes = rest.iter().product::<usize>() * self.dtype.size();
        let mut shape = self.shape.clone();
        shape[0] = rows;
        NdArray {
            dtype: self.dtype,
            shape,
            data: self.data[..rows * row_bytes].to_vec(),
        }
    }
}

/// Python's `repr` of a shape tuple: `()`, `(5,)`, `(100, 6)`.
fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `numpy.lib.format.ARRAY_ALIGN`: header padded so the data starts on this boundary.
const ARRAY_ALIGN: usize = 64;
/// `numpy.lib.format.GROWTH_AXIS_MAX_DIGITS`: spaces reserved for growing the first axis in place.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
const MAGIC: &[u8] = b"\x93NUMPY";

/// The `.npy` bytes of `a`, as `np.save` (NumPy ≥ 1.24) writes them.
pub fn npy_bytes(a: &NdArray) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        a.dtype.descr(),
        shape_repr(&a.shape)
    );
    if let Some(first) = a.shape.first() {
        header
            .push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(first.to_string().len())));
    }
    // magic (6) + version (2) + u16 length (2) + header + '\n', rounded up; never zero padding.
    let hlen = header.len() + 1;
    let pad = ARRAY_ALIGN - (MAGIC.len() + 2 + 2 + hlen) % ARRAY_ALIGN;
    let mut out = Vec::with_capacity(10 + hlen + pad + a.data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&((hlen + pad) as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out.extend_from_slice(&a.data);
    out
}

/// The value of `'key': …` in a `.npy` header dict, up to the next `, '` or the closing `}`.
fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}':"))? + key.len() + 3;
    let rest = header[start..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else {
        rest.find([',', '}'])?
    };
    Some(rest[..end].trim())
}

/// Parses `.npy` bytes (versions 1–3, little-endian C-order arrays of [`NpyDtype`]).
pub fn parse_npy(bytes: &[u8], path: &Path, member: &str) -> Result<NdArray, FormatError> {
    let err = |m: String| FormatError::parse(path, member, m);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(err("not a .npy (bad magic)".into()));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(err(format!(".npy format version {v} not supported"))),
    };
    let header = bytes
        .get(start..start + len)
        .ok_or_else(|| err("truncated header".into()))?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not text".into()))?;
    let descr =
        header_value(header, "descr").ok_or_else(|| err(format!("no descr in {header:?}")))?;
    let dtype = NpyDtype::from_descr(descr.trim_matches('\'')).ok_or_else(|| {
        err(format!(
            "dtype {descr} not supported (expected <f2 <f4 <f8 <i4 <i8 |b1)"
        ))
    })?;
    if header_value(header, "fortran_order") != Some("False") {
        return Err(err("Fortran-order arrays are not supported".into()));
    }
    let shape_text =
        header_value(header, "shape").ok_or_else(|| err(format!("no shape in {header:?}")))?;
    let shape = shape_text
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| err(format!("bad shape {shape_text}")))?;
    let data = &bytes[start + len..];
    let want = shape.iter().product::<usize>() * dtype.size();
    if data.len() != want {
        return Err(err(format!(
            "{} data bytes, expected {want} for {descr} {shape_text}",
            data.len()
        )));
    }
    Ok(NdArray {
        dtype,
        shape,
        data: data.to_vec(),
    })
}

/// Writes an `.npz` of `arrays` (member `<name>.npy` each, in order): deflated as
/// `np.savez_compressed`, stored as `np.savez`. Timestamps are fixed, so equal input gives
/// equal bytes.
pub fn write_npz<W: Write + Seek>(
    out: W,
    arrays: &[(&str, &NdArray)],
    compressed: bool,
) -> zip::result::ZipResult<W> {
    let method = if compressed {
        CompressionMethod::Deflated
    } else {
        CompressionMethod::Stored
    };
    let options = SimpleFileOptions::default().compression_method(method);
    let mut zip = ZipWriter::new(out);
    for (name, array) in arrays {
        zip.start_file(format!("{name}.npy"), options)?;
        zip.write_all(&npy_bytes(array))?;
    }
    zip.finish()
}

/// The arrays of an `.npz` (in member order, names without `.npy`).
pub fn read_npz(bytes: &[u8], path: &Path) -> Result<Vec<(String, NdArray)>, FormatError> {
    let zip_err = |e: zip::result::ZipError| FormatError::parse(path, "npz", e.to_string());
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(zip_err)?;
    let mut arrays = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut member = archive.by_index(i).map_err(zip_err)?;
        let name = member.name().to_string();
        let mut raw = Vec::with_capacity(member.size() as usize);
        member
            .read_to_end(&mut raw)
            .map_err(FormatError::io(path))?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        arrays.push((key, parse_npy(&raw, path, &name)?));
    }
    Ok(arrays)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_padded_to_64_with_growth_room() {
        let a = NdArray::f16(&[half::f16::ONE; 12], &[2, 6]);
        let bytes = npy_bytes(&a);
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 6), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(parse_npy(&bytes, Path::new("x"), "a.npy").unwrap(), a);
    }

    #[test]
    fn shapes_print_like_python_tuples() {
        assert_eq!(shape_repr(&[]), "()");
        assert_eq!(shape_repr(&[5]), "(5,)");
        assert_eq!(shape_repr(&[100, 6]), "(100, 6)");
    }

    #[test]
    fn npz_round_trips_and_truncates_rows() {
        let a = NdArray::from_le(
            NpyDtype::F32,
            &[3, 2],
            (0..6).flat_map(|i| (i as f32).to_le_bytes()),
        );
        let b = NdArray::from_le(NpyDtype::Bool, &[], [1u8]);
        for compressed in [false, true] {
            let bytes = write_npz(Cursor::new(Vec::new()), &[("a", &a), ("b", &b)], compressed)
                .unwrap()
                .into_inner();
            let back = read_npz(&bytes, Path::new("x.npz")).unwrap();
            assert_eq!(
                back,
                vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())]
            );
        }
        assert_eq!(a.first_rows(2).shape, vec![2, 2]);
        assert_eq!(a.first_rows(2).data, a.data[..16]);
        assert_eq!(a.first_rows(9), a);
    }
}
