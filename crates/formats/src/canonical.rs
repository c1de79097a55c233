//! The downstream feature formats (`docs/formats.md` (a)–(d)) read back as tensor records
//! ([`crate::tensors::Record`]): the canonical final record (`boxes`, `features`, `objects_id`/`objects_conf`,
//! `attrs_id`/`attrs_conf`, the image size as `orig_h`/`orig_w` metadata) with each format's own
//! conventions undone. What a format cannot hold is listed by [`Format::carries`] and explained
//! by [`Format::notes`].
use std::path::Path;

use butd_host::select::argmax_skipping_background;
use butd_record::{meta, tensors as t};
use safetensors::Dtype;
use serde::{Deserialize, Serialize};

use crate::resolution::{Half, Resolution};
use crate::tensors::{Record, Tensor};
use crate::{NdArray, NpyDtype, UniterEntry, UniterOptions, VqaImage};

/// Where a side's images come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A directory of `<image stem>.safetensors` records (docs/verify.md §1)
    Records,
    /// (a) bottom-up-attention `generate_tsv.py` TSV (image_id, image_w, image_h, num_boxes, boxes, features)
    ButdTsv,
    /// (b) LXMERT obj36 TSV (img_id, img_h, img_w, objects/attrs ids and confs, num_boxes, boxes, features)
    LxmertTsv,
    /// (c) UNITER/VILLA img_db: the LMDB of `convert_imgdir.py`, or the split directory holding one
    UniterLmdb,
    /// (c) stage 1: a directory of UNITER `generate_npz.py` npz files
    UniterNpz,
    /// (d) bottom-up-attention-vqa / ban-vqa HDF5, with its `<stem>_imgid2idx.pkl` beside it
    VqaHdf5,
}

/// The canonical final record's tensors.
const FINAL_RECORD: [&str; 6] = [
    t::BOXES,
    t::FEATURES,
    t::OBJECTS_ID,
    t::OBJECTS_CONF,
    t::ATTRS_ID,
    t::ATTRS_CONF,
];

/// Image size used to de-normalise UNITER boxes when neither side states one: boxes are then
/// compared in thousandths of the image.
pub const NOMINAL_SIZE: usize = 1000;

/// Relative slack on a de-normalised UNITER box coordinate: `norm_bb` is computed in float32
/// (`x1/w`, then `x1/w + (x2 − x1)/w`, docs/formats.md (c)) before the float16 cast, a few float32
/// rounding steps (2^-24 each) that the float16 interval alone does not cover.
const NORMALISATION_SLACK: f64 = 4.0 / (1u64 << 24) as f64;

