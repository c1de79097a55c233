//! The VQA HDF5 feature files (docs/formats.md (d)): hengyuan-hu/bottom-up-attention-vqa's
//! `detection_features_converter.py` (fixed boxes per image: `(N, K, D)` datasets) and
//! jnhwkim/ban-vqa's `adaptive_detection_features_converter.py` (`(total_boxes, D)` datasets
//! plus `pos_boxes`), each with its `<stem>_imgid2idx.pkl` index (int image id → image index).
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::FormatError;
use hdf5_reader::{Dataset, Hdf5File, SliceInfo, SliceInfoElem};

use crate::hdf5::{finish_file, Hdf5Dataset, Hdf5Dtype, SUPERBLOCK_LEN};
use crate::record::Record;

/// `[x1/w, y1/h, (x1/w)+(bw/w), (y1/h)+(bh/h), bw/w, bh/h]` with `bw = x2 − x1`, `bh = y2 − y1`,
/// computed as the VQA converter (and UNITER's `generate_npz.py`, which copies it) does: a
/// float32 box array divided by Python floats, so every step is a float32 operation (NumPy keeps
/// the array's dtype for a Python scalar), and the right edges are sums of the rounded
/// quotients, not `x2/w`.
pub fn normalized_box(b: &[f32; 4], image_w: usize, image_h: usize) -> [f32; 6] {
    let (w, h) = (image_w as f32, image_h as f32);
    let (sw, sh) = ((b[2] - b[0]) / w, (b[3] - b[1]) / h);
    let (sx, sy) = (b[0] / w, b[1] / h);
    [sx, sy, sx + sw, sy + sh, sw, sh]
}

/// Which converter's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VqaLayout {
    /// bottom-up-attention-vqa: every image has the same number of boxes; datasets
    /// `image_features (N, K, D)`, `image_bb (N, K, 4)`, `spatial_features (N, K, 6)`.
    Fixed,
    /// ban-vqa: `image_features (T, D)`, `image_bb (T, 4)`, `spatial_features (T, 6)` over all
    /// T boxes, and `pos_boxes (N, 2)` int32 `[start, end)` rows per image.
    Adaptive,
}

/// One image as the VQA datasets hold it.
#[derive(Debug, Clone, PartialEq)]
pub struct VqaImage {
    pub image_id: i64,
    /// `image_bb`: the TSV's pixel boxes.
    pub image_bb: Vec<[f32; 4]>,
    /// `spatial_features`: [`normalized_box`] of each box.
    pub spatial: Vec<[f32; 6]>,
    /// `image_features`, K × `feature_dim`.
    pub features: Vec<f32>,
    pub feature_dim: usize,
}

impl VqaImage {
    /// What the converters store for `r`; its image id must be an integer (the index pickle's
    /// keys are `int(image_id)`).
    pub fn from_record(r: &Record) -> Result<VqaImage, String> {
        let image_id = r.image_id.parse().map_err(|_| {
            "the VQA index maps integer image ids; use the int-suffix id policy or an id map"
                .to_string()
        })?;
        Ok(VqaImage {
            image_id,
            image_bb: r.boxes.clone(),
            spatial: r
                .boxes
                .iter()
                .map(|b| normalized_box(b, r.image_w, r.image_h))
                .collect(),
            features: r.features.clone(),
            feature_dim: r.feature_dim,
        })
    }
}

/// `data/train36.hdf5` → `data/train36_imgid2idx.pkl` (both converters' naming).
pub fn imgid2idx_path(hdf5: &Path) -> PathBuf {
    let stem = hdf5
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    hdf5.with_file_name(format!("{stem}_imgid2idx.pkl"))
}

/// The pickle of `{image_id: index}` in insertion order (protocol 2, which Python 2's cPickle
/// and Python 3 both load).
fn pickle_index(ids: &[i64]) -> Vec<u8> {
    struct Index<'a>(&'a [i64]);
    impl serde::Serialize for Index<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().enumerate().map(|(idx, id)| (id, idx as i64)))
        }
    }
    serde_pickle::to_vec(&Index(ids), serde_pickle::SerOptions::new().proto_v2())
        .expect("pickling ints cannot fail")
}

