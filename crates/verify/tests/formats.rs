//! `verify` on the downstream feature files: each format written by butd's own writers from
//! the golden records and read back against those records is exact (float32 formats) or exact
//! up to float16 rounding (UNITER); the planted faults of the record tests are caught and named
//! when the golden side is a TSV or an img_db.
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use butd_formats as bf;
use butd_verify::{
    verify, Format, IdPolicy, Options, Record, RegionSet, Report, Sample, SourceSpec, Status,
    Thresholds,
};
use common::*;

const TIER1: &str = "rocket_strip";

fn record_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    files
}

/// The format crate's view of each record with detections (the crash record has none).
fn format_records(dir: &Path, policy: &IdPolicy) -> Vec<bf::Record> {
    record_files(dir)
        .iter()
        .filter_map(|f| match bf::Record::read_safetensors(f, policy) {
            Ok(r) => Some(r),
            Err(bf::FormatError::NoDetections { .. }) => None,
            Err(e) => panic!("{e}"),
        })
        .collect()
}

/// Integer ids for the golden stems (the BUTD TSV and the VQA index need integers), as
/// COCO-style annotations: `{"images": [{"id", "file_name"}]}`.
fn coco_ids(out: &Path) -> PathBuf {
    let images: Vec<serde_json::Value> = record_files(&golden_dir())
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let stem = f.file_stem().unwrap().to_string_lossy();
            serde_json::json!({"id": 1000 + i, "file_name": format!("{stem}.jpg")})
        })
        .collect();
    let path = out.join("instances.json");
    std::fs::write(&path, serde_json::json!({ "images": images }).to_string()).unwrap();
    path
}

fn ids_for(format: Format, out: &Path) -> Option<IdPolicy> {
    format
        .integer_ids()
        .then(|| IdPolicy::load_map(&coco_ids(out)).unwrap())
}

fn write_tsv<F: bf::TsvFormat>(path: &Path, rs: &[bf::Record]) -> PathBuf {
    let mut w = bf::TsvWriter::<F>::create(path, false).unwrap();
    rs.iter().for_each(|r| w.write(r).unwrap());
    w.finish().unwrap().commit().unwrap()
}

/// [`write_format_with`] with the default UNITER options.
fn write_format(format: Format, records: &Path, out: &Path) -> PathBuf {
    write_format_with(format, records, out, bf::UniterOptions::default())
}

/// Writes `format` from the records of `records` into `out` with butd's writers; returns
/// what `verify` is given (for the img_db: the split directory, resolved by detection).
fn write_format_with(
    format: Format,
    records: &Path,
    out: &Path,
    uniter: bf::UniterOptions,
) -> PathBuf {
    let policy = ids_for(format, out).unwrap_or(IdPolicy::Stem);
    let rs = format_records(records, &policy);
    match format {
        Format::ButdTsv => write_tsv::<bf::ButdTsv>(&out.join("butd.tsv"), &rs),
        Format::LxmertTsv => write_tsv::<bf::LxmertTsv>(&out.join("obj36.tsv"), &rs),
        Format::UniterLmdb => {
            let split = out.join("img_db");
            let mut w = bf::UniterLmdbWriter::create(&split, uniter).unwrap();
            for r in &rs {
                w.add(&bf::UniterEntry::from_record(r, "").unwrap())
                    .unwrap();
            }
            w.finish().unwrap();
            split
        }
        Format::UniterNpz => {
            let dir = out.join("npz");
            std::fs::create_dir_all(&dir).unwrap();
            for r in &rs {
                bf::write_uniter_npz(&dir, &bf::UniterEntry::from_record(r, "").unwrap()).unwrap();
            }
            dir
        }
        Format::VqaHdf5 => {
            let path = out.join("feat.hdf5");
            let mut w = bf::VqaHdf5Writer::create(&path, bf::VqaLayout::Adaptive).unwrap();
            rs.iter().for_each(|r| w.write(r).unwrap());
            w.finish().unwrap();
            path
        }
        Format::Records => records.to_path_buf(),
    }
}