impl Format {
    pub const ALL: [Format; 6] = [
        Format::Records,
        Format::ButdTsv,
        Format::LxmertTsv,
        Format::UniterLmdb,
        Format::UniterNpz,
        Format::VqaHdf5,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::Records => "records",
            Format::ButdTsv => "butd-tsv",
            Format::LxmertTsv => "lxmert-tsv",
            Format::UniterLmdb => "uniter-lmdb",
            Format::UniterNpz => "uniter-npz",
            Format::VqaHdf5 => "vqa-hdf5",
        }
    }

    pub fn is_tsv(self) -> bool {
        matches!(self, Format::ButdTsv | Format::LxmertTsv)
    }

    pub fn is_uniter(self) -> bool {
        matches!(self, Format::UniterLmdb | Format::UniterNpz)
    }

    /// Whether its image ids are integers (COCO/VG ids) rather than image file stems.
    pub fn integer_ids(self) -> bool {
        matches!(self, Format::ButdTsv | Format::VqaHdf5)
    }

    /// The final-record tensors it holds; `None`: everything a record holds.
    pub fn carries(self) -> Option<&'static [&'static str]> {
        match self {
            Format::Records => None,
            Format::ButdTsv | Format::VqaHdf5 => Some(&FINAL_RECORD[..2]),
            Format::LxmertTsv => Some(&FINAL_RECORD),
            Format::UniterLmdb | Format::UniterNpz => Some(&[
                t::BOXES,
                t::FEATURES,
                t::OBJECTS_ID,
                t::OBJECTS_CONF,
                t::CONF,
                t::SOFT_LABELS,
            ]),
        }
    }

    pub fn holds(self, tensor: &str) -> bool {
        self.carries().is_none_or(|c| c.contains(&tensor))
    }

    /// What the format cannot hold and which of its conventions verify undoes.
    pub fn notes(self) -> Vec<String> {
        let lines: &[&str] = match self {
            Format::Records => &["every tensor of a record; paired by file stem"],
            Format::ButdTsv => &[
                "image_id (integer), image_w, image_h (width first), boxes and features float32",
                "no labels, confidences or activations; no image without detections",
            ],
            Format::LxmertTsv => &[
                "img_id (file stem), img_h, img_w (height first), objects_id / attrs_id int64 \
                 0-based, confidences, boxes and features float32",
                "no activations; no image without detections",
            ],
            Format::UniterLmdb | Format::UniterNpz => &[
                "float16: values compared up to their float16 rounding intervals",
                "no image size: norm_bb de-normalised with the paired record's size",
                "objects_id / objects_conf = argmax / max of soft_labels[:, 1:]; no attributes",
                "no image without detections",
            ],
            Format::VqaHdf5 => &[
                "image_bb (pixels) and image_features float32; no labels",
                "image size recovered from spatial_features; no image without detections",
            ],
        };
        let mut out: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
        if self == Format::UniterLmdb {
            out.push(
                "only the first nbb rows per image (convert_imgdir.py); the other side is cut to \
                 the nbb its conf gives under the DB name's conf_th / min_bb / max_bb"
                    .into(),
            );
        }
        out
    }
}

fn f32_tensor(shape: Vec<usize>, values: Vec<f64>) -> Tensor {
    Tensor {
        dtype: Dtype::F32,
        shape,
        values,
        resolution: None,
    }
}

fn i64_tensor(values: Vec<i64>) -> Tensor {
    Tensor {
        dtype: Dtype::I64,
        shape: vec![values.len()],
        values: values.into_iter().map(|v| v as f64).collect(),
        resolution: None,
    }
}

fn widen(values: &[f32]) -> Vec<f64> {
    values.iter().map(|&v| f64::from(v)).collect()
}

/// A record read from `path` holding float32 `boxes` (pixels, K × 4) and `features` (K × `dim`),
/// what every format stores.
fn boxes_and_features(path: &Path, boxes: &[[f32; 4]], features: &[f32], dim: usize) -> Record {
    let k = boxes.len();
    let mut rec = Record {
        path: path.to_path_buf(),
        ..Record::default()
    };
    let flat: Vec<f32> = boxes.iter().flatten().copied().collect();
    rec.tensors
        .insert(t::BOXES.into(), f32_tensor(vec![k, 4], widen(&flat)));
    rec.tensors.insert(
        t::FEATURES.into(),
        f32_tensor(vec![k, dim], widen(features)),
    );
    rec
}

/// A TSV row (docs/formats.md (a), (b)), as the format readers give it.
pub fn from_tsv(r: &crate::Record, path: &Path) -> Record {
    let mut rec = boxes_and_features(path, &r.boxes, &r.features, r.feature_dim);
    for (name, ids) in [(t::OBJECTS_ID, &r.objects_id), (t::ATTRS_ID, &r.attrs_id)] {
        if let Some(ids) = ids {
            rec.tensors.insert(name.into(), i64_tensor(ids.clone()));
        }
    }
    for (name, conf) in [
        (t::OBJECTS_CONF, &r.objects_conf),
        (t::ATTRS_CONF, &r.attrs_conf),
    ] {
        if let Some(conf) = conf {
            rec.tensors
                .insert(name.into(), f32_tensor(vec![conf.len()], widen(conf)));
        }
    }
    set_size(&mut rec, r.image_h, r.image_w);
    rec.metadata.insert("image_id".into(), r.image_id.clone());
    rec
}

fn set_size(rec: &mut Record, h: usize, w: usize) {
    rec.metadata.insert(meta::ORIG_H.into(), h.to_string());
    rec.metadata.insert(meta::ORIG_W.into(), w.to_string());
}

