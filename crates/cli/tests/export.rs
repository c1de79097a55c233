//! `butd export` end to end on small hand-made records: ids, checks, `--append`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One record as `butd extract` writes it (the tensors `butd export` reads), K boxes.
struct Rec<'a> {
    /// Record file name without `.safetensors`.
    id: &'a str,
    image_name: &'a str,
    k: usize,
    width: usize,
    feature: f32,
    objects_id: i64,
    /// Write a `soft_labels` tensor (K × 1601 float16), as `butd extract --soft-labels` does.
    soft_labels: bool,
    /// The provenance's `select_mode`, `min_boxes`, `max_boxes` (none when `None`).
    selection: Option<(&'a str, usize, usize)>,
}

impl Rec<'_> {
    fn new(id: &str) -> Rec<'_> {
        Rec {
            id,
            image_name: "img.jpg",
            k: 2,
            width: 2048,
            feature: 0.5,
            objects_id: 3,
            soft_labels: false,
            selection: None,
        }
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let k = self.k;
        let f32s = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let i64s = |v: Vec<i64>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let f64s = |v: Vec<f64>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let tensors: Vec<(&str, &str, Vec<usize>, Vec<u8>)> = vec![
            (
                "boxes",
                "F32",
                vec![k, 4],
                f32s((0..k * 4).map(|i| i as f32).collect()),
            ),
            (
                "features",
                "F32",
                vec![k, self.width],
                f32s(vec![self.feature; k * self.width]),
            ),
            ("keep", "I64", vec![k], i64s((0..k as i64).collect())),
            ("max_conf", "F64", vec![k], f64s(vec![0.5; k])),
            ("objects_id", "I64", vec![k], i64s(vec![self.objects_id; k])),
            ("objects_conf", "F32", vec![k], f32s(vec![0.5; k])),
            ("attrs_id", "I64", vec![k], i64s(vec![1; k])),
            ("attrs_conf", "F32", vec![k], f32s(vec![0.5; k])),
        ];
        let mut tensors = tensors;
        if self.soft_labels {
            // float16 1.0 (0x3c00), little-endian.
            let f16s = vec![0x00u8, 0x3c].repeat(k * 1601);
            tensors.push(("soft_labels", "F16", vec![k, 1601], f16s));
        }
        let mut header = serde_json::Map::new();
        let mut meta = serde_json::json!({
            "format": "butd-record-v1", "image_name": self.image_name,
            "orig_h": "100", "orig_w": "200", "result": "detections",
        });
        if let Some((mode, min, max)) = self.selection {
            for (k, v) in [
                ("select_mode", mode.to_string()),
                ("min_boxes", min.to_string()),
                ("max_boxes", max.to_string()),
                ("conf_thresh", "0.2".to_string()),
            ] {
                meta[k] = v.into();
            }
        }
        header.insert("__metadata__".into(), meta);
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in &tensors {
            let start = data.len();
            data.extend_from_slice(bytes);
            header.insert(
                name.to_string(),
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
            );
        }
        let header = serde_json::to_vec(&header).unwrap();
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(&header);
        file.extend_from_slice(&data);
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{}.safetensors", self.id));
        std::fs::write(&path, file).unwrap();
        path
    }
}