fn run(golden: &Path, candidate: &Path, ids: Option<IdPolicy>) -> Report {
    run_with(golden, candidate, ids, None)
}

fn run_with(
    golden: &Path,
    candidate: &Path,
    ids: Option<IdPolicy>,
    sample: Option<Sample>,
) -> Report {
    let opts = Options {
        threads: 2,
        ids,
        sample,
        ..Options::default()
    };
    verify(
        &SourceSpec::new(golden),
        &SourceSpec::new(candidate),
        &Thresholds::default(),
        &opts,
    )
    .unwrap()
}

const WRITTEN: [Format; 5] = [
    Format::ButdTsv,
    Format::LxmertTsv,
    Format::UniterLmdb,
    Format::UniterNpz,
    Format::VqaHdf5,
];

#[test]
fn every_format_against_the_records_of_the_same_run_shows_no_difference() {
    let golden = golden_dir();
    for format in WRITTEN {
        let tmp = tempfile::tempdir().unwrap();
        let file = write_format(format, &golden, tmp.path());
        let ids = ids_for(format, tmp.path());
        for (g, c) in [(&file, &golden), (&golden, &file)] {
            let r = run(g, c, ids.clone());
            let what = format!(
                "{} as {}",
                format.name(),
                if g == &file { "golden" } else { "candidate" }
            );
            assert!(r.summary.gate_passed, "{what}: {:?}", r.summary.breaches);
            assert_eq!(r.summary.compared, 8, "{what}");
            assert!(failures(&r).is_empty(), "{what}: {:?}", failures(&r));
            let sources = r.sources.as_ref().unwrap();
            let side = if g == &file {
                &sources.golden
            } else {
                &sources.candidate
            };
            assert_eq!(side.format, format.name(), "{what}");
            // The crash record is in no downstream format: expected, not missing.
            assert_eq!(r.findings.len(), 1, "{what}: {:?}", r.findings);
            assert!(r.findings[0].message.contains("no detections"), "{what}");
            assert_eq!(
                kinds(&r).iter().filter(|k| k.0 != "info").count(),
                0,
                "{what}: {:?}",
                kinds(&r)
            );
            let carried = format.carries().unwrap();
            for img in &r.images {
                assert_eq!(img.status, Status::Pass, "{what} {}", img.image);
                let names: Vec<&str> = img.tensors.iter().map(|t| t.name.as_str()).collect();
                assert_eq!(
                    names.len(),
                    carried.len(),
                    "{what} {}: {names:?}",
                    img.image
                );
                for t in &img.tensors {
                    let s = t.gated_stats().unwrap();
                    assert_eq!(
                        (s.max_abs_diff, s.mismatches, s.nonfinite),
                        (0.0, 0, 0),
                        "{what} {} {}",
                        img.image,
                        t.name
                    );
                    let half = t.half_precision.as_ref();
                    if format.is_uniter() && t.name != "objects_id" {
                        let h = half.unwrap_or_else(|| panic!("{what} {}: no fp16 bound", t.name));
                        assert!(h.max_allowance > 0.0, "{what} {}", t.name);
                        let side = if g == &file { "golden" } else { "candidate" };
                        assert_eq!(h.sides, side);
                    } else {
                        assert!(half.is_none(), "{what} {}", t.name);
                    }
                }
                let fin = &img.regions[0];
                assert!(
                    fin.same_indexing && fin.matched == fin.golden_count,
                    "{what}"
                );
            }
            if format.is_uniter() {
                // The bound is half a float16 ulp: at most 2^-11 of the largest feature (< 4.4).
                let l = r.layers.iter().find(|l| l.name == "features").unwrap();
                let bound = l.half_precision.as_ref().unwrap().max_allowance;
                assert!(bound > 1e-4 && bound <= 4.4 * 2f64.powi(-11), "{bound}");
            }
        }
    }
}

