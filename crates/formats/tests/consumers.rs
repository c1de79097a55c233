//! Every writer's output read back two ways, against the golden records of `golden/`:
//! by the consumer's own reading code in Python (`tests/py/read_<format>.py`, which derives what
//! the consumer must see from the golden files with the producer's NumPy arithmetic and compares
//! bit for bit), and by this crate's readers (round trip).
//!
//! The Python half needs numpy, safetensors, h5py, lmdb, msgpack and msgpack-numpy
//! (`scripts/requirements-test.txt`); without them it is skipped with a message, except under
//! CI (env `CI` set), where that is a failure.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use butd_formats::{
    read_uniter_npz, write_uniter_npz, ButdTsv, FormatError, IdPolicy, LxmertTsv, Record,
    TsvFormat, TsvReader, TsvWriter, UniterEntry, UniterLmdbReader, UniterLmdbWriter,
    UniterOptions, VqaHdf5, VqaHdf5Writer, VqaImage, VqaLayout,
};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden")
}

fn py_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py")
}

/// Whether the Python consumers can run; under CI they must.
fn python_ready() -> bool {
    let probe = Command::new("python3")
        .args([
            "-c",
            "import numpy, safetensors, h5py, lmdb, msgpack, msgpack_numpy",
        ])
        .output();
    let ok = probe.as_ref().is_ok_and(|o| o.status.success());
    if !ok {
        let why = match &probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: the Python consumer checks cannot run ({why}); install scripts/requirements-test.txt"
        );
        eprintln!("SKIPPED the Python consumer check: {why} (pip install -r scripts/requirements-test.txt)");
    }
    ok
}

/// Runs `tests/py/<script>` and returns the number of images it checked.
fn run_consumer(script: &str, args: &[&OsStr]) -> usize {
    let out = Command::new("python3")
        .arg(py_dir().join(script))
        .args(args)
        .current_dir(py_dir())
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    report["images"].as_u64().expect("images") as usize
}

/// The golden records with detections, in file-name order, as `butd export` reads them.
fn records(dir: &Path, policy: &IdPolicy) -> Vec<Record> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        match Record::read_safetensors(&f, policy) {
            Ok(r) => out.push(r),
            Err(FormatError::NoDetections { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    out
}

/// Integer ids for the golden stems (BUTD TSV and the VQA index need them): a JSON map file.
fn id_map(tmp: &Path) -> (PathBuf, IdPolicy) {
    let mut stems: Vec<String> = std::fs::read_dir(golden())
        .unwrap()
        .filter_map(|e| {
            e.unwrap()
                .path()
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
        })
        .filter(|s| !s.ends_with(".md") && !s.is_empty())
        .collect();
    stems.sort();
    let map: HashMap<String, u64> = stems
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, 9_000_000 + i as u64))
        .collect();
    let path = tmp.join("ids.json");
    std::fs::write(&path, serde_json::to_string(&map).unwrap()).unwrap();
    let policy = IdPolicy::load_map(&path).unwrap();
    (path, policy)
}

/// A record as a TSV gives it back: no `conf`/`soft_labels`, and with `labels` no object and
/// attribute fields either (BUTD TSV).
fn without(mut r: Record, labels: bool) -> Record {
    if labels {
        (r.objects_id, r.objects_conf, r.attrs_id, r.attrs_conf) = (None, None, None, None);
    }
    (r.conf, r.soft_labels) = (None, None);
    r
}

#[test]
fn crash_record_is_reported_as_no_detections() {
    let e = Record::read_safetensors(&golden().join("chelsea_micro.safetensors"), &IdPolicy::Stem)
        .unwrap_err();
    assert!(matches!(e, FormatError::NoDetections { .. }), "{e}");
    assert!(
        e.to_string().contains("chelsea_micro") && e.to_string().contains("SIGFPE"),
        "{e}"
    );
}

#[test]
fn records_carry_uniter_inputs() {
    let rs = records(&golden(), &IdPolicy::Stem);
    assert_eq!(rs.len(), 8);
    for r in &rs {
        assert_eq!(
            r.conf.as_ref().map(Vec::len),
            Some(r.num_boxes()),
            "{}",
            r.image_id
        );
        assert_eq!(r.soft_labels_dim(), Some(1601), "{}", r.image_id);
        assert_eq!(r.feature_dim, 2048);
    }
}