fn f32_bytes(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(f32::to_le_bytes).collect()
}

/// Streams images into a VQA HDF5 file: features go straight to the file, boxes and spatial
/// features to temporary files appended at [`VqaHdf5Writer::finish`], so memory stays flat.
/// The file is built under a temporary name beside `path` and renamed into place.
pub struct VqaHdf5Writer {
    layout: VqaLayout,
    path: PathBuf,
    main: BufWriter<tempfile::NamedTempFile>,
    bb: BufWriter<File>,
    spatial: BufWriter<File>,
    ids: Vec<i64>,
    seen: HashSet<i64>,
    /// `(K, D)` of the first image: fixed for every image in the fixed layout, D for all.
    shape: Option<(usize, usize)>,
    total_boxes: u64,
    pos_boxes: Vec<[i32; 2]>,
}

impl VqaHdf5Writer {
    pub fn create(path: &Path, layout: VqaLayout) -> Result<Self, FormatError> {
        let dir = crate::fs::parent_dir(path);
        let tmp = crate::fs::temp_beside(path)?;
        let mut main = BufWriter::with_capacity(1 << 20, tmp);
        main.write_all(&[0u8; SUPERBLOCK_LEN as usize])
            .map_err(FormatError::io(path))?;
        let side = || {
            tempfile::tempfile_in(dir)
                .map(|f| BufWriter::with_capacity(1 << 20, f))
                .map_err(FormatError::io(dir))
        };
        Ok(VqaHdf5Writer {
            layout,
            path: path.to_path_buf(),
            main,
            bb: side()?,
            spatial: side()?,
            ids: Vec::new(),
            seen: HashSet::new(),
            shape: None,
            total_boxes: 0,
            pos_boxes: Vec::new(),
        })
    }

    pub fn write(&mut self, r: &Record) -> Result<(), FormatError> {
        let unsupported = |message: String| FormatError::Unsupported {
            path: self.path.clone(),
            image_id: r.image_id.clone(),
            message,
        };
        let image = VqaImage::from_record(r).map_err(unsupported)?;
        if self.seen.contains(&image.image_id) {
            return Err(unsupported(
                "image id already written (the index maps each id to one row)".into(),
            ));
        }
        let k = image.image_bb.len();
        let (k0, d0) = *self.shape.get_or_insert((k, image.feature_dim));
        if image.feature_dim != d0 || (self.layout == VqaLayout::Fixed && k != k0) {
            return Err(unsupported(format!(
                "{k} boxes × {} features, but the first image had {k0} × {d0}{}",
                image.feature_dim,
                if self.layout == VqaLayout::Fixed {
                    " (the fixed layout needs equal counts; use the adaptive one)"
                } else {
                    ""
                }
            )));
        }
        let end = self.total_boxes + k as u64;
        let start = i32::try_from(self.total_boxes).ok();
        let (Some(start), Ok(end32)) = (start, i32::try_from(end)) else {
            return Err(unsupported(
                "more than 2^31 boxes in all: pos_boxes is int32".into(),
            ));
        };
        let io = FormatError::io(&self.path);
        self.main
            .write_all(&f32_bytes(image.features.iter().copied()))
            .map_err(io)?;
        self.bb
            .write_all(&f32_bytes(image.image_bb.iter().flatten().copied()))
            .map_err(FormatError::io(&self.path))?;
        self.spatial
            .write_all(&f32_bytes(image.spatial.iter().flatten().copied()))
            .map_err(FormatError::io(&self.path))?;
        self.pos_boxes.push([start, end32]);
        self.total_boxes = end;
        self.seen.insert(image.image_id);
        self.ids.push(image.image_id);
        Ok(())
    }