/// A candidate directory: every golden record, `edit` applied to `stem`'s.
fn candidate_dir(dir: &Path, stem: &str, edit: impl FnOnce(&mut Option<Record>)) -> PathBuf {
    let out = dir.join("candidate");
    std::fs::create_dir_all(&out).unwrap();
    for f in record_files(&golden_dir()) {
        let name = f.file_name().unwrap();
        if f.file_stem().unwrap() != stem {
            std::os::unix::fs::symlink(&f, out.join(name)).unwrap();
        }
    }
    let mut rec = Some(golden_record(stem));
    edit(&mut rec);
    if let Some(rec) = rec {
        rec.write(&out.join(format!("{stem}.safetensors"))).unwrap();
    }
    out
}

type Fault = (
    &'static str,
    &'static str,
    Box<dyn Fn(&mut Option<Record>)>,
    (&'static str, &'static str),
);

/// The planted faults of tests/perturbations.rs and the failure each must give.
fn faults() -> Vec<Fault> {
    let k = golden_record(TIER1).get("keep").unwrap().rows();
    let ids = golden_record(TIER1)
        .get("objects_id")
        .unwrap()
        .values
        .clone();
    let j = (1..ids.len()).find(|&j| ids[j] != ids[0]).unwrap();
    vec![
        (
            "rows permuted",
            TIER1,
            Box::new(move |r: &mut Option<Record>| {
                let reversed: Vec<usize> = (0..k).rev().collect();
                take_set_rows(r.as_mut().unwrap(), RegionSet::Final, &reversed);
            }),
            ("order", "final"),
        ),
        (
            "a box dropped",
            TIER1,
            Box::new(move |r: &mut Option<Record>| {
                let without_5: Vec<usize> = (0..k).filter(|&i| i != 5).collect();
                take_set_rows(r.as_mut().unwrap(), RegionSet::Final, &without_5);
            }),
            ("unmatched", "final"),
        ),
        (
            "a feature changed by 1e-3",
            TIER1,
            Box::new(|r: &mut Option<Record>| {
                r.as_mut()
                    .unwrap()
                    .tensors
                    .get_mut("features")
                    .unwrap()
                    .values[2 * 2048 + 100] += 1e-3;
            }),
            ("tolerance", "features"),
        ),
        (
            "two labels swapped",
            TIER1,
            Box::new(move |r: &mut Option<Record>| {
                r.as_mut()
                    .unwrap()
                    .tensors
                    .get_mut("objects_id")
                    .unwrap()
                    .values
                    .swap(0, j);
            }),
            ("label", "objects_id"),
        ),
        (
            "a missing image",
            "chelsea_tiny",
            Box::new(|r: &mut Option<Record>| *r = None),
            ("missing_image", ""),
        ),
        (
            "a NaN",
            TIER1,
            Box::new(|r: &mut Option<Record>| {
                r.as_mut()
                    .unwrap()
                    .tensors
                    .get_mut("features")
                    .unwrap()
                    .values[3] = f64::NAN;
            }),
            ("nonfinite", "features"),
        ),
    ]
}

#[test]
fn planted_faults_are_caught_with_a_tsv_or_an_img_db_as_golden() {
    for golden_format in [Format::LxmertTsv, Format::UniterLmdb, Format::ButdTsv] {
        let tmp = tempfile::tempdir().unwrap();
        let golden = write_format(golden_format, &golden_dir(), tmp.path());
        let ids = ids_for(golden_format, tmp.path());
        for (name, stem, edit, expected) in faults() {
            if golden_format == Format::ButdTsv && expected.1 == "objects_id" {
                continue; // the BUTD TSV holds no labels
            }
            let case = tempfile::tempdir().unwrap();
            let candidate = candidate_dir(case.path(), stem, edit);
            let r = run(&golden, &candidate, ids.clone());
            let what = format!("{} golden, {name}", golden_format.name());
            assert!(!r.summary.gate_passed, "{what}");
            assert_eq!(
                failures(&r),
                [(expected.0.to_string(), expected.1.to_string())],
                "{what}: {:#?}",
                r.summary.breaches
            );
            let named = &r.summary.breaches[0];
            let image = if expected.0 == "missing_image" {
                "chelsea_tiny"
            } else {
                TIER1
            };
            let image = if golden_format.integer_ids() {
                // 1000 + the record's position in name order.
                let pos = record_files(&golden_dir())
                    .iter()
                    .position(|f| f.file_stem().unwrap() == image)
                    .unwrap();
                (1000 + pos).to_string()
            } else {
                image.to_string()
            };
            assert!(named.starts_with(&format!("{image}:")), "{what}: {named}");
        }
    }
}