/// Writes `rs` as a TSV of layout `F` in `sessions` (a new file, then each later session
/// appended to it, like generate_tsv.py's 'ab'), reads it back and checks that it gives `rs`
/// without what the layout does not hold (`labels`: objects_* and attrs_* too).
fn tsv_reads_back<F: TsvFormat>(path: &Path, rs: &[Record], sessions: usize, labels: bool) {
    for (i, part) in rs.chunks(rs.len().div_ceil(sessions).max(1)).enumerate() {
        let mut w = TsvWriter::<F>::create(path, i > 0).unwrap();
        for r in part {
            w.write(r).unwrap();
        }
        w.finish().unwrap().commit().unwrap();
    }
    let back: Vec<Record> = TsvReader::<F>::open(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        back,
        rs.iter()
            .cloned()
            .map(|r| without(r, labels))
            .collect::<Vec<_>>()
    );
}

#[test]
fn butd_tsv_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (map_path, policy) = id_map(tmp.path());
    let rs = records(&golden(), &policy);
    let path = tmp.path().join("feat.tsv");
    tsv_reads_back::<ButdTsv>(&path, &rs, 2, true);
    if python_ready() {
        let golden = golden();
        let args = [path.as_os_str(), golden.as_os_str(), map_path.as_os_str()];
        assert_eq!(run_consumer("read_butd_tsv.py", &args), rs.len());
    }
}

#[test]
fn lxmert_tsv_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let rs = records(&golden(), &IdPolicy::Stem);
    let path = tmp.path().join("val2014_obj36.tsv");
    tsv_reads_back::<LxmertTsv>(&path, &rs, 1, false);
    if python_ready() {
        let golden = golden();
        let args = [path.as_os_str(), golden.as_os_str()];
        assert_eq!(run_consumer("read_lxmert_tsv.py", &args), rs.len());
    }
}

#[test]
fn uniter_npz_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let rs = records(&golden(), &IdPolicy::Stem);
    for r in &rs {
        let entry = UniterEntry::from_record(r, "nlvr2_").unwrap();
        let path = write_uniter_npz(tmp.path(), &entry).unwrap();
        assert_eq!(read_uniter_npz(&path).unwrap(), entry);
    }
    if python_ready() {
        let golden = golden();
        let args = [
            "npz".as_ref(),
            tmp.path().as_os_str(),
            golden.as_os_str(),
            "nlvr2_".as_ref(),
        ];
        assert_eq!(run_consumer("read_uniter.py", &args), rs.len());
    }
}

/// Builds the img_db with `options`, reads it back in Rust and in Python.
fn uniter_lmdb_case(options: UniterOptions) {
    let tmp = tempfile::tempdir().unwrap();
    let split = tmp.path().join("nlvr2_dev");
    let rs = records(&golden(), &IdPolicy::Stem);
    let mut w = UniterLmdbWriter::create(&split, options.clone()).unwrap();
    let entries: Vec<UniterEntry> = rs
        .iter()
        .map(|r| UniterEntry::from_record(r, "").unwrap())
        .collect();
    for e in &entries {
        w.add(e).unwrap();
    }
    let db = w.finish().unwrap();
    let reader = UniterLmdbReader::open(&db).unwrap();
    let nbb =
        UniterLmdbReader::read_nbb_file(&split.join(options.nbb_file_name().unwrap())).unwrap();
    let nbb: HashMap<String, usize> = nbb.into_iter().collect();
    assert_eq!(
        reader.keys(),
        entries.iter().map(|e| e.name.clone()).collect::<Vec<_>>()
    );
    let mut truncated = 0;
    for (e, back) in entries.iter().zip(reader.iter()) {
        let n = nbb[&e.name];
        truncated += usize::from(n < e.get("features").unwrap().shape[0]);
        assert_eq!(back.unwrap(), e.converted(Some(n)).unwrap());
    }
    if options.max_bb < 100 {
        assert!(truncated > 0, "this case must cut some images to nbb rows");
    }
    if python_ready() {
        let golden = golden();
        let (th, max, min) = (
            options.conf_th.to_string(),
            options.max_bb.to_string(),
            options.min_bb.to_string(),
        );
        let mut args: Vec<&OsStr> = vec![
            "lmdb".as_ref(),
            split.as_os_str(),
            golden.as_os_str(),
            "".as_ref(),
            th.as_ref(),
            max.as_ref(),
            min.as_ref(),
        ];
        if options.compress {
            args.push("compressed".as_ref());
        }
        assert_eq!(run_consumer("read_uniter.py", &args), rs.len());
    }
}