    /// Appends the box datasets, writes the HDF5 metadata, renames the file into place and
    /// writes the index pickle beside it; returns both paths.
    pub fn finish(self) -> Result<(PathBuf, PathBuf), FormatError> {
        let path = self.path;
        let io = || FormatError::io(&path);
        let (k, d) = self.shape.unwrap_or((0, 0));
        let (n, t) = (self.ids.len() as u64, self.total_boxes);
        let rows = |width: u64| match self.layout {
            VqaLayout::Fixed => vec![n, k as u64, width],
            VqaLayout::Adaptive => vec![t, width],
        };
        let mut main = self.main.into_inner().map_err(|e| FormatError::Io {
            path: path.clone(),
            error: e.into_error(),
        })?;
        let mut offset = SUPERBLOCK_LEN;
        let mut datasets = Vec::new();
        let mut add = |name: &str, dtype, shape: Vec<u64>| {
            let set = Hdf5Dataset {
                name: name.into(),
                dtype,
                shape,
                offset,
            };
            offset += set.byte_len();
            datasets.push(set);
        };
        add("image_features", Hdf5Dtype::F32, rows(d as u64));
        add("image_bb", Hdf5Dtype::F32, rows(4));
        add("spatial_features", Hdf5Dtype::F32, rows(6));
        if self.layout == VqaLayout::Adaptive {
            add("pos_boxes", Hdf5Dtype::I32, vec![n, 2]);
        }
        let file = main.as_file_mut();
        for side in [self.bb, self.spatial] {
            let mut side = side.into_inner().map_err(|e| FormatError::Io {
                path: path.clone(),
                error: e.into_error(),
            })?;
            side.seek(SeekFrom::Start(0)).map_err(io())?;
            std::io::copy(&mut side, file).map_err(io())?;
        }
        if self.layout == VqaLayout::Adaptive {
            let pos: Vec<u8> = self
                .pos_boxes
                .iter()
                .flatten()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            file.write_all(&pos).map_err(io())?;
        }
        let end = offset;
        finish_file(file, &datasets, end).map_err(io())?;
        crate::fs::persist(main, &path)?;
        let index = imgid2idx_path(&path);
        crate::fs::write_atomic(&index, &pickle_index(&self.ids))?;
        Ok((path, index))
    }
}

/// A VQA HDF5 file with its index pickle, read image by image: butd's own files and those the
/// converters write through h5py (its defaults: superblock version 0, symbol-table groups,
/// object-header continuation chunks; also chunked and gzip/shuffle-filtered datasets), read
/// with the pure-Rust `hdf5-reader`.
///
/// Both converters allocate their datasets before filling them (`len(imgids)` images, or
/// ban-vqa's hard-coded `known_num_boxes`), so the datasets may hold more rows than images
/// written: the index pickle says how many (`0..n`), and only those are read.
pub struct VqaHdf5 {
    path: PathBuf,
    layout: VqaLayout,
    features: Dataset,
    bb: Dataset,
    spatial: Dataset,
    /// Adaptive: `[start, end)` box rows per image; fixed: `[i, i + 1)` along the first axis.
    rows: Vec<(u64, u64)>,
    /// Image id per image index (from the pickle).
    ids: Vec<i64>,
    feature_dim: usize,
}