#[test]
fn two_tsvs_stream_the_larger_and_index_the_smaller() {
    let tmp = tempfile::tempdir().unwrap();
    let golden = write_format(Format::LxmertTsv, &golden_dir(), tmp.path());
    let case = tempfile::tempdir().unwrap();
    let k = golden_record(TIER1).get("keep").unwrap().rows();
    let records = candidate_dir(case.path(), TIER1, |r| {
        let reversed: Vec<usize> = (0..k).rev().collect();
        take_set_rows(r.as_mut().unwrap(), RegionSet::Final, &reversed);
    });
    std::fs::remove_file(records.join("coffee.safetensors")).unwrap();
    let out = case.path().join("tsv");
    std::fs::create_dir_all(&out).unwrap();
    let candidate = write_format(Format::LxmertTsv, &records, &out);
    let r = run(&golden, &candidate, None);
    let pairing = &r.sources.as_ref().unwrap().pairing;
    assert!(pairing.contains("golden streamed"), "{pairing}");
    let mut f = failures(&r);
    f.sort();
    assert_eq!(
        f,
        [
            ("missing_image".to_string(), String::new()),
            ("order".into(), "final".into())
        ]
    );
    assert_eq!(
        (r.summary.golden_images, r.summary.candidate_images),
        (8, 7)
    );
    // The other way round the candidate is larger and streamed.
    let r = run(&candidate, &golden, None);
    assert!(r
        .sources
        .as_ref()
        .unwrap()
        .pairing
        .contains("candidate streamed"));
    assert_eq!(r.summary.extra_images, 1);
}

#[test]
fn a_sample_is_reproducible_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let golden = write_format(Format::LxmertTsv, &golden_dir(), tmp.path());
    let sample = |seed| Some(Sample { n: 3, seed });
    let a = run_with(&golden, &golden_dir(), None, sample(1));
    let names = |r: &Report| r.images.iter().map(|i| i.image.clone()).collect::<Vec<_>>();
    assert_eq!(a.summary.compared, 3);
    assert_eq!(
        names(&a),
        names(&run_with(&golden, &golden_dir(), None, sample(1)))
    );
    let seeds: Vec<Vec<String>> = (2..8)
        .map(|s| names(&run_with(&golden, &golden_dir(), None, sample(s))))
        .collect();
    assert!(
        seeds.iter().any(|n| n != &names(&a)),
        "six seeds, one sample"
    );
    let info = a.sources.as_ref().unwrap().sample.as_ref().unwrap();
    assert_eq!((info.n, info.seed, info.of), (3, 1, 8));
    // Unsampled candidate images are not reported as extra.
    assert_eq!(a.summary.extra_images, 0);
    assert!(a.summary.gate_passed);
}

#[test]
fn width_and_height_swapped_is_an_image_size_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let policy = IdPolicy::load_map(&coco_ids(tmp.path())).unwrap();
    let path = tmp.path().join("swapped.tsv");
    let mut rs = format_records(&golden_dir(), &policy);
    for r in &mut rs {
        if r.image_h != r.image_w {
            (r.image_h, r.image_w) = (r.image_w, r.image_h);
        }
    }
    write_tsv::<bf::ButdTsv>(&path, &rs);
    let r = run(&path, &golden_dir(), Some(policy));
    let f = failures(&r);
    // Every non-square image (camera_gray and logo_rgba are square).
    assert_eq!(f.len(), 6, "{f:?}");
    assert!(f
        .iter()
        .all(|k| k == &("image_mismatch".to_string(), String::new())));
    assert!(
        r.summary.breaches[0].contains("width and height swapped"),
        "{}",
        r.summary.breaches[0]
    );
}