/// An npz / msgpack array's values and, for float16, that precision.
fn array_values(a: &NdArray) -> (Vec<f64>, Option<Half>) {
    let d = &a.data;
    let values = match a.dtype {
        NpyDtype::F16 => d
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        NpyDtype::F32 => d
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        NpyDtype::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect(),
        NpyDtype::I32 => d
            .chunks_exact(4)
            .map(|c| f64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        NpyDtype::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("chunks of 8")) as f64)
            .collect(),
        NpyDtype::Bool => d.iter().map(|&b| f64::from(b)).collect(),
    };
    (values, (a.dtype == NpyDtype::F16).then_some(Half::F16))
}

/// A 2-d array with `rows` rows (any when `None`) and its `(rows, columns)`, or why not.
fn matrix<'e>(
    entry: &'e UniterEntry,
    name: &str,
    rows: Option<usize>,
) -> Result<(&'e NdArray, usize, usize), String> {
    let a = entry
        .get(name)
        .ok_or_else(|| format!("{}: no `{name}` array", entry.name))?;
    match a.shape[..] {
        [r, c] if rows.is_none_or(|k| k == r) => Ok((a, r, c)),
        _ => Err(format!(
            "{}: `{name}` has shape {:?}, expected ({}, n)",
            entry.name,
            a.shape,
            rows.map_or("k".into(), |k| k.to_string())
        )),
    }
}

/// A UNITER img_db / npz entry (docs/formats.md (c)). `size` = (height, width) de-normalises
/// `norm_bb` (UNITER stores no image size; the paired record's is used, else
/// [`NOMINAL_SIZE`]). float16 arrays keep that precision as the tensors' resolution.
pub fn from_uniter(
    entry: &UniterEntry,
    size: Option<(usize, usize)>,
    path: &Path,
) -> Result<Record, String> {
    let (norm_bb, k, bb_cols) = matrix(entry, "norm_bb", None)?;
    if bb_cols < 4 {
        return Err(format!(
            "{}: `norm_bb` has {bb_cols} columns, expected 6",
            entry.name
        ));
    }
    let (features, _, dim) = matrix(entry, "features", Some(k))?;
    let (h, w) = size.unwrap_or((NOMINAL_SIZE, NOMINAL_SIZE));
    let (h, w) = (h as f64, w as f64);
    let mut rec = Record {
        path: path.to_path_buf(),
        ..Record::default()
    };
    let with_half = |t: Tensor, half: Option<Half>, scales: Vec<f64>, slack_rel: f64| match half {
        Some(half) => t.with_resolution(Resolution {
            half,
            scales,
            slack_rel,
        }),
        None => t,
    };

    let (nb, half) = array_values(norm_bb);
    let boxes: Vec<f64> = nb
        .chunks_exact(bb_cols)
        .flat_map(|r| [r[0] * w, r[1] * h, r[2] * w, r[3] * h])
        .collect();
    let boxes = f32_tensor(vec![k, 4], boxes);
    rec.tensors.insert(
        t::BOXES.into(),
        with_half(boxes, half, vec![w, h], NORMALISATION_SLACK),
    );
    let (features, half) = array_values(features);
    rec.tensors.insert(
        t::FEATURES.into(),
        with_half(f32_tensor(vec![k, dim], features), half, vec![1.0], 0.0),
    );
    if entry.get("conf").is_some() {
        let (conf, rows, cols) = matrix(entry, "conf", Some(k))?;
        let (conf, half) = array_values(conf);
        if cols != 1 {
            return Err(format!(
                "{}: `conf` has shape ({rows}, {cols}), expected ({k}, 1)",
                entry.name
            ));
        }
        // float64 in the records (generate_tsv's max_conf), float16 here.
        let conf = Tensor {
            dtype: Dtype::F64,
            ..f32_tensor(vec![k], conf)
        };
        rec.tensors
            .insert(t::CONF.into(), with_half(conf, half, vec![1.0], 0.0));
    }
    if entry.get("soft_labels").is_some() {
        let (soft, _, cols) = matrix(entry, "soft_labels", Some(k))?;
        if cols < 2 {
            return Err(format!(
                "{}: `soft_labels` has {cols} columns (background + classes expected)",
                entry.name
            ));
        }
        let (soft, half) = array_values(soft);
        // LXMERT's convention, which the records follow: argmax over the classes, background
        // column 0 left out, first maximum on ties (np.argmax).
        let (ids, conf): (Vec<i64>, Vec<f64>) = soft
            .chunks_exact(cols)
            .map(|row| {
                let (c, v) = argmax_skipping_background(row).expect("cols >= 2");
                (c as i64, v)
            })
            .unzip();
        rec.tensors.insert(t::OBJECTS_ID.into(), i64_tensor(ids));
        rec.tensors.insert(
            t::OBJECTS_CONF.into(),
            with_half(f32_tensor(vec![k], conf), half, vec![1.0], 0.0),
        );
        rec.tensors.insert(
            t::SOFT_LABELS.into(),
            with_half(f32_tensor(vec![k, cols], soft), half, vec![1.0], 0.0),
        );
    }
    rec.metadata.insert("image_id".into(), entry.name.clone());
    Ok(rec)
}

