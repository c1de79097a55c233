//! `butd.convert`: a caffemodel through a mapping, as `butd convert` runs it (same strict
//! plan, same writer), to numpy arrays in target order and/or a safetensors file.
use std::path::PathBuf;

use anyhow::{bail, Context};
use butd_caffe::CaffeModel;
use butd_mapping::{FloatDtype, Inventory, Mapping, Plan, Tensor, WriteOptions};
use ndarray::ArrayD;
use numpy::{Element, PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{catch, guard};

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    Ok(())
}

/// Returns `{key: numpy array}` in the target's key order when `arrays` is true, else `None`;
/// writes `output` (safetensors, atomically) when given. Strict like the CLI: any problem of
/// the plan is an error listing every problem, and nothing is written.
#[pyfunction]
#[pyo3(signature = (caffemodel, mapping = "caffe-to-hf-frcnn".to_string(), output = None,
    dtype = "f32".to_string(), arrays = true))]
fn convert(
    py: Python<'_>,
    caffemodel: PathBuf,
    mapping: String,
    output: Option<PathBuf>,
    dtype: String,
    arrays: bool,
) -> PyResult<Option<Bound<'_, PyDict>>> {
    let (model, mapping, plan) = guard(py, || {
        let model = CaffeModel::open(&caffemodel).context("reading the model")?;
        let mapping = Mapping::load(&mapping).context("reading the mapping")?;
        let target = mapping
            .target_manifest()
            .context("reading the target manifest")?;
        let plan = Plan::new(&mapping, &Inventory::of(&model), &target);
        plan.check()?;
        if let Some(out) = &output {
            let float = match dtype.as_str() {
                "f32" => FloatDtype::F32,
                "f16" => FloatDtype::F16,
                other => bail!("dtype {other:?}: expected \"f32\" or \"f16\""),
            };
            let options = WriteOptions::stamped(float, &caffemodel);
            plan.write_safetensors(&mapping, &model, out, &options)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        Ok((model, mapping, plan))
    })?;
    if !arrays {
        return Ok(None);
    }
    let dict = PyDict::new(py);
    for out in &plan.outputs {
        let tensor = guard(py, || Ok(plan.tensor(&mapping, &model, out)))?;
        catch(|| {
            match tensor {
                Tensor::F32(a) => dict.set_item(&out.key, numpy_array(py, a)?)?,
                Tensor::I64(a) => dict.set_item(&out.key, numpy_array(py, a)?)?,
            }
            Ok(())
        })?;
    }
    Ok(Some(dict))
}

/// The array in standard layout (a transform may leave a permuted view), moved into numpy.
fn numpy_array<T: Element + Clone>(py: Python<'_>, a: ArrayD<T>) -> PyResult<Bound<'_, PyAny>> {
    let shape = a.shape().to_vec();
    let (values, _) = a
        .as_standard_layout()
        .into_owned()
        .into_raw_vec_and_offset();
    Ok(PyArray1::from_vec(py, values).reshape(shape)?.into_any())
}