#[test]
fn float16_features_pass_as_float16_and_fail_when_relabelled_float32() {
    let half = |dtype: butd_verify::Dtype| {
        move |r: &mut Option<Record>| {
            let t = r.as_mut().unwrap().tensors.get_mut("features").unwrap();
            for v in &mut t.values {
                *v = half::f16::from_f64(*v).to_f64();
            }
            let fixed =
                butd_verify::Tensor::new("features", dtype, t.shape.clone(), t.values.clone())
                    .unwrap();
            *t = fixed;
        }
    };
    let case = tempfile::tempdir().unwrap();
    let as_f16 = candidate_dir(case.path(), TIER1, half(butd_verify::Dtype::F16));
    let r = run(&golden_dir(), &as_f16, None);
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    let t = r
        .images
        .iter()
        .find(|i| i.image == TIER1)
        .unwrap()
        .tensors
        .iter()
        .find(|t| t.name == "features")
        .unwrap();
    assert_eq!(t.half_precision.as_ref().unwrap().sides, "candidate");
    let case = tempfile::tempdir().unwrap();
    let as_f32 = candidate_dir(case.path(), TIER1, half(butd_verify::Dtype::F32));
    let r = run(&golden_dir(), &as_f32, None);
    assert_eq!(
        failures(&r),
        [("tolerance".to_string(), "features".to_string())]
    );
}

#[test]
fn an_img_db_cut_to_nbb_rows_cuts_the_other_side_alike() {
    let tmp = tempfile::tempdir().unwrap();
    let options = bf::UniterOptions {
        max_bb: 12,
        ..bf::UniterOptions::default()
    };
    let db = write_format_with(Format::UniterLmdb, &golden_dir(), tmp.path(), options);
    let r = run(&db, &golden_dir(), None);
    assert!(r.summary.gate_passed, "{:?}", r.summary.breaches);
    let cut: BTreeMap<&str, &str> = r
        .all_findings()
        .filter(|f| kinds_of(f) == "truncated")
        .map(|f| (f.image.as_str(), f.message.as_str()))
        .collect();
    // rocket_strip (14 boxes) and astronaut_strip (13) and the larger ones hold 12 rows.
    assert!(
        cut.contains_key(TIER1) && !cut.contains_key("chelsea_tiny"),
        "{cut:?}"
    );
    assert!(
        cut[TIER1].contains("14 regions cut to 12"),
        "{}",
        cut[TIER1]
    );
    let img = r.images.iter().find(|i| i.image == TIER1).unwrap();
    assert_eq!(
        (img.regions[0].golden_count, img.regions[0].matched),
        (12, 12)
    );
}

fn kinds_of(f: &butd_verify::Finding) -> String {
    serde_json::to_value(f.kind)
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_duplicate_id_in_a_tsv_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("dup.tsv");
    let rs = format_records(&golden_dir(), &IdPolicy::Stem);
    let twice: Vec<bf::Record> = rs.iter().chain(rs.iter().take(1)).cloned().collect();
    write_tsv::<bf::LxmertTsv>(&path, &twice);
    let r = run(&path, &golden_dir(), None);
    assert_eq!(
        failures(&r),
        [("duplicate_image".to_string(), String::new())]
    );
    assert!(
        r.summary.breaches[0].contains("line 9"),
        "{}",
        r.summary.breaches[0]
    );
}

