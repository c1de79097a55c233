//! The canonical record (one safetensors file per image, `butd extract`'s output and the golden
//! files' layout, `golden/README.md`) reduced to what downstream formats store. Tensor names
//! and metadata keys are the record contract's (`butd-record`).
use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use butd_record::meta;
use butd_record::tensors as t;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::FormatError;
use crate::ids::{check_image_id, IdPolicy};

/// One image's regions, in the record's row order (descending confidence when the count was
/// clamped, proposal order otherwise: docs/formats.md §0).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// What the formats store as the image id (see [`IdPolicy`]).
    pub image_id: String,
    pub image_h: usize,
    pub image_w: usize,
    /// x1, y1, x2, y2 in original-image pixels (the unregressed proposals).
    pub boxes: Vec<[f32; 4]>,
    /// K × `feature_dim`, row-major.
    pub features: Vec<f32>,
    pub feature_dim: usize,
    /// 0-based over the 1600 VG objects (LXMERT's convention).
    pub objects_id: Option<Vec<i64>>,
    pub objects_conf: Option<Vec<f32>>,
    /// 0-based over the 400 VG attributes.
    pub attrs_id: Option<Vec<i64>>,
    pub attrs_conf: Option<Vec<f32>>,
    /// generate_tsv's `max_conf` of each kept box (`max_conf[keep]`, float64 as there): UNITER's
    /// `conf`, from which its converter computes the number of boxes to keep.
    pub conf: Option<Vec<f64>>,
    /// The kept boxes' full `cls_prob` rows (background column 0 included), K × C row-major:
    /// UNITER's `soft_labels`: from the record's `soft_labels` tensor (`butd extract
    /// --soft-labels`: the kept rows only, float16 as UNITER stores them) or from `cls_prob`
    /// (`--dump-activations`).
    pub soft_labels: Option<Vec<f32>>,
}

/// Width of the features (`pool5_flat`) that every downstream consumer assumes.
pub const FEATURE_DIM: usize = 2048;
/// Visual Genome object classes (0-based ids, background excluded).
pub const NUM_OBJECTS: i64 = 1600;
/// Visual Genome attributes (0-based ids, "no attribute" excluded).
pub const NUM_ATTRIBUTES: i64 = 400;

/// A tensor's values after checking its dtype and shape (`None` in `shape` = any length).
fn values<T>(
    path: &Path,
    name: &str,
    view: &TensorView<'_>,
    dtype: Dtype,
    shape: &[Option<usize>],
    decode: impl Fn(&[u8]) -> T,
) -> Result<(Vec<usize>, Vec<T>), FormatError> {
    let actual = view.shape();
    let fits = view.dtype() == dtype
        && actual.len() == shape.len()
        && actual
            .iter()
            .zip(shape)
            .all(|(&a, s)| s.is_none_or(|s| s == a));
    if !fits {
        let want: Vec<String> = shape
            .iter()
            .map(|s| s.map_or("*".into(), |s| s.to_string()))
            .collect();
        return Err(FormatError::Record {
            path: path.to_path_buf(),
            message: format!(
                "tensor `{name}` is {:?} {actual:?}, expected {dtype:?} [{}]",
                view.dtype(),
                want.join(", ")
            ),
        });
    }
    let size = view.dtype().size();
    Ok((
        actual.to_vec(),
        view.data().chunks_exact(size).map(decode).collect(),
    ))
}

