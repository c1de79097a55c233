//! UNITER / VILLA image features (docs/formats.md (c)): stage 1, one `np.savez_compressed` npz per
//! image as BUTD-UNITER-NLVR2's `generate_npz.py` writes it; stage 2, the LMDB img_db that
//! UNITER's `scripts/convert_imgdir.py` builds from those npz files and `data/data.py`
//! `DetectFeatLmdb` reads.
use std::collections::HashSet;
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use half::f16;
use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, WithTls};

use crate::error::FormatError;
use crate::npy::{read_npz, write_npz, NdArray, NpyDtype};
use crate::record::Record;
use crate::vqa::normalized_box;

/// One image as the UNITER tools store it: the npz's arrays, in the npz's order (`norm_bb`,
/// `features`, `conf`, `soft_labels`), all float16, and its name (the npz file name, which is
/// also the LMDB key and what the txt_db's `txt2img` refers to).
#[derive(Debug, Clone, PartialEq)]
pub struct UniterEntry {
    pub name: String,
    pub arrays: Vec<(String, NdArray)>,
}

impl UniterEntry {
    /// What `generate_npz.py` saves for `r` (`<prefix><image_id>.npz`):
    /// - `norm_bb` (K, 6): [`normalized_box`] of the proposals, float32 arithmetic, then float16;
    /// - `features` (K, D): float32 → float16;
    /// - `conf` (K, 1): `max_conf[keep]`, float64 → float32 → float16 as `save_to_npz` casts it;
    /// - `soft_labels` (K, C): the kept `cls_prob` rows, background included, float16; only when
    ///   the record has them.
    pub fn from_record(r: &Record, prefix: &str) -> Result<UniterEntry, String> {
        let k = r.num_boxes();
        let conf = r
            .conf
            .as_ref()
            .ok_or("UNITER's conf needs the record's `keep` and `max_conf`")?;
        let norm_bb: Vec<f16> = r
            .boxes
            .iter()
            .flat_map(|b| normalized_box(b, r.image_w, r.image_h))
            .map(f16::from_f32)
            .collect();
        let features: Vec<f16> = r.features.iter().map(|&v| f16::from_f32(v)).collect();
        let conf: Vec<f16> = conf.iter().map(|&c| f16::from_f32(c as f32)).collect();
        let mut arrays = vec![
            ("norm_bb".to_string(), NdArray::f16(&norm_bb, &[k, 6])),
            (
                "features".to_string(),
                NdArray::f16(&features, &[k, r.feature_dim]),
            ),
            ("conf".to_string(), NdArray::f16(&conf, &[k, 1])),
        ];
        if let (Some(soft), Some(c)) = (&r.soft_labels, r.soft_labels_dim()) {
            let soft: Vec<f16> = soft.iter().map(|&v| f16::from_f32(v)).collect();
            arrays.push(("soft_labels".to_string(), NdArray::f16(&soft, &[k, c])));
        }
        crate::ids::check_image_id(&r.image_id)?;
        let name = format!("{prefix}{}.npz", r.image_id);
        crate::ids::check_image_id(&name).map_err(|e| format!("--name-prefix {prefix:?}: {e}"))?;
        Ok(UniterEntry { name, arrays })
    }

    pub fn get(&self, name: &str) -> Option<&NdArray> {
        self.arrays.iter().find(|(n, _)| n == name).map(|(_, a)| a)
    }