impl VqaHdf5 {
    /// Opens `path` and its `<stem>_imgid2idx.pkl`.
    pub fn open(path: &Path) -> Result<VqaHdf5, FormatError> {
        let err = |at: &str, m: String| FormatError::parse(path, at, m);
        let file = Hdf5File::open(path).map_err(|e| err("file", e.to_string()))?;
        let root = file
            .root_group()
            .map_err(|e| err("root group", e.to_string()))?;
        let names: Vec<String> = root
            .datasets()
            .map_err(|e| err("root group", e.to_string()))?
            .iter()
            .map(|d| d.name().to_string())
            .collect();
        let take = |name: &str| {
            if !names.iter().any(|n| n == name) {
                return Err(err(
                    "root group",
                    format!("no dataset `{name}` (has {names:?})"),
                ));
            }
            file.dataset(name).map_err(|e| err(name, e.to_string()))
        };
        let (features, bb, spatial) = (
            take("image_features")?,
            take("image_bb")?,
            take("spatial_features")?,
        );
        let pos = names
            .iter()
            .any(|n| n == "pos_boxes")
            .then(|| take("pos_boxes"))
            .transpose()?;
        let layout = if pos.is_some() {
            VqaLayout::Adaptive
        } else {
            VqaLayout::Fixed
        };
        let rank = if layout == VqaLayout::Fixed { 3 } else { 2 };
        let fshape = features.shape().to_vec();
        for (set, width) in [(&bb, 4), (&spatial, 6)] {
            let shape = set.shape();
            if shape.len() != rank
                || shape.last() != Some(&width)
                || shape[..rank - 1] != fshape[..rank - 1]
            {
                return Err(err(
                    set.name(),
                    format!("shape {shape:?} does not match image_features {fshape:?}"),
                ));
            }
        }
        if fshape.len() != rank {
            return Err(err(
                "image_features",
                format!("shape {fshape:?}: expected rank {rank} for the {layout:?} layout"),
            ));
        }
        let ids = read_index(&imgid2idx_path(path), fshape_rows(&fshape, &pos)?)?;
        let rows: Vec<(u64, u64)> = match &pos {
            None => (0..ids.len() as u64).map(|i| (i, i + 1)).collect(),
            Some(pos) => {
                let v: Vec<i32> = pos
                    .read_array::<i32>()
                    .map_err(|e| err("pos_boxes", e.to_string()))?
                    .iter()
                    .copied()
                    .collect();
                let rows: Vec<(u64, u64)> = v
                    .chunks_exact(2)
                    .take(ids.len())
                    .map(|p| (p[0].max(0) as u64, p[1].max(0) as u64))
                    .collect();
                // ban-vqa slices features[pos[i][0]:pos[i][1]]: contiguous, in order.
                let mut expect = 0;
                for (i, &(s, e)) in rows.iter().enumerate() {
                    if s != expect || e < s || e > fshape[0] {
                        return Err(err(
                            "pos_boxes",
                            format!(
                                "row {i} is [{s}, {e}), expected to start at {expect} and end \
                                 within the {} box rows",
                                fshape[0]
                            ),
                        ));
                    }
                    expect = e;
                }
                rows
            }
        };
        Ok(VqaHdf5 {
            path: path.to_path_buf(),
            layout,
            feature_dim: *fshape.last().unwrap_or(&0) as usize,
            features,
            bb,
            spatial,
            rows,
            ids,
        })
    }

    pub fn layout(&self) -> VqaLayout {
        self.layout
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The image id of each image index (the index pickle, inverted).
    pub fn image_ids(&self) -> &[i64] {
        &self.ids
    }

    /// Rows `start..end` along the first axis, whole along the others, as f32 in row-major
    /// order (the datasets are float32: h5py's `'f'`; another type is an error).
    fn read_rows(&self, set: &Dataset, (start, end): (u64, u64)) -> Result<Vec<f32>, FormatError> {
        let mut selections = vec![SliceInfoElem::Slice {
            start,
            end,
            step: 1,
        }];
        selections.extend(set.shape()[1..].iter().map(|&n| SliceInfoElem::Slice {
            start: 0,
            end: n,
            step: 1,
        }));
        let values = set
            .read_slice::<f32>(&SliceInfo { selections })
            .map_err(|e| FormatError::parse(&self.path, set.name(), e.to_string()))?;
        Ok(values.iter().copied().collect())
    }

    /// The image at index `idx` (the index pickle's value).
    pub fn image(&mut self, idx: usize) -> Result<VqaImage, FormatError> {
        let rows = self.rows[idx];
        let image_bb = self
            .read_rows(&self.bb, rows)?
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]])
            .collect();
        let spatial = self
            .read_rows(&self.spatial, rows)?
            .chunks_exact(6)
            .map(|s| [s[0], s[1], s[2], s[3], s[4], s[5]])
            .collect();
        Ok(VqaImage {
            image_id: self.ids[idx],
            image_bb,
            spatial,
            features: self.read_rows(&self.features, rows)?,
            feature_dim: self.feature_dim,
        })
    }
}

/// How many images the datasets have room for: the first axis of `image_features` (fixed) or
/// of `pos_boxes` (adaptive).
fn fshape_rows(features: &[u64], pos: &Option<Dataset>) -> Result<usize, FormatError> {
    Ok(match pos {
        None => features[0] as usize,
        Some(pos) => pos.shape().first().copied().unwrap_or(0) as usize,
    })
}