fn butd(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_butd"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// `butd export --records RECORDS --format FORMAT -o OUT EXTRA…`, run in `dir`.
fn export(dir: &Path, records: &str, format: &str, out: &str, extra: &[&str]) -> Output {
    let args = [
        "export",
        "--records",
        records,
        "--format",
        format,
        "-o",
        out,
    ];
    butd(&[&args[..], extra].concat(), dir)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The first field of each row of a TSV.
fn tsv_ids(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_exported_id_is_the_record_id_not_the_image_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Two images named 1.jpg in two folders: extract gave them the ids a_1 and b_1.
    Rec {
        image_name: "1.jpg",
        ..Rec::new("a_1")
    }
    .write(&d.join("recs"));
    Rec {
        image_name: "1.jpg",
        ..Rec::new("b_1")
    }
    .write(&d.join("recs"));
    let o = export(d, "recs", "lxmert-tsv", "out.tsv", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tsv_ids(&d.join("out.tsv")), ["a_1", "b_1"]);
}

#[test]
fn two_records_giving_one_id_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Rec::new("COCO_1").write(&d.join("recs"));
    Rec::new("VG_0001").write(&d.join("recs"));
    let o = export(d, "recs", "butd-tsv", "out.tsv", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("both give the image id \"1\""),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("out.tsv").exists());
}

#[test]
fn id_map_values_and_name_prefixes_cannot_leave_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Rec::new("coffee").write(&d.join("recs"));
    std::fs::write(d.join("map.json"), r#"{"coffee": "../../x"}"#).unwrap();
    let o = export(
        d,
        "recs",
        "uniter-npz",
        "npz",
        &["--id-map", "map.json", "--without-soft-labels"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot name a file"), "{}", stderr(&o));
    let o = export(
        d,
        "recs",
        "uniter-npz",
        "npz",
        &["--name-prefix", "../x_", "--without-soft-labels"],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--name-prefix"), "{}", stderr(&o));
    let escaped: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".npz"))
        .collect();
    assert!(escaped.is_empty(), "{escaped:?}");
    assert!(!d.parent().unwrap().join("x.npz").exists());
}

#[test]
fn non_finite_features_a_wrong_width_and_label_ids_out_of_range_are_refused() {
    for (rec, expected) in [
        (
            Rec {
                feature: f32::NAN,
                ..Rec::new("1")
            },
            "non-finite",
        ),
        (
            Rec {
                feature: f32::INFINITY,
                ..Rec::new("1")
            },
            "non-finite",
        ),
        (
            Rec {
                width: 1024,
                ..Rec::new("1")
            },
            "expected 2048",
        ),
        (
            Rec {
                objects_id: 1600,
                ..Rec::new("1")
            },
            "outside 0..1600",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        rec.write(&d.join("recs"));
        let o = export(d, "recs", "lxmert-tsv", "o.tsv", &[]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{expected}: {}", stderr(&o));
        assert!(!d.join("o.tsv").exists());
    }
}

#[test]
fn append_twice_writes_each_id_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Rec::new("1").write(&d.join("recs"));
    Rec::new("2").write(&d.join("recs"));
    let append = || export(d, "recs", "butd-tsv", "o.tsv", &["--append"]);
    for _ in 0..2 {
        let o = append();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(tsv_ids(&d.join("o.tsv")), ["1", "2"]);
    Rec::new("3").write(&d.join("recs"));
    let o = append();
    assert!(
        stderr(&o).contains("2 already in the file skipped"),
        "{}",
        stderr(&o)
    );
    assert_eq!(tsv_ids(&d.join("o.tsv")), ["1", "2", "3"]);
}

#[test]
fn a_failed_append_leaves_the_file_as_it_was_and_a_torn_row_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Rec::new("1").write(&d.join("recs"));
    let append = || export(d, "recs", "butd-tsv", "o.tsv", &["--append"]);
    assert!(append().status.success());
    let before = std::fs::read(d.join("o.tsv")).unwrap();
    // Record 2 is written, then record 3 (NaN) fails the run: no row of 2 may stay.
    Rec::new("2").write(&d.join("recs"));
    Rec {
        feature: f32::NAN,
        ..Rec::new("3")
    }
    .write(&d.join("recs"));
    assert_eq!(append().status.code(), Some(2));
    assert_eq!(std::fs::read(d.join("o.tsv")).unwrap(), before);
    // A killed writer's half row: cut off at the next append.
    std::fs::remove_file(d.join("recs/3.safetensors")).unwrap();
    let mut torn = before.clone();
    torn.extend_from_slice(b"2\t200\t100\t2\tAAAA");
    std::fs::write(d.join("o.tsv"), torn).unwrap();
    let o = append();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("torn last row"), "{}", stderr(&o));
    assert_eq!(tsv_ids(&d.join("o.tsv")), ["1", "2"]);
}

#[test]
fn uniter_exports_use_the_soft_labels_tensor_and_the_error_names_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Rec::new("plain").write(&d.join("plain"));
    let o = export(d, "plain", "uniter-npz", "npz", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("butd extract --soft-labels"),
        "{}",
        stderr(&o)
    );
    Rec {
        soft_labels: true,
        ..Rec::new("soft")
    }
    .write(&d.join("soft"));
    let o = export(d, "soft", "uniter-npz", "npz", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let entry = butd_formats::read_uniter_npz(&d.join("npz/soft.npz")).unwrap();
    let soft = entry.get("soft_labels").expect("soft_labels in the npz");
    assert_eq!(soft.shape, [2, 1601]);
}

#[test]
fn an_obj36_export_of_a_folder_with_two_selections_is_refused_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Rec {
        selection: Some(("adaptive", 10, 100)),
        ..Rec::new("a")
    }
    .write(&d.join("recs"));
    Rec {
        selection: Some(("fixed", 36, 36)),
        ..Rec::new("b")
    }
    .write(&d.join("recs"));
    let o = export(d, "recs", "lxmert-tsv", "obj36.tsv", &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("\"fixed 36\"") && stderr(&o).contains("\"adaptive 10–100 boxes"),
        "{}",
        stderr(&o)
    );
    assert!(!d.join("obj36.tsv").exists());
    let o = export(
        d,
        "recs",
        "lxmert-tsv",
        "obj36.tsv",
        &["--allow-mixed-selections"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // BUTD TSV holds any mix (generate_tsv's own output is adaptive).
    std::fs::write(d.join("ids.json"), r#"{"a": 1, "b": 2}"#).unwrap();
    let o = export(d, "recs", "butd-tsv", "b.tsv", &["--id-map", "ids.json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
