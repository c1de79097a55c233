//! `butd.Extractor`: the reference network (`butd_model::Detector`) on paths or decoded images,
//! with the selection options of `butd extract` and, optionally, its records.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{anyhow, bail};
use butd_model::detector::{parse_device, DetectError, DetectOptions, Detection, Detector};
use butd_model::precision::Precision;
use butd_model::record::{write_no_proposals_record, write_record, RecordInfo};
use butd_preprocess::ImageBgr;
use indicatif::{ProgressBar, ProgressStyle};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray3, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{catch, guard};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Extractor>()?;
    m.add_class::<ExtractMany>()?;
    Ok(())
}

/// A loaded detector and the per-image options. `frozen` (shared by reference between Python
/// threads); the detector sits behind a mutex because tch tensors are `Send` but not `Sync`.
#[pyclass(module = "butd._butd", name = "_Extractor", frozen)]
pub struct Extractor {
    detector: Mutex<Detector>,
    opts: DetectOptions,
    info: RecordInfo,
}

/// Where an image comes from.
enum Image {
    File(PathBuf),
    /// Decoded by the caller (cv2 / PIL), with the name its record states.
    Decoded(ImageBgr, String),
}

impl Extractor {
    /// One image through the network; with `record`, its record as `butd extract` writes it
    /// (a "no proposals" record too, before that error is returned).
    fn run(&self, image: Image, record: Option<&Path>) -> anyhow::Result<Detection> {
        let (decoded, name) = match image {
            Image::File(path) => {
                let name = path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                (butd_preprocess::decode_file(&path)?, name)
            }
            Image::Decoded(image, name) => (image, name),
        };
        let info = RecordInfo {
            image_name: name,
            ..self.info.clone()
        };
        let detector = self
            .detector
            .lock()
            .map_err(|_| anyhow!("the detector was poisoned by an earlier panic"))?;
        match detector.detect(&decoded, &self.opts) {
            Ok(detection) => {
                if let Some(path) = record {
                    write_record(path, &detection, &info)?;
                }
                Ok(detection)
            }
            Err(e @ DetectError::NoProposals { input, .. }) => {
                if let Some(path) = record {
                    // Without the early activations (only `--dump-activations` records hold them).
                    write_no_proposals_record(path, &input, None, &e.to_string(), &info)?;
                }
                Err(e.into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

#[pymethods]
impl Extractor {
    #[new]
    #[pyo3(signature = (weights, device = "cpu", *, precision = "exact", min_boxes = 10,
        max_boxes = 100, conf_thresh = 0.2, fixed = None, roi_chunk = None, threads = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        weights: PathBuf,
        device: &str,
        precision: &str,
        min_boxes: usize,
        max_boxes: usize,
        conf_thresh: f64,
        fixed: Option<usize>,
        roi_chunk: Option<usize>,
        threads: Option<usize>,
    ) -> PyResult<Self> {
        let device = device.to_string();
        let precision = precision.to_string();
        guard(py, move || {
            let dev = parse_device(&device).map_err(|e| anyhow!("device: {e}"))?;
            let precision: Precision = precision.parse().map_err(|e| anyhow!("precision: {e}"))?;
            precision
                .configure(dev)
                .map_err(|e| anyhow!("precision: {e}"))?;
            let select = butd_extract::selection(fixed, min_boxes, max_boxes, conf_thresh)?;
            let detector = Detector::load_with_precision(&weights, dev, precision)?;
            let info = butd_extract::record_info(dev, &weights, &select, precision)?;
            if let Some(n) = threads {
                // After the load, which sets the default (all cores), as `butd extract` does.
                butd_model::tch::set_num_threads(n.max(1) as i32);
            }
            Ok(Extractor {
                detector: Mutex::new(detector),
                opts: DetectOptions {
                    select,
                    roi_chunk,
                    ..DetectOptions::default()
                },
                info,
            })
        })
    }

    /// Decodes `path` as `cv2.imread` does and runs the network.
    #[pyo3(signature = (path, record = None))]
    fn extract_path<'py>(
        &self,
        py: Python<'py>,
        path: PathBuf,
        record: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let detection = guard(py, || self.run(Image::File(path), record.as_deref()))?;
        detection_dict(py, detection)
    }

    /// Runs the network on an H×W×3 uint8 BGR array (as `cv2.imread` returns it).
    #[pyo3(signature = (image, name = String::new(), record = None))]
    fn extract_array<'py>(
        &self,
        py: Python<'py>,
        image: PyReadonlyArray3<'py, u8>,
        name: String,
        record: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let decoded = catch(|| bgr_image(&image))?;
        let detection = guard(py, || {
            self.run(Image::Decoded(decoded, name), record.as_deref())
        })?;
        detection_dict(py, detection)
    }
}

/// The one copy of an image handed in as an array: into the `ImageBgr` the pipeline owns.
fn bgr_image(image: &PyReadonlyArray3<'_, u8>) -> anyhow::Result<ImageBgr> {
    let shape = image.shape();
    let (height, width) = (shape[0], shape[1]);
    if shape[2] != 3 || height == 0 || width == 0 {
        bail!("image array of shape {shape:?}: expected H×W×3 uint8 BGR (as cv2.imread gives it)");
    }
    // `as_slice` also accepts Fortran order (memory in column-major order): only C order is
    // taken as it lies, anything else in logical (row-major) order.
    let data = match image.as_slice() {
        Ok(contiguous) if image.is_c_contiguous() => contiguous.to_vec(),
        _ => image.as_array().iter().copied().collect(),
    };
    Ok(ImageBgr {
        height,
        width,
        data,
    })
}

/// The detection as numpy arrays, named as in the record (and LXMERT's TSV). The `Vec`s move
/// into their arrays without a copy.
fn detection_dict(py: Python<'_>, det: Detection) -> PyResult<Bound<'_, PyDict>> {
    catch(|| {
        let k = det.selection.keep.len();
        let dim = if k == 0 { 0 } else { det.features.len() / k };
        let boxes: Vec<f32> = det.boxes.iter().flatten().copied().collect();
        let keep: Vec<i64> = det.selection.keep.iter().map(|&i| i as i64).collect();
        let vocab = butd_vocab::Vocab::builtin();
        let objects: Vec<String> = det.objects_id.iter().map(|&i| vocab.object(i)).collect();
        let attributes: Vec<String> = det.attrs_id.iter().map(|&i| vocab.attribute(i)).collect();
        let d = PyDict::new(py);
        d.set_item("boxes", PyArray1::from_vec(py, boxes).reshape([k, 4])?)?;
        // Moved, not copied: the array owns the detector's Vec; reshape makes a view.
        d.set_item(
            "features",
            PyArray1::from_vec(py, det.features).reshape([k, dim])?,
        )?;
        d.set_item("objects_id", PyArray1::from_vec(py, det.objects_id))?;
        d.set_item("objects_conf", PyArray1::from_vec(py, det.objects_conf))?;
        d.set_item("attrs_id", PyArray1::from_vec(py, det.attrs_id))?;
        d.set_item("attrs_conf", PyArray1::from_vec(py, det.attrs_conf))?;
        d.set_item("keep", PyArray1::from_vec(py, keep))?;
        d.set_item("max_conf", PyArray1::from_vec(py, det.selection.max_conf))?;
        // Words for the ids (butd-vocab: `object#i` / `attr#i` where the vocabulary has none).
        d.set_item("objects", objects)?;
        d.set_item("attributes", attributes)?;
        d.set_item("image_h", det.input.orig_h)?;
        d.set_item("image_w", det.input.orig_w)?;
        d.set_item("im_scale", det.input.im_scale)?;
        d.set_item("num_rois", det.rois.len())?;
        Ok(d)
    })
}

/// `Extractor.extract_many`'s iterator: one image per `__next__`, Ctrl-C checked between images,
/// a progress bar on stderr (drawn only on a terminal).
#[pyclass(module = "butd._butd", name = "_ExtractMany")]
pub struct ExtractMany {
    extractor: Py<Extractor>,
    paths: Vec<PathBuf>,
    next: usize,
    out: Option<PathBuf>,
    bar: ProgressBar,
}

#[pymethods]
impl ExtractMany {
    #[new]
    #[pyo3(signature = (extractor, paths, out = None, progress = true))]
    fn new(
        extractor: Py<Extractor>,
        paths: Vec<PathBuf>,
        out: Option<PathBuf>,
        progress: bool,
    ) -> PyResult<Self> {
        if let Some(dir) = &out {
            catch(|| {
                std::fs::create_dir_all(dir)
                    .map_err(|e| anyhow!("{}: cannot create the folder: {e}", dir.display()))
            })?;
        }
        let bar = if progress {
            ProgressBar::new(paths.len() as u64)
        } else {
            ProgressBar::hidden()
        };
        bar.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} images [{elapsed_precise} < ETA {eta_precise}, {per_sec}] {msg}",
            )
            .expect("the template is valid"),
        );
        Ok(ExtractMany {
            extractor,
            paths,
            next: 0,
            out,
            bar,
        })
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// `(path, dict)` for the next image, or `(path, message)` when it failed.
    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<(PathBuf, Bound<'py, PyAny>)>> {
        // Ctrl-C during the previous image is raised here, between images.
        py.check_signals()?;
        let Some(path) = self.paths.get(self.next).cloned() else {
            self.bar.finish_and_clear();
            return Ok(None);
        };
        self.next += 1;
        self.bar.set_message(path.display().to_string());
        let record = self.out.as_ref().map(|dir| {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            dir.join(format!("{stem}.safetensors"))
        });
        let extractor = self.extractor.get();
        let result = guard(py, || {
            extractor.run(Image::File(path.clone()), record.as_deref())
        });
        self.bar.inc(1);
        let value = match result {
            Ok(detection) => detection_dict(py, detection)?.into_any(),
            Err(e) => e.value(py).str()?.into_any(),
        };
        Ok(Some((path, value)))
    }
}