/// A VQA HDF5 image (docs/formats.md (d)). The files store no image size, but `spatial_features`
/// holds `bw / w` next to the pixel box: the widest and tallest boxes give w and h back.
pub fn from_vqa(img: &VqaImage, path: &Path) -> Record {
    let mut rec = boxes_and_features(path, &img.image_bb, &img.features, img.feature_dim);
    if let Some((h, w)) = vqa_image_size(img) {
        set_size(&mut rec, h, w);
    }
    rec.metadata
        .insert("image_id".into(), img.image_id.to_string());
    rec
}

/// `(h, w)` from the pixel extent of the widest (tallest) box over its normalised extent
/// (`spatial[4] = bw / w`, `spatial[5] = bh / h`, float32): the relative error is a few 2^-24,
/// far below the half pixel that rounding to an integer forgives.
pub fn vqa_image_size(img: &VqaImage) -> Option<(usize, usize)> {
    let dim = |extent: usize, norm: usize| -> Option<usize> {
        let (px, frac) = img
            .image_bb
            .iter()
            .zip(&img.spatial)
            .map(|(b, s)| (f64::from(b[extent + 2] - b[extent]), f64::from(s[norm])))
            .filter(|&(px, frac)| px > 0.0 && frac > 0.0)
            .max_by(|a, b| a.0.total_cmp(&b.0))?;
        let size = (px / frac).round();
        (size >= 1.0 && size.is_finite()).then_some(size as usize)
    };
    Some((dim(1, 5)?, dim(0, 4)?))
}

/// What a record directory's record holds of UNITER's per-region `conf` and `soft_labels`:
/// `max_conf[keep]` and `cls_prob[keep]` (generate_npz.py), when it has those tensors.
pub fn add_uniter_view(rec: &mut Record) {
    let Some(keep) = rec.get(t::KEEP) else {
        return;
    };
    let rows: Option<Vec<usize>> = keep
        .values
        .iter()
        .map(|&v| (v >= 0.0).then_some(v as usize))
        .collect();
    let Some(rows) = rows else {
        return;
    };
    let gather = |t: &Tensor| -> Option<Tensor> {
        let values: Option<Vec<f64>> = rows
            .iter()
            .map(|&r| (r < t.rows()).then(|| t.row(r).to_vec()))
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat());
        let mut shape = t.shape.clone();
        *shape.first_mut()? = rows.len();
        Some(Tensor {
            dtype: t.dtype,
            shape,
            values: values?,
            resolution: t.resolution.clone(),
        })
    };
    for (from, to) in [(t::MAX_CONF, t::CONF), (t::CLS_PROB, t::SOFT_LABELS)] {
        if rec.get(to).is_none() {
            if let Some(t) = rec.get(from).and_then(gather) {
                rec.tensors.insert(to.into(), t);
            }
        }
    }
}