/// `dir/<stem>.safetensors` for each record.
fn write_records(dir: &Path, records: &[(&str, &Record)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (stem, rec) in records {
        rec.write(&dir.join(format!("{stem}.safetensors"))).unwrap();
    }
    dir.to_path_buf()
}

#[test]
fn golden_scores_explain_a_tsv_candidate_and_float16_scores_an_img_db() {
    let tmp = tempfile::tempdir().unwrap();
    // (1) The golden records carry cls_prob: an exact argmax tie staged in a golden copy
    // explains a TSV candidate that took the other label.
    let mut golden = golden_record(TIER1);
    let j = (0..golden.get("keep").unwrap().rows())
        .find(|&j| golden.get("objects_id").unwrap().values[j] >= 1.0)
        .unwrap();
    let r = golden.get("keep").unwrap().values[j] as usize;
    let a = golden.get("objects_id").unwrap().values[j] as usize;
    let b = a - 1;
    let cls = golden.tensors.get_mut("cls_prob").unwrap();
    let w = cls.row_len();
    cls.values[r * w + 1 + b] = cls.values[r * w + 1 + a];
    let mut cand = golden.clone();
    cand.tensors.get_mut("objects_id").unwrap().values[j] = b as f64;
    let gdir = write_records(&tmp.path().join("golden"), &[(TIER1, &golden)]);
    let cdir = write_records(&tmp.path().join("cand"), &[(TIER1, &cand)]);
    let tsv = write_format(Format::LxmertTsv, &cdir, tmp.path());
    let rep = run(&gdir, &tsv, None);
    assert!(rep.summary.gate_passed, "{:?}", rep.summary.breaches);
    assert!(has(&rep, "tie", "label", "objects_id"), "{:?}", kinds(&rep));

    // (2) Two class scores 2^-20 apart round to one float16: the img_db's argmax takes the
    // first, the float32 records the larger; the img_db's own scores explain it.
    let mut staged = golden_record(TIER1);
    let cls = staged.tensors.get_mut("cls_prob").unwrap();
    let q = half::f16::from_f64(cls.values[r * w + 1 + a]).to_f64();
    cls.values[r * w + 1 + a] = f64::from((q * (1.0 + 2f64.powi(-20))) as f32);
    cls.values[r * w + 1 + b] = f64::from(q as f32);
    let sdir = write_records(&tmp.path().join("staged"), &[(TIER1, &staged)]);
    let out = tmp.path().join("db");
    std::fs::create_dir_all(&out).unwrap();
    let db = write_format(Format::UniterLmdb, &sdir, &out);
    let rep = run(&db, &sdir, None);
    assert!(rep.summary.gate_passed, "{:?}", rep.summary.breaches);
    let fin = &rep.images[0].regions[0];
    let d = &fin.label_disagreements;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].golden, d[0].candidate), (b as i64, a as i64));
    assert!(
        d[0].cause.as_deref().unwrap().starts_with("half_argmax:"),
        "{:?}",
        d[0].cause
    );
}

#[test]
fn a_corrupt_tsv_row_is_unreadable_and_named_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let tsv = write_format(Format::LxmertTsv, &golden_dir(), tmp.path());
    let text = std::fs::read_to_string(&tsv).unwrap();
    let mut lines: Vec<String> = text.split("\r\n").map(String::from).collect();
    // Line 3: cut the features field short (no longer a multiple of 4 bytes).
    let cut = lines[2].len() - 8;
    lines[2].truncate(cut);
    std::fs::write(&tsv, lines.join("\r\n")).unwrap();
    let r = run(&tsv, &golden_dir(), None);
    assert_eq!(failures(&r), [("unreadable".to_string(), String::new())]);
    let line = &r.summary.breaches[0];
    assert!(line.contains("line 3, field features"), "{line}");
    assert_eq!(r.summary.compared, 8);
}