    /// What `convert_imgdir.py`'s `load_npz` keeps: float32 arrays cast to float16 and every
    /// array cut to its first `nbb` rows (all rows when `nbb` is `None`, `--keep_all`). Arrays of
    /// another rank make it drop the file as corrupted: an error here.
    pub fn converted(&self, nbb: Option<usize>) -> Result<UniterEntry, String> {
        let arrays = self
            .arrays
            .iter()
            .map(|(name, a)| {
                if !(1..=2).contains(&a.shape.len()) {
                    return Err(format!(
                        "{}: array `{name}` has rank {} (convert_imgdir.py: 'wrong ndim')",
                        self.name,
                        a.shape.len()
                    ));
                }
                let a = if a.dtype == NpyDtype::F32 {
                    let values: Vec<f16> = a
                        .data
                        .chunks_exact(4)
                        .map(|c| f16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                        .collect();
                    NdArray::f16(&values, &a.shape)
                } else {
                    a.clone()
                };
                Ok((
                    name.clone(),
                    nbb.map_or_else(|| a.clone(), |n| a.first_rows(n)),
                ))
            })
            .collect::<Result<_, _>>()?;
        Ok(UniterEntry {
            name: self.name.clone(),
            arrays,
        })
    }
}

/// `convert_imgdir.py`'s `_compute_nbb` (and `data.py`'s `compute_num_bb`):
/// `min(max_bb, max(min_bb, (conf > conf_th).sum()))`. `conf` is float16 and NumPy compares it
/// with the Python float `conf_th` in float16 (value-based casting in NumPy 1.x, NEP 50's weak
/// scalars in 2.x): 0.2 becomes 0.199951171875.
pub fn compute_nbb(conf: &[f16], conf_th: f64, min_bb: usize, max_bb: usize) -> usize {
    let th = f16::from_f64(conf_th);
    let above = conf.iter().filter(|&&c| c > th).count();
    above.max(min_bb).min(max_bb)
}

/// Python's `str(float)` (= `repr`): shortest round-trip digits, positional for
/// 1e-4 ≤ |x| < 1e16 with `.0` on integers, else `d.ddde±XX`. UNITER builds its DB and nbb file
/// names from `f'{conf_th}'`, so `0.2` must print `0.2` and `1` must print `1.0`.
pub fn python_float_str(x: f64) -> String {
    if !x.is_finite() {
        return if x.is_nan() {
            "nan".into()
        } else if x > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = x.to_string();
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    }
}

/// `convert_imgdir.py`'s options, which name the DB and decide the truncation.
#[derive(Debug, Clone, PartialEq)]
pub struct UniterOptions {
    /// `--conf_th`; -1 means a fixed box count (`feat_numbb{num_bb}`).
    pub conf_th: f64,
    pub max_bb: usize,
    pub min_bb: usize,
    pub num_bb: usize,
    /// `--keep_all`: no truncation, DB `all`.
    pub keep_all: bool,
    /// `--compress`: values are npz bytes instead of msgpack.
    pub compress: bool,
}

impl Default for UniterOptions {
    /// `convert_imgdir.py`'s defaults.
    fn default() -> Self {
        UniterOptions {
            conf_th: 0.2,
            max_bb: 100,
            min_bb: 10,
            num_bb: 100,
            keep_all: false,
            compress: false,
        }
    }
}

impl UniterOptions {
    /// Whether `conf_th` is `convert_imgdir.py`'s "-1 for fixed" (it compares the float to -1).
    fn fixed(&self) -> bool {
        self.conf_th == -1.0
    }

    /// The per-image box count `convert_imgdir.py` keeps; `None` with `--keep_all`. Note that
    /// with `--conf_th -1` it still applies the clamp formula (num_bb only names the DB).
    pub fn nbb(&self, conf: &[f16]) -> Option<usize> {
        (!self.keep_all).then(|| compute_nbb(conf, self.conf_th, self.min_bb, self.max_bb))
    }