/// The pickled `{image_id: index}` as ids by index. Its n entries must map to the indices
/// `0..n` (the converters count images as they write them), and n ≤ `capacity` (the images
/// the datasets have room for).
fn read_index(path: &Path, capacity: usize) -> Result<Vec<i64>, FormatError> {
    let file = File::open(path).map_err(FormatError::io(path))?;
    let err = |m: String| FormatError::parse(path, "pickle", m);
    let map: BTreeMap<i64, i64> =
        serde_pickle::from_reader(BufReader::new(file), serde_pickle::DeOptions::new())
            .map_err(|e| err(format!("not a dict of ints: {e}")))?;
    let n = map.len();
    if n > capacity {
        return Err(err(format!(
            "{n} image ids, but the HDF5 datasets hold {capacity} images"
        )));
    }
    let mut ids = vec![None; n];
    for (id, idx) in map {
        let slot = usize::try_from(idx)
            .ok()
            .and_then(|i| ids.get_mut(i))
            .ok_or_else(|| err(format!("index {idx} outside 0..{n}")))?;
        if slot.replace(id).is_some() {
            return Err(err(format!("index {idx} appears twice")));
        }
    }
    ids.into_iter()
        .enumerate()
        .map(|(i, id)| id.ok_or_else(|| err(format!("no image id maps to index {i}"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, k: usize) -> Record {
        Record {
            image_id: id.into(),
            image_h: 30,
            image_w: 45,
            boxes: (0..k).map(|i| [i as f32, 1.0, 40.5, 29.0]).collect(),
            features: (0..k * 3).map(|i| i as f32 * 0.5).collect(),
            feature_dim: 3,
            objects_id: None,
            objects_conf: None,
            attrs_id: None,
            attrs_conf: None,
            conf: None,
            soft_labels: None,
        }
    }

    #[test]
    fn both_layouts_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        for (layout, counts) in [
            (VqaLayout::Fixed, [2, 2, 2]),
            (VqaLayout::Adaptive, [2, 5, 1]),
        ] {
            let path = dir.path().join(format!("{layout:?}.hdf5"));
            let records: Vec<Record> = counts
                .iter()
                .enumerate()
                .map(|(i, &k)| record(&(100 + i).to_string(), k))
                .collect();
            let mut w = VqaHdf5Writer::create(&path, layout).unwrap();
            for r in &records {
                w.write(r).unwrap();
            }
            let (_, index) = w.finish().unwrap();
            assert_eq!(index, dir.path().join(format!("{layout:?}_imgid2idx.pkl")));
            let mut h = VqaHdf5::open(&path).unwrap();
            assert_eq!((h.layout(), h.len()), (layout, 3));
            for (i, r) in records.iter().enumerate() {
                assert_eq!(h.image(i).unwrap(), VqaImage::from_record(r).unwrap());
            }
        }
    }

    #[test]
    fn fixed_layout_refuses_unequal_counts_and_ids_must_be_ints() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = VqaHdf5Writer::create(&dir.path().join("x.hdf5"), VqaLayout::Fixed).unwrap();
        w.write(&record("1", 2)).unwrap();
        let e = w.write(&record("2", 3)).unwrap_err().to_string();
        assert!(e.contains("adaptive"), "{e}");
        assert!(w
            .write(&record("coffee", 2))
            .unwrap_err()
            .to_string()
            .contains("int-suffix"));
        assert!(w
            .write(&record("1", 2))
            .unwrap_err()
            .to_string()
            .contains("already"));
    }

    #[test]
    fn right_edges_are_sums_of_rounded_quotients() {
        let b = [1.0f32, 2.0, 40.3, 29.7];
        let n = normalized_box(&b, 45, 30);
        assert_eq!(n[2], 1.0f32 / 45.0 + (40.3f32 - 1.0) / 45.0);
        assert_eq!(n[4], (40.3f32 - 1.0) / 45.0);
    }
}