#[test]
fn uniter_lmdb_reads_back_with_converter_defaults() {
    uniter_lmdb_case(UniterOptions::default());
}

#[test]
fn uniter_lmdb_reads_back_truncated_and_compressed() {
    uniter_lmdb_case(UniterOptions {
        conf_th: 0.5,
        max_bb: 30,
        min_bb: 5,
        compress: true,
        ..UniterOptions::default()
    });
}

/// Copies of the golden records cut to their first `k` boxes (the fixed layout needs equal
/// counts; the golden images have 10 to 74).
fn cut_records(dir: &Path, k: usize) {
    use safetensors::tensor::{Dtype, SafeTensors, TensorView};
    for entry in std::fs::read_dir(golden()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "safetensors") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
        let Ok(boxes) = st.tensor("boxes") else {
            continue;
        };
        let features = st.tensor("features").unwrap();
        let cut = |t: &TensorView<'_>| {
            let row = t.data().len() / t.shape()[0];
            let mut shape = t.shape().to_vec();
            shape[0] = k;
            (shape, t.data()[..k * row].to_vec())
        };
        let (bs, bd) = cut(&boxes);
        let (fs, fd) = cut(&features);
        let tensors = vec![
            ("boxes", TensorView::new(Dtype::F32, bs, &bd).unwrap()),
            ("features", TensorView::new(Dtype::F32, fs, &fd).unwrap()),
        ];
        let meta: HashMap<String, String> = header.metadata().clone().unwrap();
        safetensors::serialize_to_file(tensors, &Some(meta), &dir.join(path.file_name().unwrap()))
            .unwrap();
    }
}

#[test]
fn vqa_hdf5_reads_back_in_both_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let (map_path, policy) = id_map(tmp.path());
    let cut_dir = tmp.path().join("cut10");
    std::fs::create_dir(&cut_dir).unwrap();
    cut_records(&cut_dir, 10);
    for (layout, dir, name) in [
        (VqaLayout::Adaptive, golden(), "adaptive"),
        (VqaLayout::Fixed, cut_dir.clone(), "fixed"),
    ] {
        let rs = records(&dir, &policy);
        let path = tmp.path().join(format!("{name}.hdf5"));
        let mut w = VqaHdf5Writer::create(&path, layout).unwrap();
        for r in &rs {
            w.write(r).unwrap();
        }
        w.finish().unwrap();
        let mut h = VqaHdf5::open(&path).unwrap();
        assert_eq!((h.layout(), h.len()), (layout, rs.len()));
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(h.image(i).unwrap(), VqaImage::from_record(r).unwrap());
        }
        if python_ready() {
            let args = [
                path.as_os_str(),
                dir.as_os_str(),
                map_path.as_os_str(),
                name.as_ref(),
            ];
            assert_eq!(run_consumer("read_vqa_hdf5.py", &args), rs.len());
        }
    }
}

#[test]
fn vqa_hdf5_files_written_by_the_converters_with_h5py_defaults_are_read() {
    if !python_ready() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_, policy) = id_map(tmp.path());
    let cut_dir = tmp.path().join("cut10");
    std::fs::create_dir(&cut_dir).unwrap();
    cut_records(&cut_dir, 10);
    for (mode, dir, layout) in [
        ("fixed", cut_dir.clone(), VqaLayout::Fixed),
        ("adaptive", golden(), VqaLayout::Adaptive),
        ("chunked", cut_dir.clone(), VqaLayout::Fixed),
    ] {
        let rs = records(&dir, &policy);
        let tsv = tmp.path().join(format!("{mode}.tsv"));
        let mut w = TsvWriter::<ButdTsv>::create(&tsv, false).unwrap();
        rs.iter().for_each(|r| w.write(r).unwrap());
        w.finish().unwrap().commit().unwrap();
        let h5 = tmp.path().join(format!("{mode}.hdf5"));
        let out = Command::new("python3")
            .arg(py_dir().join("write_vqa_hdf5_h5py.py"))
            .args([tsv.as_os_str(), h5.as_os_str(), mode.as_ref()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
        assert_eq!(report["superblock"], 0, "{mode}: h5py's default superblock");
        let mut h = VqaHdf5::open(&h5).unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!((h.layout(), h.len()), (layout, rs.len()), "{mode}");
        for (i, r) in rs.iter().enumerate() {
            assert_eq!(
                h.image(i).unwrap(),
                VqaImage::from_record(r).unwrap(),
                "{mode}: image {i}"
            );
        }
    }
}