    /// The nbb side file's name, `None` where `convert_imgdir.py` writes none (fixed, keep_all).
    pub fn nbb_file_name(&self) -> Option<String> {
        (!self.fixed() && !self.keep_all).then(|| {
            format!(
                "nbb_th{}_max{}_min{}.json",
                python_float_str(self.conf_th),
                self.max_bb,
                self.min_bb
            )
        })
    }
}

/// The LMDB directory name `convert_imgdir.py` creates (and `DetectFeatLmdb` opens):
/// `feat_th{conf_th}_max{max_bb}_min{min_bb}`, `feat_numbb{num_bb}` or `all`, plus
/// `_compressed`.
pub fn uniter_db_name(o: &UniterOptions) -> String {
    let base = if o.keep_all {
        "all".to_string()
    } else if o.fixed() {
        format!("feat_numbb{}", o.num_bb)
    } else {
        format!(
            "feat_th{}_max{}_min{}",
            python_float_str(o.conf_th),
            o.max_bb,
            o.min_bb
        )
    };
    if o.compress {
        base + "_compressed"
    } else {
        base
    }
}

/// The npz bytes of `entry` (deflated, as `np.savez_compressed`).
fn npz_bytes(entry: &UniterEntry, compressed: bool) -> Vec<u8> {
    let arrays: Vec<(&str, &NdArray)> = entry.arrays.iter().map(|(n, a)| (n.as_str(), a)).collect();
    write_npz(Cursor::new(Vec::new()), &arrays, compressed)
        .expect("writing a zip to memory cannot fail")
        .into_inner()
}

/// Writes `dir/<entry.name>` (a temporary file renamed into place).
pub fn write_uniter_npz(dir: &Path, entry: &UniterEntry) -> Result<PathBuf, FormatError> {
    // The name is a plain file name, so the file lands in `dir` and nowhere else.
    crate::ids::check_image_id(&entry.name).map_err(|message| FormatError::Unsupported {
        path: dir.to_path_buf(),
        image_id: entry.name.clone(),
        message,
    })?;
    let path = dir.join(&entry.name);
    crate::fs::write_atomic(&path, &npz_bytes(entry, true))?;
    Ok(path)
}

/// Reads one image's npz (name = file name).
pub fn read_uniter_npz(path: &Path) -> Result<UniterEntry, FormatError> {
    let bytes = std::fs::read(path).map_err(FormatError::io(path))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(UniterEntry {
        name,
        arrays: read_npz(&bytes, path)?,
    })
}

/// The msgpack that `msgpack.dumps(dump, use_bin_type=True)` gives under `msgpack_numpy.patch()`:
/// a map of array name → `{b'nd': True, b'type': '<f2', b'kind': b'', b'shape': [..],
/// b'data': <bytes>}` (msgpack_numpy ≥ 0.4.4's keys, as bin; the dtype string as str).
fn msgpack_bytes(entry: &UniterEntry) -> Vec<u8> {
    use rmp::encode::{
        write_array_len, write_bin, write_bool, write_map_len, write_str, write_uint,
    };
    let mut out = Vec::with_capacity(entry.arrays.iter().map(|(_, a)| a.data.len() + 64).sum());
    // Writes into a Vec cannot fail.
    let w = &mut out;
    write_map_len(w, entry.arrays.len() as u32).expect("Vec write");
    for (name, a) in &entry.arrays {
        write_str(w, name).expect("Vec write");
        write_map_len(w, 5).expect("Vec write");
        write_bin(w, b"nd").expect("Vec write");
        write_bool(w, true).expect("Vec write");
        write_bin(w, b"type").expect("Vec write");
        write_str(w, a.dtype.descr()).expect("Vec write");
        write_bin(w, b"kind").expect("Vec write");
        write_bin(w, b"").expect("Vec write");
        write_bin(w, b"shape").expect("Vec write");
        write_array_len(w, a.shape.len() as u32).expect("Vec write");
        for &d in &a.shape {
            write_uint(w, d as u64).expect("Vec write");
        }
        write_bin(w, b"data").expect("Vec write");
        write_bin(w, &a.data).expect("Vec write");
    }
    out
}

/// Decodes an LMDB value written by `convert_imgdir.py` (msgpack, or npz with `--compress`).
fn decode_value(
    bytes: &[u8],
    path: &Path,
    key: &str,
) -> Result<Vec<(String, NdArray)>, FormatError> {
    if bytes.starts_with(b"PK\x03\x04") {
        // Old NumPy turns savez's `allow_pickle=True` into a 0-d array of that name.
        let mut arrays = read_npz(bytes, path)?;
        arrays.retain(|(n, _)| n != "allow_pickle");
        return Ok(arrays);
    }
    use rmpv::Value;
    let err = |m: String| FormatError::parse(path, format!("key {key}"), m);
    let value =
        rmpv::decode::read_value(&mut &bytes[..]).map_err(|e| err(format!("not msgpack: {e}")))?;
    let Value::Map(entries) = value else {
        return Err(err("value is not a msgpack map".into()));
    };
    let text = |v: &Value| match v {
        Value::String(s) => s.as_str().map(str::to_string),
        Value::Binary(b) => String::from_utf8(b.clone()).ok(),
        _ => None,
    };
    entries
        .iter()
        .map(|(k, v)| {
            let name = text(k).ok_or_else(|| err(format!("map key {k} is not a string")))?;
            let field = |f: &str| match v {
                Value::Map(m) => m
                    .iter()
                    .find(|(k, _)| text(k).as_deref() == Some(f))
                    .map(|(_, v)| v),
                _ => None,
            };
            let bad = |what: &str| {
                err(format!(
                    "array `{name}`: {what} (expected msgpack_numpy's nd/type/shape/data map)"
                ))
            };
            if field("nd") != Some(&Value::Boolean(true)) {
                return Err(bad("no nd: true"));
            }
            let descr = field("type").and_then(text).ok_or_else(|| bad("no type"))?;
            let dtype = NpyDtype::from_descr(&descr)
                .ok_or_else(|| bad(&format!("dtype {descr} not supported")))?;
            let shape = match field("shape") {
                Some(Value::Array(dims)) => dims
                    .iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect::<Option<Vec<_>>>(),
                _ => None,
            }
            .ok_or_else(|| bad("no shape"))?;
            let data = match field("data") {
                Some(Value::Binary(b)) => b.clone(),
                _ => return Err(bad("no data")),
            };
            if data.len() != shape.iter().product::<usize>() * dtype.size() {
                return Err(bad(&format!(
                    "{} data bytes for {descr} {shape:?}",
                    data.len()
                )));
            }
            Ok((name, NdArray { dtype, shape, data }))
        })
        .collect()
}

/// The JSON text Python's `json.dumps` gives for a list of names / a name → int object
/// (`", "` and `": "` separators).
fn json_list(names: &[String]) -> String {
    let items: Vec<String> = names
        .iter()
        .map(|n| serde_json::to_string(n).expect("string to JSON"))
        .collect();
    format!("[{}]", items.join(", "))
}

fn json_object(pairs: &[(String, usize)]) -> String {
    let items: Vec<String> = pairs
        .iter()
        .map(|(n, v)| format!("{}: {v}", serde_json::to_string(n).expect("string to JSON")))
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// `map_size` of `convert_imgdir.py` (1 TiB of address space; the file grows as written).
const MAP_SIZE: usize = 1 << 40;
/// Values buffered before a write transaction commits (the converter commits every 1000 images).
const COMMIT_BYTES: usize = 64 << 20;

/// Builds `<out>/<db_name>/` (LMDB) and `<out>/<nbb file>` as `convert_imgdir.py` does for the
/// split directory `out`. The DB is built in a temporary directory beside it and renamed into
/// place by [`UniterLmdbWriter::finish`].
pub struct UniterLmdbWriter {
    options: UniterOptions,
    out: PathBuf,
    db_path: PathBuf,
    tmp: tempfile::TempDir,
    env: Env<WithTls>,
    db: Database<Bytes, Bytes>,
    pending: Vec<(String, Vec<u8>)>,
    pending_bytes: usize,
    names: HashSet<String>,
    name2nbb: Vec<(String, usize)>,
    keys: Vec<String>,
}

impl UniterLmdbWriter {
    /// `out` is the split directory (created if missing); `<out>/<db_name>` must not exist.
    pub fn create(out: &Path, options: UniterOptions) -> Result<Self, FormatError> {
        std::fs::create_dir_all(out).map_err(FormatError::io(out))?;
        let db_path = out.join(uniter_db_name(&options));
        if db_path.exists() {
            return Err(FormatError::Io {
                path: db_path,
                error: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "already exists; remove it first",
                ),
            });
        }
        let tmp = tempfile::Builder::new()
            .prefix(".uniter-lmdb-")
            .tempdir_in(out)
            .map_err(FormatError::io(out))?;
        let lmdb = |error| FormatError::Lmdb {
            path: db_path.clone(),
            error,
        };
        // SAFETY: the directory is new and private to this writer; nothing else maps it.
        let env =
            unsafe { EnvOpenOptions::new().map_size(MAP_SIZE).open(tmp.path()) }.map_err(lmdb)?;
        let mut wtxn = env.write_txn().map_err(lmdb)?;
        let db: Database<Bytes, Bytes> = env.create_database(&mut wtxn, None).map_err(lmdb)?;
        wtxn.commit().map_err(lmdb)?;
        Ok(UniterLmdbWriter {
            options,
            out: out.to_path_buf(),
            db_path,
            tmp,
            env,
            db,
            pending: Vec::new(),
            pending_bytes: 0,
            names: HashSet::new(),
            name2nbb: Vec::new(),
            keys: Vec::new(),
        })
    }

    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Adds one image (as its stage-1 npz holds it), converted as `load_npz` converts it.
    pub fn add(&mut self, entry: &UniterEntry) -> Result<(), FormatError> {
        let unsupported = |message: String| FormatError::Unsupported {
            path: self.db_path.clone(),
            image_id: entry.name.clone(),
            message,
        };
        crate::ids::check_image_id(&entry.name).map_err(unsupported)?;
        if entry.name == "__keys__" || !self.names.insert(entry.name.clone()) {
            return Err(unsupported(format!(
                "key {} is already in the DB",
                entry.name
            )));
        }
        let conf = entry
            .get("conf")
            .and_then(NdArray::to_f16)
            .ok_or_else(|| unsupported("no float16 `conf`".into()))?;
        let nbb = self.options.nbb(&conf);
        let dump = entry.converted(nbb).map_err(unsupported)?;
        let value = if self.options.compress {
            npz_bytes(&dump, true)
        } else {
            msgpack_bytes(&dump)
        };
        self.pending_bytes += value.len();
        self.pending.push((entry.name.clone(), value));
        self.keys.push(entry.name.clone());
        if let Some(nbb) = nbb {
            self.name2nbb.push((entry.name.clone(), nbb));
        }
        if self.pending_bytes >= COMMIT_BYTES {
            self.commit_pending()?;
        }
        Ok(())
    }

    fn commit_pending(&mut self) -> Result<(), FormatError> {
        let lmdb = |error| FormatError::Lmdb {
            path: self.db_path.clone(),
            error,
        };
        let mut wtxn = self.env.write_txn().map_err(lmdb)?;
        for (key, value) in &self.pending {
            self.db
                .put(&mut wtxn, key.as_bytes(), value)
                .map_err(lmdb)?;
        }
        wtxn.commit().map_err(lmdb)?;
        self.pending.clear();
        self.pending_bytes = 0;
        Ok(())
    }

    /// Writes `__keys__` (the JSON list of names), closes the DB, renames it into place and
    /// writes the nbb file; returns the DB's path.
    pub fn finish(mut self) -> Result<PathBuf, FormatError> {
        self.commit_pending()?;
        let lmdb = |error| FormatError::Lmdb {
            path: self.db_path.clone(),
            error,
        };
        let mut wtxn = self.env.write_txn().map_err(lmdb)?;
        self.db
            .put(&mut wtxn, b"__keys__", json_list(&self.keys).as_bytes())
            .map_err(lmdb)?;
        wtxn.commit().map_err(lmdb)?;
        self.env.prepare_for_closing().wait();
        let tmp = self.tmp.keep();
        for file in ["data.mdb", "lock.mdb"] {
            crate::fs::make_public(&tmp.join(file), false)?;
        }
        crate::fs::make_public(&tmp, true)?;
        std::fs::rename(&tmp, &self.db_path).map_err(FormatError::io(&self.db_path))?;
        if let Some(name) = self.options.nbb_file_name() {
            crate::fs::write_atomic(&self.out.join(name), json_object(&self.name2nbb).as_bytes())?;
        }
        Ok(self.db_path)
    }
}

/// Reads an img_db LMDB directory (`<split>/<db_name>`), in `__keys__` order.
pub struct UniterLmdbReader {
    path: PathBuf,
    db: Database<Bytes, Bytes>,
    txn: RoTxn<'static, WithTls>,
    keys: Vec<String>,
}

impl UniterLmdbReader {
    pub fn open(dir: &Path) -> Result<Self, FormatError> {
        let lmdb = |error| FormatError::Lmdb {
            path: dir.to_path_buf(),
            error,
        };
        if !dir.join("data.mdb").is_file() {
            return Err(FormatError::Io {
                path: dir.to_path_buf(),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no data.mdb: not an LMDB directory",
                ),
            });
        }
        // Without the lock file: heed's LMDB (mdb.master, lock format 2) and the LMDB in py-lmdb
        // (0.9 releases, lock format 1) share data files but not lock files, so a locking open
        // fails with MDB_VERSION_MISMATCH while a UNITER job has the DB open, and vice versa.
        // SAFETY: read-only on a finished img_db, which nothing writes any more.
        let env = unsafe {
            EnvOpenOptions::new()
                .flags(EnvFlags::READ_ONLY | EnvFlags::NO_LOCK)
                .open(dir)
        }
        .map_err(lmdb)?;
        let txn = env.clone().static_read_txn().map_err(lmdb)?;
        let db: Database<Bytes, Bytes> = env
            .open_database(&txn, None)
            .map_err(lmdb)?
            .ok_or_else(|| FormatError::parse(dir, "LMDB", "no main database"))?;
        let raw = db.get(&txn, b"__keys__").map_err(lmdb)?.ok_or_else(|| {
            FormatError::parse(
                dir,
                "key __keys__",
                "missing (convert_imgdir.py always writes it)",
            )
        })?;
        let keys: Vec<String> = serde_json::from_slice(raw).map_err(|e| {
            FormatError::parse(
                dir,
                "key __keys__",
                format!("not a JSON list of names: {e}"),
            )
        })?;
        Ok(UniterLmdbReader {
            path: dir.to_path_buf(),
            db,
            txn,
            keys,
        })
    }

