//! `butd.verify`: the parity engine of `butd verify`, returning the report as `parity.json`'s
//! text (the Python package parses it into a `Report`) and optionally writing the report files.
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use butd_formats::IdPolicy;
use butd_verify::{verify as run_verify, Format, Options, Sample, SourceSpec, Thresholds};
use pyo3::prelude::*;

use crate::guard;

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(verify, m)?)?;
    Ok(())
}

fn format(name: Option<&str>) -> anyhow::Result<Option<Format>> {
    name.map(|n| {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == n)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::ALL.iter().map(|f| f.name()).collect();
                anyhow!("format {n:?}: expected one of {}", names.join(", "))
            })
    })
    .transpose()
}

/// As `butd verify --golden G --candidate C`: thresholds from `thresholds`, else `./parity.toml`
/// when present, else the built-in ones. With `report_dir`, writes `parity.json` and
/// `parity.html` there. `common_only`: golden images without a candidate are counted, not
/// failed (`--common-only`). Returns parity.json's text.
#[pyfunction]
#[pyo3(signature = (golden, candidate, *, thresholds = None, golden_format = None,
    candidate_format = None, id_map = None, name_prefix = String::new(), golden_label_base = 0,
    candidate_label_base = 0, sample = None, seed = 0, detail = 1000, require_all = false,
    common_only = false, jobs = None, report_dir = None))]
#[allow(clippy::too_many_arguments)]
fn verify(
    py: Python<'_>,
    golden: PathBuf,
    candidate: PathBuf,
    thresholds: Option<PathBuf>,
    golden_format: Option<String>,
    candidate_format: Option<String>,
    id_map: Option<PathBuf>,
    name_prefix: String,
    golden_label_base: i64,
    candidate_label_base: i64,
    sample: Option<usize>,
    seed: u64,
    detail: usize,
    require_all: bool,
    common_only: bool,
    jobs: Option<usize>,
    report_dir: Option<PathBuf>,
) -> PyResult<String> {
    guard(py, move || {
        let mut th = match &thresholds {
            Some(p) => Thresholds::load(p)?,
            None if Path::new("parity.toml").is_file() => {
                Thresholds::load(Path::new("parity.toml"))?
            }
            None => Thresholds::default(),
        };
        th.required.all |= require_all;
        let spec = |path: &Path, format: Option<Format>, label_base: i64| SourceSpec {
            path: path.to_path_buf(),
            format,
            name_prefix: name_prefix.clone(),
            label_base,
        };
        let opts = Options {
            threads: jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            ids: id_map.as_deref().map(IdPolicy::load_map).transpose()?,
            sample: sample.map(|n| Sample { n, seed }),
            detail,
            common_only,
            progress: None,
        };
        let report = run_verify(
            &spec(
                &golden,
                format(golden_format.as_deref())?,
                golden_label_base,
            ),
            &spec(
                &candidate,
                format(candidate_format.as_deref())?,
                candidate_label_base,
            ),
            &th,
            &opts,
        )?;
        let json = report.to_json();
        if let Some(dir) = &report_dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, text) in [
                ("parity.json", json.clone()),
                ("parity.html", report.to_html()),
            ] {
                let path = dir.join(name);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
        }
        Ok(json)
    })
}