/// Moves 1-based object / attribute ids (background at 0) to the records' 0-based convention.
pub fn shift_labels(rec: &mut Record, base: i64) {
    if base == 0 {
        return;
    }
    for name in [t::OBJECTS_ID, t::ATTRS_ID] {
        if let Some(t) = rec.tensors.get_mut(name) {
            for v in &mut t.values {
                *v -= base as f64;
            }
        }
    }
}

/// `convert_imgdir.py`'s options as its DB directory name spells them
/// (`feat_th{conf_th}_max{max_bb}_min{min_bb}`, `all`, `+_compressed`); `None` for
/// `feat_numbb{n}` (min_bb / max_bb are not in the name) and unknown names.
pub fn uniter_options_from_db_name(name: &str) -> Option<UniterOptions> {
    let (base, compress) = match name.strip_suffix("_compressed") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let mut o = UniterOptions {
        compress,
        ..UniterOptions::default()
    };
    if base == "all" {
        o.keep_all = true;
        return Some(o);
    }
    let rest = base.strip_prefix("feat_th")?;
    let (th, rest) = rest.split_once("_max")?;
    let (max, min) = rest.split_once("_min")?;
    o.conf_th = th.parse().ok()?;
    o.max_bb = max.parse().ok()?;
    o.min_bb = min.parse().ok()?;
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_names_give_the_options_back() {
        let o = uniter_options_from_db_name("feat_th0.2_max100_min10").unwrap();
        assert_eq!(
            (o.conf_th, o.max_bb, o.min_bb, o.keep_all),
            (0.2, 100, 10, false)
        );
        let o = uniter_options_from_db_name("feat_th-1.0_max36_min36_compressed").unwrap();
        assert_eq!((o.conf_th, o.max_bb, o.compress), (-1.0, 36, true));
        assert!(uniter_options_from_db_name("all").unwrap().keep_all);
        assert!(uniter_options_from_db_name("feat_numbb36").is_none());
        assert!(uniter_options_from_db_name("img_db").is_none());
    }

    #[test]
    fn vqa_size_comes_back_from_spatial_features() {
        let (w, h) = (451usize, 300usize);
        let boxes = [[0.0f32, 3.5, 449.75, 120.0], [10.0, 0.0, 30.0, 299.0]];
        let spatial = boxes
            .iter()
            .map(|b| crate::normalized_box(b, w, h))
            .collect();
        let img = VqaImage {
            image_id: 1,
            image_bb: boxes.to_vec(),
            spatial,
            features: vec![0.0; 4],
            feature_dim: 2,
        };
        assert_eq!(vqa_image_size(&img), Some((h, w)));
    }

    #[test]
    fn uniter_labels_are_argmax_over_the_classes() {
        let f16s =
            |v: &[f32]| -> Vec<half::f16> { v.iter().map(|&x| half::f16::from_f32(x)).collect() };
        // Row 0: background highest, then a tie between classes 1 and 2 (first wins).
        let soft = f16s(&[0.9, 0.05, 0.05, 0.0, 0.1, 0.3, 0.6, 0.0]);
        let entry = UniterEntry {
            name: "x.npz".into(),
            arrays: vec![
                (
                    "norm_bb".into(),
                    NdArray::f16(
                        &f16s(&[0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.2, 0.3, 0.4, 0.2, 0.2]),
                        &[2, 6],
                    ),
                ),
                (
                    "features".into(),
                    NdArray::f16(&f16s(&[1.0, 2.0, 3.0, 4.0]), &[2, 2]),
                ),
                ("soft_labels".into(), NdArray::f16(&soft, &[2, 4])),
            ],
        };
        let rec = from_uniter(&entry, Some((100, 200)), Path::new("db")).unwrap();
        assert_eq!(rec.get("objects_id").unwrap().values, [0.0, 1.0]);
        let b = rec.get("boxes").unwrap();
        assert_eq!(&b.values[..4], &[0.0, 0.0, 100.0, 50.0]);
        assert_eq!(b.resolution.as_ref().unwrap().scales, [200.0, 100.0]);
        assert!(rec.get("features").unwrap().resolution.is_some());
        assert!(from_uniter(&entry, None, Path::new("db")).is_ok());
    }
}