    /// The names in `__keys__`, in order.
    pub fn keys(&self) -> &[String] {
        &self.keys
    }

    pub fn get(&self, name: &str) -> Result<UniterEntry, FormatError> {
        let raw = self
            .db
            .get(&self.txn, name.as_bytes())
            .map_err(|error| FormatError::Lmdb {
                path: self.path.clone(),
                error,
            })?
            .ok_or_else(|| {
                FormatError::parse(
                    &self.path,
                    format!("key {name}"),
                    "listed in __keys__ but missing",
                )
            })?;
        Ok(UniterEntry {
            name: name.to_string(),
            arrays: decode_value(raw, &self.path, name)?,
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = Result<UniterEntry, FormatError>> + '_ {
        self.keys.iter().map(|k| self.get(k))
    }

    /// The nbb side file of `split_dir` (name → nbb), as `DetectFeatLmdb` loads it.
    pub fn read_nbb_file(path: &Path) -> Result<Vec<(String, usize)>, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path))?;
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_reader(std::io::BufReader::new(file))
                .map_err(|e| FormatError::parse(path, "JSON", e.to_string()))?;
        map.into_iter()
            .map(|(k, v)| {
                let n = v.as_u64().ok_or_else(|| {
                    FormatError::parse(path, format!("key {k}"), "nbb is not an integer")
                })?;
                Ok((k, n as usize))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_float_str_matches_repr() {
        assert_eq!(python_float_str(0.2), "0.2");
        assert_eq!(python_float_str(1.0), "1.0");
        assert_eq!(python_float_str(-1.0), "-1.0");
        assert_eq!(python_float_str(0.0001), "0.0001");
        assert_eq!(python_float_str(0.00001), "1e-05");
        assert_eq!(python_float_str(1e16), "1e+16");
        assert_eq!(python_float_str(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn python_float_str_of_golden_scales() {
        // The golden metadata's im_scale strings (golden/index.json).
        assert_eq!(python_float_str(1.5625), "1.5625");
        assert_eq!(python_float_str(1000.0 / 1100.0), "0.9090909090909091");
        assert_eq!(python_float_str(20.0), "20.0");
        assert_eq!(python_float_str(600.0 / 512.0), "1.171875");
        assert_eq!(python_float_str(1.2), "1.2");
        assert_eq!(python_float_str(1.5e300), "1.5e+300");
    }

    #[test]
    fn db_names_follow_convert_imgdir() {
        let mut o = UniterOptions::default();
        assert_eq!(uniter_db_name(&o), "feat_th0.2_max100_min10");
        assert_eq!(
            o.nbb_file_name().as_deref(),
            Some("nbb_th0.2_max100_min10.json")
        );
        o.compress = true;
        assert_eq!(uniter_db_name(&o), "feat_th0.2_max100_min10_compressed");
        o.conf_th = -1.0;
        o.num_bb = 36;
        assert_eq!(uniter_db_name(&o), "feat_numbb36_compressed");
        assert_eq!(o.nbb_file_name(), None);
        o.keep_all = true;
        assert_eq!(uniter_db_name(&o), "all_compressed");
        assert_eq!(o.nbb(&[]), None);
    }

    #[test]
    fn nbb_compares_in_float16() {
        // 0.2 in float16 is 0.199951171875: a conf that rounds to it is not above the threshold,
        // the next float16 up is.
        let at = f16::from_f64(0.2);
        let above = f16::from_bits(at.to_bits() + 1);
        assert_eq!(compute_nbb(&[at, above], 0.2, 0, 100), 1);
        assert_eq!(compute_nbb(&[above; 3], 0.2, 10, 100), 10);
        assert_eq!(compute_nbb(&[above; 30], 0.2, 10, 20), 20);
    }

    #[test]
    fn msgpack_values_decode_back() {
        let entry = UniterEntry {
            name: "x.npz".into(),
            arrays: vec![
                (
                    "norm_bb".into(),
                    NdArray::f16(&[f16::from_f32(0.5); 12], &[2, 6]),
                ),
                ("conf".into(), NdArray::f16(&[f16::ONE, f16::ZERO], &[2, 1])),
            ],
        };
        let bytes = msgpack_bytes(&entry);
        assert_eq!(
            decode_value(&bytes, Path::new("db"), "x.npz").unwrap(),
            entry.arrays
        );
        let npz = npz_bytes(&entry, true);
        assert_eq!(
            decode_value(&npz, Path::new("db"), "x.npz").unwrap(),
            entry.arrays
        );
    }

    #[test]
    fn converted_truncates_and_rejects_0d() {
        let entry = UniterEntry {
            name: "x.npz".into(),
            arrays: vec![(
                "a".into(),
                NdArray::from_le(
                    NpyDtype::F32,
                    &[3],
                    [1.0f32, 2.0, 3.0].iter().flat_map(|v| v.to_le_bytes()),
                ),
            )],
        };
        let c = entry.converted(Some(2)).unwrap();
        assert_eq!(
            c.arrays[0].1,
            NdArray::f16(&[f16::ONE, f16::from_f32(2.0)], &[2])
        );
        let zero_d = UniterEntry {
            name: "y.npz".into(),
            arrays: vec![("b".into(), NdArray::from_le(NpyDtype::Bool, &[], [1]))],
        };
        assert!(zero_d.converted(None).unwrap_err().contains("wrong ndim"));
    }
}
