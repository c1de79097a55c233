//! Shared helpers: locate the repository's `golden/`, build golden/candidate directories in a
//! temp dir.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use butd_verify::{compare_dirs_with, Dtype, Record, RegionSet, Report, Tensor, Thresholds};

pub fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden")
}

pub fn golden_record(stem: &str) -> Record {
    Record::open(&golden_dir().join(format!("{stem}.safetensors"))).unwrap()
}

/// A temp dir with `golden/` (links to the shared files of `stems`) and `candidate/` (the
/// records `candidates` maps to, written as safetensors).
pub struct Case {
    pub dir: tempfile::TempDir,
}

impl Case {
    pub fn new(stems: &[&str], candidates: &BTreeMap<String, Record>) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let (g, c) = (dir.path().join("golden"), dir.path().join("candidate"));
        std::fs::create_dir_all(&g).unwrap();
        std::fs::create_dir_all(&c).unwrap();
        for s in stems {
            let name = format!("{s}.safetensors");
            std::os::unix::fs::symlink(golden_dir().join(&name), g.join(&name)).unwrap();
        }
        for (stem, rec) in candidates {
            rec.write(&c.join(format!("{stem}.safetensors"))).unwrap();
        }
        Case { dir }
    }

    /// One image: golden `stem` against the candidate `rec`.
    pub fn single(stem: &str, rec: Record) -> Case {
        Case::new(&[stem], &BTreeMap::from([(stem.to_string(), rec)]))
    }

    /// Both sides written from records (a golden copy edited to stage a tie, say).
    pub fn from_records(
        golden: &BTreeMap<String, Record>,
        candidates: &BTreeMap<String, Record>,
    ) -> Case {
        let case = Case::new(&[], candidates);
        for (stem, rec) in golden {
            rec.write(&case.golden().join(format!("{stem}.safetensors")))
                .unwrap();
        }
        case
    }

    pub fn golden(&self) -> PathBuf {
        self.dir.path().join("golden")
    }

    pub fn candidate(&self) -> PathBuf {
        self.dir.path().join("candidate")
    }

    pub fn run(&self, th: &Thresholds) -> Report {
        compare_dirs_with(&self.golden(), &self.candidate(), th, 2).unwrap()
    }
}

/// One image: golden `stem`, candidate = the golden record after `edit`.
pub fn perturbed(stem: &str, edit: impl FnOnce(&mut Record)) -> Report {
    let mut rec = golden_record(stem);
    edit(&mut rec);
    Case::single(stem, rec).run(&Thresholds::default())
}

/// Replaces `name` by its rows `order` (row-major, any trailing shape).
pub fn take_rows(rec: &mut Record, name: &str, order: &[usize]) {
    let t = rec.tensors.get(name).unwrap().clone();
    let mut shape = t.shape.clone();
    shape[0] = order.len();
    let values: Vec<f64> = order.iter().flat_map(|&i| t.row(i).to_vec()).collect();
    rec.tensors.insert(
        name.to_string(),
        Tensor::new(name, t.dtype, shape, values).unwrap(),
    );
}

/// Applies `order` to every tensor of a region set that the record has.
pub fn take_set_rows(rec: &mut Record, set: RegionSet, order: &[usize]) {
    for n in set.tensors() {
        if rec.tensors.contains_key(*n) {
            take_rows(rec, n, order);
        }
    }
}

pub fn f32_tensor(name: &str, shape: Vec<usize>, values: Vec<f64>) -> Tensor {
    Tensor::new(name, Dtype::F32, shape, values).unwrap()
}

/// Every finding of the report as (severity, kind, subject), JSON names.
pub fn kinds(r: &Report) -> Vec<(String, String, String)> {
    r.all_findings()
        .map(|f| {
            let j = serde_json::to_value(f).unwrap();
            (
                j["severity"].as_str().unwrap().to_string(),
                j["kind"].as_str().unwrap().to_string(),
                f.subject.clone(),
            )
        })
        .collect()
}

/// Findings that are failures, as (kind, subject).
pub fn failures(r: &Report) -> Vec<(String, String)> {
    kinds(r)
        .into_iter()
        .filter(|k| k.0 == "fail")
        .map(|k| (k.1, k.2))
        .collect()
}

pub fn has(r: &Report, severity: &str, kind: &str, subject: &str) -> bool {
    kinds(r)
        .iter()
        .any(|k| k.0 == severity && k.1 == kind && k.2 == subject)
}