#[test]
fn zero_images_compared_fails_the_gate() {
    let golden = golden_dir();
    let report = run_with(&golden, &golden, None, Some(Sample { n: 0, seed: 0 }));
    assert_eq!(report.summary.compared, 0);
    assert!(!report.summary.gate_passed, "--sample 0 passes nothing");
    assert!(
        report
            .summary
            .breaches
            .iter()
            .any(|b| b.contains("0 images compared")),
        "{:?}",
        report.summary.breaches
    );

    let out = tempfile::tempdir().unwrap();
    let empty_tsv = write_tsv::<bf::LxmertTsv>(&out.path().join("empty.tsv"), &[]);
    let mut split = out.path().join("img_db");
    let w = bf::UniterLmdbWriter::create(&split, bf::UniterOptions::default()).unwrap();
    split = w.finish().unwrap();
    for (path, format) in [(empty_tsv, Format::LxmertTsv), (split, Format::UniterLmdb)] {
        let spec = SourceSpec {
            format: Some(format),
            ..SourceSpec::new(&path)
        };
        let report = verify(
            &spec,
            &SourceSpec::new(&golden),
            &Thresholds::default(),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(report.summary.compared, 0, "{}", path.display());
        assert!(
            !report.summary.gate_passed,
            "{}: empty golden",
            path.display()
        );
    }
}

/// A folder holding links to the golden records named in `stems`, each as `<prefix><stem>`.
fn some_golden(out: &Path, stems: &[&str], prefix: &str) -> PathBuf {
    let dir = out.join(format!("some-{prefix}"));
    std::fs::create_dir_all(&dir).unwrap();
    for stem in stems {
        std::fs::hard_link(
            golden_dir().join(format!("{stem}.safetensors")),
            dir.join(format!("{prefix}{stem}.safetensors")),
        )
        .or_else(|_| {
            std::fs::copy(
                golden_dir().join(format!("{stem}.safetensors")),
                dir.join(format!("{prefix}{stem}.safetensors")),
            )
            .map(drop)
        })
        .unwrap();
    }
    dir
}

#[test]
fn common_only_compares_the_images_both_have_and_says_how_many_it_skipped() {
    let out = tempfile::tempdir().unwrap();
    let candidate = some_golden(out.path(), &["coffee", "chelsea_tiny", "camera_gray"], "");
    let all = golden_dir();
    assert!(
        !run(&all, &candidate, None).summary.gate_passed,
        "missing images fail"
    );
    let opts = Options {
        threads: 2,
        common_only: true,
        ..Options::default()
    };
    let report = verify(
        &SourceSpec::new(&all),
        &SourceSpec::new(&candidate),
        &Thresholds::default(),
        &opts,
    )
    .unwrap();
    assert_eq!(report.summary.compared, 3);
    assert!(report.summary.gate_passed, "{:?}", report.summary.breaches);
    let skipped = record_files(&all).len() - 3;
    let note = format!("--common-only: {skipped} golden image(s) without a candidate skipped");
    assert!(
        report.to_terminal().contains(&note),
        "{}",
        report.to_terminal()
    );
    assert!(report.to_json().contains(&note));
}

#[test]
fn unpaired_images_are_explained_in_the_terminal() {
    let out = tempfile::tempdir().unwrap();
    let candidate = some_golden(out.path(), &["coffee", "chelsea_tiny"], "img_");
    let report = run(&golden_dir(), &candidate, None);
    let text = report.to_terminal();
    assert!(text.contains("unpaired: "), "{text}");
    assert!(
        text.contains("(e.g. img_chelsea_tiny, img_coffee)"),
        "{text}"
    );
    assert!(text.contains("--id-policy or --id-map"), "{text}");
}

#[test]
fn a_fixed_golden_against_an_adaptive_candidate_is_named_as_a_selection_difference() {
    let out = tempfile::tempdir().unwrap();
    // The golden records cut to their first 10 final regions: a "fixed 10" golden file.
    let mut rs = format_records(&golden_dir(), &IdPolicy::Stem);
    assert!(
        rs.iter().any(|r| r.num_boxes() > 10),
        "some golden image has more than 10"
    );
    for r in &mut rs {
        let k = 10.min(r.num_boxes());
        r.boxes.truncate(k);
        r.features.truncate(k * r.feature_dim);
        for v in [&mut r.objects_id, &mut r.attrs_id].into_iter().flatten() {
            v.truncate(k);
        }
        for v in [&mut r.objects_conf, &mut r.attrs_conf]
            .into_iter()
            .flatten()
        {
            v.truncate(k);
        }
    }
    assert!(rs.iter().all(|r| r.num_boxes() == 10));
    let fixed = write_tsv::<bf::LxmertTsv>(&out.path().join("fixed10.tsv"), &rs);
    let report = run(&fixed, &golden_dir(), None);
    assert!(!report.summary.gate_passed);
    let first = &report.summary.breaches[0];
    assert!(first.contains("different box selections"), "{first}");
    assert!(first.contains("exactly 10 final regions"), "{first}");
    assert!(report.to_terminal().contains("different box selections"));
}