fn f32_le(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn f64_le(b: &[u8]) -> f64 {
    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

fn i64_le(b: &[u8]) -> i64 {
    i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl Record {
    pub fn num_boxes(&self) -> usize {
        self.boxes.len()
    }

    /// Columns of [`Record::soft_labels`] (1601 for the VG model).
    pub fn soft_labels_dim(&self) -> Option<usize> {
        let k = self.num_boxes();
        self.soft_labels
            .as_ref()
            .filter(|_| k > 0)
            .map(|s| s.len() / k)
    }

    /// The record's own id, which the id policy applies to: its file name without
    /// `.safetensors` (what `butd extract` named it).
    pub fn record_id(path: &Path) -> String {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// What `butd export` requires of every record before a writer sees it: finite boxes and
    /// features, [`FEATURE_DIM`] features per box, label ids within the Visual Genome
    /// vocabularies and a usable image id ([`check_image_id`]).
    pub fn check_exportable(&self) -> Result<(), String> {
        check_image_id(&self.image_id)?;
        if self.feature_dim != FEATURE_DIM {
            return Err(format!(
                "features are {} wide, expected {FEATURE_DIM} (pool5_flat)",
                self.feature_dim
            ));
        }
        fn non_finite(name: &str, mut values: impl Iterator<Item = f32>) -> Result<(), String> {
            match values.position(|v| !v.is_finite()) {
                Some(i) => Err(format!(
                    "{name} holds a non-finite value (NaN or ±inf) at flat index {i}"
                )),
                None => Ok(()),
            }
        }
        non_finite("boxes", self.boxes.iter().flatten().copied())?;
        non_finite("features", self.features.iter().copied())?;
        for (name, ids, n) in [
            ("objects_id", &self.objects_id, NUM_OBJECTS),
            ("attrs_id", &self.attrs_id, NUM_ATTRIBUTES),
        ] {
            if let Some(bad) = ids.iter().flatten().find(|&&i| !(0..n).contains(&i)) {
                return Err(format!("{name} holds {bad}, outside 0..{n}"));
            }
        }
        for (name, conf) in [
            ("objects_conf", &self.objects_conf),
            ("attrs_conf", &self.attrs_conf),
        ] {
            non_finite(name, conf.iter().flatten().copied())?;
        }
        Ok(())
    }

    /// Reads a record file. A record without detections (the golden crash record, or K = 0)
    /// is [`FormatError::NoDetections`], so that callers can skip it.
    pub fn read_safetensors(path: &Path, policy: &IdPolicy) -> Result<Record, FormatError> {
        let file = File::open(path).map_err(FormatError::io(path))?;
        // SAFETY: the map is read-only and dropped before returning; records are written by
        // rename, never modified in place.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(FormatError::io(path))?;
        let bad = |message: String| record_error(path, message);
        let (_, header) = SafeTensors::read_metadata(&map)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let st = SafeTensors::deserialize(&map)
            .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
        let r = RecordFile {
            path,
            st: &st,
            metadata: header.metadata().clone().unwrap_or_default(),
        };
        let boxes = r.boxes()?;
        let k = boxes.len();
        let (features, feature_dim) = r.features(k)?;
        let (conf, soft_labels) = r.uniter_view(k)?;
        let image_id = policy.image_id(&Record::record_id(path)).map_err(bad)?;
        Ok(Record {
            image_id,
            image_h: r.dim(meta::ORIG_H)?,
            image_w: r.dim(meta::ORIG_W)?,
            boxes,
            features,
            feature_dim,
            objects_id: r.per_box(t::OBJECTS_ID, Dtype::I64, k, i64_le)?,
            objects_conf: r.per_box(t::OBJECTS_CONF, Dtype::F32, k, f32_le)?,
            attrs_id: r.per_box(t::ATTRS_ID, Dtype::I64, k, i64_le)?,
            attrs_conf: r.per_box(t::ATTRS_CONF, Dtype::F32, k, f32_le)?,
            conf,
            soft_labels,
        })
    }
}

fn record_error(path: &Path, message: String) -> FormatError {
    FormatError::Record {
        path: path.to_path_buf(),
        message,
    }
}

/// A record file being read: its tensors, its metadata and the path every error names.
struct RecordFile<'a> {
    path: &'a Path,
    st: &'a SafeTensors<'a>,
    metadata: HashMap<String, String>,
}

impl RecordFile<'_> {
    fn tensor(&self, name: &str) -> Option<TensorView<'_>> {
        self.st.tensor(name).ok()
    }

    /// The kept boxes, K × 4; none (no `boxes` tensor, or K = 0) is
    /// [`FormatError::NoDetections`].
    fn boxes(&self) -> Result<Vec<[f32; 4]>, FormatError> {
        let no_detections = |reason: String| FormatError::NoDetections {
            path: self.path.to_path_buf(),
            reason,
        };
        let Some(view) = self.tensor(t::BOXES) else {
            let reason = self.metadata.get(meta::CAFFE_RESULT).cloned();
            return Err(no_detections(
                reason.unwrap_or_else(|| "no `boxes` tensor".into()),
            ));
        };
        let (_, flat) = values(
            self.path,
            t::BOXES,
            &view,
            Dtype::F32,
            &[None, Some(4)],
            f32_le,
        )?;
        if flat.is_empty() {
            return Err(no_detections("0 kept boxes".into()));
        }
        Ok(flat
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect())
    }

    /// The `features` rows of the `k` boxes and their width.
    fn features(&self, k: usize) -> Result<(Vec<f32>, usize), FormatError> {
        let view = self
            .tensor(t::FEATURES)
            .ok_or_else(|| record_error(self.path, "no `features` tensor".into()))?;
        let shape = &[Some(k), None];
        let (shape, features) = values(self.path, t::FEATURES, &view, Dtype::F32, shape, f32_le)?;
        Ok((features, shape[1]))
    }

    /// A per-box tensor of `k` values of `dtype`, when the record has it.
    fn per_box<T>(
        &self,
        name: &str,
        dtype: Dtype,
        k: usize,
        decode: impl Fn(&[u8]) -> T,
    ) -> Result<Option<Vec<T>>, FormatError> {
        self.tensor(name)
            .map(|v| values(self.path, name, &v, dtype, &[Some(k)], decode).map(|(_, x)| x))
            .transpose()
    }

    /// UNITER's per-region `conf` and `soft_labels`: `max_conf[keep]` and `cls_prob[keep]`
    /// (generate_npz.py) when the record has `keep` and those roi tensors; the record's own
    /// `soft_labels` tensor (`butd extract --soft-labels`) takes precedence.
    #[allow(clippy::type_complexity)]
    fn uniter_view(&self, k: usize) -> Result<(Option<Vec<f64>>, Option<Vec<f32>>), FormatError> {
        let (conf, gathered) = match self.per_box(t::KEEP, Dtype::I64, k, i64_le)? {
            None => (None, None),
            Some(keep) => self.gather_kept(&keep)?,
        };
        let soft_labels = match self.tensor(t::SOFT_LABELS) {
            Some(v) => {
                let shape = &[Some(k), None];
                let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
                Some(values(self.path, t::SOFT_LABELS, &v, Dtype::F16, shape, f16)?.1)
            }
            None => gathered,
        };
        Ok((conf, soft_labels))
    }

    /// `max_conf` and `cls_prob` rows at the `keep` indices, for the roi tensors present.
    #[allow(clippy::type_complexity)]
    fn gather_kept(
        &self,
        keep: &[i64],
    ) -> Result<(Option<Vec<f64>>, Option<Vec<f32>>), FormatError> {
        let path = self.path;
        let max_conf = self
            .tensor(t::MAX_CONF)
            .map(|v| values(path, t::MAX_CONF, &v, Dtype::F64, &[None], f64_le).map(|(_, x)| x))
            .transpose()?;
        let r = max_conf.as_ref().map(Vec::len);
        let cls_prob = self
            .tensor(t::CLS_PROB)
            .map(|v| values(path, t::CLS_PROB, &v, Dtype::F32, &[r, None], f32_le))
            .transpose()?;
        let rows = r.or(cls_prob.as_ref().map(|(s, _)| s[0])).unwrap_or(0);
        let keep: Vec<usize> = keep
            .iter()
            .map(|&i| usize::try_from(i).ok().filter(|&i| i < rows))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                record_error(path, format!("`keep` has an index outside the {rows} rois"))
            })?;
        let conf = max_conf.map(|m| keep.iter().map(|&i| m[i]).collect());
        let soft = cls_prob.map(|(shape, p)| {
            let c = shape[1];
            keep.iter()
                .flat_map(|&i| p[i * c..(i + 1) * c].iter().copied())
                .collect()
        });
        Ok((conf, soft))
    }

    /// An integer metadata value (`orig_h`, `orig_w`).
    fn dim(&self, key: &str) -> Result<usize, FormatError> {
        let bad = |message: String| record_error(self.path, message);
        let text = self
            .metadata
            .get(key)
            .ok_or_else(|| bad(format!("no `{key}` metadata")))?;
        text.parse()
            .map_err(|_| bad(format!("metadata `{key}` = {text:?} is not an integer")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_record_file_name_not_the_image_name() {
        assert_eq!(Record::record_id(Path::new("d/a_1.safetensors")), "a_1");
    }
}
