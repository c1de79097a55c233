//! `butd-extract` (run as `butd extract`) end to end: records, failures, exit codes. Uses the synthetic weights
//! converted with the built-in mapping (shared with the model's golden tests) and the small
//! golden images, so it runs in seconds.

use butd_testkit as support;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

/// Tensor name → (dtype, shape).
type TensorShapes = HashMap<String, (String, Vec<u64>)>;

/// A record's header: its tensors' dtypes and shapes, and the metadata.
fn read_header(path: &Path) -> (TensorShapes, HashMap<String, String>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut tensors = HashMap::new();
    let mut meta = HashMap::new();
    for (key, value) in header.as_object().unwrap() {
        if key == "__metadata__" {
            for (k, v) in value.as_object().unwrap() {
                meta.insert(k.clone(), v.as_str().unwrap().to_string());
            }
        } else {
            let shape = value["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            tensors.insert(
                key.clone(),
                (value["dtype"].as_str().unwrap().to_string(), shape),
            );
        }
    }
    (tensors, meta)
}

/// A fresh output folder for one test (removed when dropped).
struct OutDir(std::path::PathBuf);

impl OutDir {
    fn new(test: &str) -> OutDir {
        let dir = std::env::temp_dir().join(format!("butd-extract-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        OutDir(dir)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn butd_extract() -> Command {
    Command::new(env!("CARGO_BIN_EXE_butd-extract"))
}

/// The lines of `failures.tsv` after its header, as (image, id, reason).
fn failure_lines(out: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(out.join("failures.tsv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("image\tid\treason"), "{text}");
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

#[test]
fn extract_writes_records_and_lists_failures() {
    let weights = support::synthetic_hf_weights();
    let images = support::golden_dir().join("images");
    let out = OutDir::new("failures");
    let not_an_image = support::golden_dir().join("index.json");
    let status = butd_extract()
        .args(["--weights"])
        .arg(&weights)
        .arg(images.join("chelsea_tiny.png"))
        .arg(images.join("chelsea_micro.png"))
        .arg(&not_an_image)
        .arg("--soft-labels")
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "some images failed: exit status 1");

    let failures = failure_lines(out.path());
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert!(failures[0].0.ends_with("chelsea_micro.png"), "{failures:?}");
    assert_eq!(failures[0].1, "chelsea_micro");
    assert!(failures[0].2.starts_with("no proposals"), "{failures:?}");
    assert!(failures[1].0.ends_with("index.json"), "{failures:?}");
    assert!(failures[1].2.contains("expected a JPEG"), "{failures:?}");

    let (tensors, meta) = read_header(&out.path().join("chelsea_tiny.safetensors"));
    let golden = support::golden_dir().join("chelsea_tiny.safetensors");
    let (golden_tensors, golden_meta) = read_header(&golden);
    for name in ALWAYS_WRITTEN {
        assert_eq!(
            tensors.get(name),
            golden_tensors.get(name),
            "{name}: dtype and shape as the golden file's"
        );
    }
    assert!(
        !tensors.contains_key("cls_prob"),
        "activations only with --dump-activations"
    );
    let k = golden_tensors["boxes"].1[0];
    assert_eq!(
        tensors["soft_labels"],
        ("F16".to_string(), vec![k, 1601]),
        "--soft-labels: the kept rows of cls_prob, float16"
    );
    // Provenance: what made the record.
    assert_eq!(
        meta["image_sha256"], golden_meta["image_sha256"],
        "the image's bytes"
    );
    assert_eq!(meta["weights_sha256"].len(), 64);
    assert!(
        meta["weights_mapping"].starts_with("builtin:caffe-to-hf-frcnn ("),
        "{}",
        meta["weights_mapping"]
    );
    assert_eq!(meta["butd_version"], env!("CARGO_PKG_VERSION"));
    for (key, value) in [
        ("select_mode", "adaptive"),
        ("conf_thresh", "0.2"),
        ("min_boxes", "10"),
        ("max_boxes", "100"),
    ] {
        assert_eq!(meta[key], value, "{key}");
    }
    assert_eq!(meta["format"], "butd-record-v1");
    assert_eq!(meta["result"], "detections");
    assert_eq!(meta["image_name"], "chelsea_tiny.png");
    assert_eq!(meta["device"], "cpu");
    assert_eq!(meta["precision"], "fp32");
    for key in [
        "orig_h",
        "orig_w",
        "im_scale",
        "net_h",
        "net_w",
        "num_rois",
        "num_boxes",
        "selection",
    ] {
        assert_eq!(meta[key], golden_meta[key], "metadata {key}");
    }

    // Caffe's crash case: a complete record without detections, as the golden one has 0 rois.
    let (tensors, meta) = read_header(&out.path().join("chelsea_micro.safetensors"));
    let (golden_tensors, golden_meta) =
        read_header(&support::golden_dir().join("chelsea_micro.safetensors"));
    assert_eq!(
        tensors["rois"], golden_tensors["rois"],
        "rois 0×5 as Caffe's"
    );
    assert_eq!(tensors["features"], ("F32".to_string(), vec![0, 2048]));
    assert_eq!(tensors["boxes"], ("F32".to_string(), vec![0, 4]));
    assert_eq!(tensors["keep"], ("I64".to_string(), vec![0]));
    assert_eq!(tensors["max_conf"], ("F64".to_string(), vec![0]));
    assert_eq!(meta["result"], "no_proposals");
    assert!(meta["reason"].starts_with("no proposals"));
    for key in ["orig_h", "orig_w", "im_scale"] {
        assert_eq!(meta[key], golden_meta[key], "metadata {key}");
    }
    assert!(!out.path().join("index.safetensors").exists());
}

/// The final tensors every record has (the record contract's list).
use butd_record::tensors::ALWAYS_WRITTEN;

/// The files of `dir`, sorted.
fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `images/<id>.png` copies of the golden `chelsea_tiny.png` (fast to extract), one per id.
fn tiny_copies(images: &Path, ids: &[&str]) {
    std::fs::create_dir_all(images).unwrap();
    for id in ids {
        let tiny = support::golden_dir().join("images/chelsea_tiny.png");
        std::fs::copy(tiny, images.join(format!("{id}.png"))).unwrap();
    }
}

/// Acceptance: kill -9 in the middle of a run, then the same command again: every image has
/// exactly one complete record, none half-written, the records of the killed run are kept.
#[test]
fn kill_9_then_resume_gives_every_image_exactly_once() {
    let weights = support::synthetic_hf_weights();
    let work = OutDir::new("kill9");
    let images = work.path().join("images");
    let out = work.path().join("out");
    let ids = ["t0", "t1", "t2", "t3"];
    tiny_copies(&images, &ids);
    let command = || {
        let mut c = butd_extract();
        c.arg("--weights")
            .arg(&weights)
            .arg(&images)
            .arg("--out")
            .arg(&out)
            .stderr(std::process::Stdio::piped());
        c
    };
    let mut child = command().spawn().unwrap();
    let first = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        let records: Vec<String> = std::fs::read_dir(&out)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".safetensors"))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(name) = records.first() {
            break out.join(name);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let killed_records = file_names(&out)
        .into_iter()
        .filter(|n| n.ends_with(".safetensors"))
        .count();
    assert!(
        killed_records < ids.len(),
        "killed in the middle of the run"
    );
    use std::os::unix::fs::MetadataExt;
    let first_inode = std::fs::metadata(&first).unwrap().ino();
    // What a kill during a record's write leaves behind.
    std::fs::write(out.join(".butd-record-Killed.tmp"), b"half a record").unwrap();

    let resumed = command().output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("{killed_records} with a record already")),
        "{stderr}"
    );
    assert!(
        stderr.contains("removed 1 unfinished record file"),
        "{stderr}"
    );
    let mut expected: Vec<String> = ids.iter().map(|id| format!("{id}.safetensors")).collect();
    expected.extend([".butd-extract.lock".to_string(), "failures.tsv".to_string()]);
    expected.sort();
    assert_eq!(
        file_names(&out),
        expected,
        "one record per image, no temporary file"
    );
    assert_eq!(
        std::fs::metadata(&first).unwrap().ino(),
        first_inode,
        "a record of the killed run is kept, not extracted again"
    );
    let golden = read_header(&support::golden_dir().join("chelsea_tiny.safetensors")).0;
    for id in ids {
        let path = out.join(format!("{id}.safetensors"));
        assert!(
            matches!(
                butd_model::record::record_state(&path),
                butd_model::record::RecordState::Complete { result, .. } if result == "detections"
            ),
            "{id}"
        );
        let tensors = read_header(&path).0;
        for name in ALWAYS_WRITTEN {
            assert_eq!(tensors.get(name), golden.get(name), "{id}: {name}");
        }
    }
    assert!(failure_lines(&out).is_empty());

    // A third run has nothing to do and says so.
    let again = command().output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stderr)
        .contains("4 with a record already, 0 listed as failed and skipped, 0 to extract"));
}

/// A PNG that says `width`×`height` in its header, with `pixels` (RGB) or no image data.
fn png_file(path: &Path, width: u32, height: u32, pixels: Option<&[u8]>) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = png::Encoder::new(file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().unwrap();
    if let Some(pixels) = pixels {
        writer.write_image_data(pixels).unwrap();
    }
    // Without data, dropping the writer ends the file after the header (no IDAT at all).
}

/// Acceptance: each bad input yields a line in failures.tsv, valid but unusual images a record
/// (or a failure line with its reason), and the run completes.
#[test]
fn bad_inputs_are_listed_and_the_run_completes() {
    let weights = support::synthetic_hf_weights();
    let work = OutDir::new("bad-inputs");
    let dir = work.path().join("images");
    let out = work.path().join("out");
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../preprocess/tests/data");
    // Invalid inputs: id → what the reason must say.
    std::fs::write(dir.join("empty.jpg"), b"").unwrap();
    let jpeg = std::fs::read(fixtures.join("jpeg_444.jpg")).unwrap();
    std::fs::write(dir.join("truncated.jpg"), &jpeg[..jpeg.len() / 2]).unwrap();
    std::fs::write(dir.join("text.jpg"), b"this is not an image\n").unwrap();
    png_file(&dir.join("huge.png"), 20000, 20000, None);
    let refused = [
        ("empty", "0 bytes"),
        ("truncated", "truncated"),
        ("text", "expected a JPEG"),
        ("huge", "more than the limit"),
    ];
    // Valid images in unusual encodings (decoded as cv2.imread decodes them).
    for (name, fixture) in [
        ("cmyk.jpg", "jpeg_cmyk.jpg"),
        ("rgb16.png", "png_rgb16.png"),
        ("palette.png", "png_palette_trns.png"),
        ("gray_alpha.png", "png_gray_alpha.png"),
        ("exif_rotated.jpg", "jpeg_exif6.jpg"),
    ] {
        std::fs::copy(fixtures.join(fixture), dir.join(name)).unwrap();
    }
    png_file(&dir.join("one_pixel.png"), 1, 1, Some(&[200, 120, 40]));

    let started = std::time::Instant::now();
    let output = butd_extract()
        .arg("--weights")
        .arg(&weights)
        .arg(&dir)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "failures, but the run completed: {stderr}"
    );
    assert!(stderr.contains("10 images"), "{stderr}");
    let failures = failure_lines(&out);
    for (id, says) in refused {
        let line = failures
            .iter()
            .find(|f| f.1 == id)
            .unwrap_or_else(|| panic!("no failure line for {id}: {failures:?}"));
        assert!(line.2.contains(says), "{id}: {line:?}");
        assert!(!out.join(format!("{id}.safetensors")).exists(), "{id}");
    }
    // The 20000×20000 PNG is refused from its header: the run never held its 1.2 GB.
    assert!(started.elapsed().as_secs() < 600);
    for id in ["cmyk", "rgb16", "palette", "gray_alpha", "exif_rotated"] {
        let meta = read_header(&out.join(format!("{id}.safetensors"))).1;
        assert_eq!(meta["result"], "detections", "{id}");
        assert!(failures.iter().all(|f| f.1 != id), "{id}: {failures:?}");
    }
    // The EXIF Orientation 6 (rotate 90°) is applied, as cv2.imread does: the stored image is
    // wider than high, the record's image is higher than wide.
    let meta = read_header(&out.join("exif_rotated.safetensors")).1;
    let (h, w): (usize, usize) = (
        meta["orig_h"].parse().unwrap(),
        meta["orig_w"].parse().unwrap(),
    );
    assert!(h > w, "orientation applied: {h}×{w}");
    // 1×1: upscaled to 600×600; a record either way, and a failure line when it has no
    // proposals.
    let meta = read_header(&out.join("one_pixel.safetensors")).1;
    assert_eq!(
        (meta["orig_h"].as_str(), meta["orig_w"].as_str()),
        ("1", "1")
    );
    assert_eq!(
        meta["result"] == "no_proposals",
        failures
            .iter()
            .any(|f| f.1 == "one_pixel" && f.2.starts_with("no proposals")),
        "{failures:?}"
    );
}

#[test]
fn extract_fixed_boxes_with_activations() {
    let weights = support::synthetic_hf_weights();
    let out = OutDir::new("fixed");
    let status = butd_extract()
        .args(["--fixed", "36", "--dump-activations", "--weights"])
        .arg(&weights)
        .arg(support::golden_dir().join("images/chelsea_tiny.png"))
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let (tensors, meta) = read_header(&out.path().join("chelsea_tiny.safetensors"));
    assert_eq!(tensors["boxes"], ("F32".to_string(), vec![36, 4]));
    assert_eq!(meta["num_boxes"], "36");
    assert_eq!(meta["selection"], "argsort_min_boxes");
    let golden = read_header(&support::golden_dir().join("chelsea_tiny.safetensors")).0;
    for name in [
        "image_bgr",
        "rpn_cls_prob_reshape",
        "rpn_bbox_pred",
        "cls_prob",
        "predicted_cls",
        "attr_prob",
    ] {
        assert_eq!(
            tensors.get(name),
            golden.get(name),
            "{name}: dtype and shape as the golden file's"
        );
    }
    assert_eq!(tensors["pool5_flat"], ("F32".to_string(), vec![80, 2048]));
    assert_eq!(
        tensors["res4b22"],
        ("F32".to_string(), vec![1, 1024, 38, 57])
    );
    assert_eq!(tensors["data"], ("F32".to_string(), vec![1, 3, 600, 900]));
    assert!(failure_lines(out.path()).is_empty());
}

#[test]
fn extract_usage_and_weights_errors_exit_2() {
    let out = OutDir::new("usage");
    let image = support::golden_dir().join("images/chelsea_tiny.png");
    let missing = butd_extract()
        .args(["--weights", "/nonexistent/w.safetensors"])
        .arg(&image)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/w.safetensors"));
    let bad_device = butd_extract()
        .args(["--device", "tpu", "--weights", "w"])
        .arg(&image)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert_eq!(bad_device.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_device.stderr).contains("expected cpu, cuda or cuda:N"));
}

/// A copy of the synthetic weights with `value` as the first element of the tensor `key_suffix`.
fn weights_with(out: &Path, key_suffix: &str, value: f32) -> std::path::PathBuf {
    let mut bytes = std::fs::read(support::synthetic_hf_weights()).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let (key, entry) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with(key_suffix))
        .unwrap_or_else(|| panic!("no tensor *{key_suffix}"));
    assert_eq!(entry["dtype"], "F32", "{key}");
    let start = 8 + n + entry["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[start..start + 4].copy_from_slice(&value.to_le_bytes());
    std::fs::create_dir_all(out).unwrap();
    let path = out.join("nan.safetensors");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn nan_weights_give_a_failure_line_per_image_and_the_run_goes_on() {
    let out = OutDir::new("nan-weights");
    let weights = weights_with(&out.path().join("w"), "cls_score.weight", f32::NAN);
    let images = support::golden_dir().join("images");
    let result = butd_extract()
        .arg("--weights")
        .arg(&weights)
        .arg(images.join("chelsea_tiny.png"))
        .arg(images.join("camera_gray.png"))
        .arg("--out")
        .arg(out.path().join("records"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(
        result.status.code(),
        Some(1),
        "exit 1, not a panic: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let failures = failure_lines(&out.path().join("records"));
    assert_eq!(failures.len(), 2, "both images tried: {failures:?}");
    for (_, _, reason) in &failures {
        assert!(reason.contains("non-finite class scores"), "{reason}");
    }
}

#[test]
fn a_folder_with_link_loops_and_a_fifo_is_walked_and_the_run_completes() {
    let out = OutDir::new("loops-fifo");
    let images = out.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::copy(
        support::golden_dir().join("images/chelsea_tiny.png"),
        images.join("chelsea_tiny.png"),
    )
    .unwrap();
    std::os::unix::fs::symlink(".", images.join("l1")).unwrap();
    std::os::unix::fs::symlink(".", images.join("l2")).unwrap();
    let fifo = images.join("pipe.jpg");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let result = butd_extract()
        .arg("--weights")
        .arg(support::synthetic_hf_weights())
        .arg(&images)
        .arg("--out")
        .arg(out.path().join("records"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("symbolic link loop"), "{stderr}");
    let failures = failure_lines(&out.path().join("records"));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].1, "pipe");
    assert!(failures[0].2.contains("FIFO"), "{failures:?}");
    assert!(out
        .path()
        .join("records/chelsea_tiny.safetensors")
        .is_file());
}

/// Acceptance: one command writes an LXMERT obj36 TSV from a folder of images; kill -9 in the
/// middle, the same command again, and the TSV holds every image exactly once. The export step
/// runs `butd` (built beside `butd-extract` by `cargo build --release --workspace --bins`).
#[test]
fn format_lxmert_tsv_after_kill_9_holds_every_image_exactly_once() {
    let butd = Path::new(env!("CARGO_BIN_EXE_butd-extract")).with_file_name("butd");
    assert!(
        butd.is_file(),
        "{} is missing: build it with `cargo build --release -p butd`",
        butd.display()
    );
    let weights = support::synthetic_hf_weights();
    let work = OutDir::new("format");
    let images = work.path().join("images");
    let tsv = work.path().join("feats.tsv");
    let records = work.path().join("feats.tsv.records");
    let ids = ["t0", "t1", "t2"];
    tiny_copies(&images, &ids);
    let command = || {
        let mut c = butd_extract();
        c.arg("--weights").arg(&weights).arg(&images);
        c.args(["--preset", "lxmert", "--format", "lxmert-tsv", "-o"])
            .arg(&tsv);
        c.stderr(std::process::Stdio::piped());
        c
    };
    let mut child = command().spawn().unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before it could be killed");
        }
        let done = std::fs::read_dir(&records)
            .map(|d| {
                d.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with('t'))
            })
            .unwrap_or(false);
        if done {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL, during the extraction
    child.wait().unwrap();
    assert!(!tsv.exists(), "no file before every image has its record");

    let resumed = command().output().unwrap();
    let stderr = String::from_utf8_lossy(&resumed.stderr);
    assert_eq!(resumed.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("exported 3 image(s)"), "{stderr}");
    let text = std::fs::read_to_string(&tsv).unwrap();
    let mut rows: Vec<&str> = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    rows.sort();
    assert_eq!(rows, ids, "every image exactly once");
    let num_boxes: Vec<&str> = text
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').nth(7).unwrap())
        .collect();
    assert_eq!(num_boxes, ["36"; 3], "--preset lxmert: 36 boxes");

    // The same command once more: nothing to extract, the same file again.
    let again = command().output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&tsv).unwrap(), text);
}

#[test]
fn fixed_outside_1_to_300_is_refused() {
    for n in ["0", "301"] {
        let out = butd_extract()
            .args([
                "--weights",
                "w.safetensors",
                "x.png",
                "--out",
                "o",
                "--fixed",
                n,
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("expected 1 to 300"), "{stderr}");
    }
}

#[test]
fn a_rerun_with_other_settings_is_refused_naming_the_setting_unless_told() {
    let out = OutDir::new("settings");
    let micro = support::golden_dir().join("images/chelsea_micro.png");
    let run = |extra: &[&str]| {
        butd_extract()
            .arg("--weights")
            .arg(support::synthetic_hf_weights())
            .arg(&micro)
            .args(extra)
            .arg("--out")
            .arg(out.path())
            .output()
            .unwrap()
    };
    let record = out.path().join("chelsea_micro.safetensors");
    // Caffe's crash image: a record without detections, written quickly (no heads).
    assert_eq!(run(&["--dump-activations"]).status.code(), Some(1));
    let (tensors, meta) = read_header(&record);
    let (golden, _) = read_header(&support::golden_dir().join("chelsea_micro.safetensors"));
    for name in ["image_bgr", "rpn_cls_prob_reshape", "rpn_bbox_pred"] {
        assert_eq!(
            tensors.get(name),
            golden.get(name),
            "{name} kept, as the golden has it"
        );
    }
    for name in ["data", "res4b22"] {
        assert!(tensors.contains_key(name), "{name}: computed, so kept");
    }
    assert_eq!(meta["select_mode"], "adaptive");

    let refused = run(&["--fixed", "36"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("select_mode = adaptive, this run fixed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--overwrite") && stderr.contains("--allow-mixed"),
        "{stderr}"
    );
    assert_eq!(
        read_header(&record).1["select_mode"],
        "adaptive",
        "nothing extracted"
    );

    let kept = run(&["--fixed", "36", "--allow-mixed"]);
    assert!(String::from_utf8_lossy(&kept.stderr).contains("kept (--allow-mixed)"));
    assert_eq!(read_header(&record).1["select_mode"], "adaptive");

    let replaced = run(&["--fixed", "36", "--overwrite"]);
    assert_eq!(
        replaced.status.code(),
        Some(1),
        "the crash image fails again"
    );
    let meta = read_header(&record).1;
    assert_eq!(
        (meta["select_mode"].as_str(), meta["max_boxes"].as_str()),
        ("fixed", "36")
    );
}

#[test]
fn batch_3_writes_the_same_records_and_failures_as_one_image_at_a_time() {
    let weights = support::synthetic_hf_weights();
    let images = support::golden_dir().join("images");
    let list = OutDir::new("batch-list");
    std::fs::create_dir_all(list.path()).unwrap();
    // 80 rois, no proposals, 300 rois, a file that does not decode (a failure before the
    // network), then 80 rois again: two batches of 3 and 1 network images.
    let broken = list.path().join("broken.jpg");
    std::fs::write(&broken, b"not a jpeg").unwrap();
    let copy = list.path().join("tiny_again.png");
    std::fs::copy(images.join("chelsea_tiny.png"), &copy).unwrap();
    let inputs = [
        images.join("chelsea_tiny.png"),
        images.join("chelsea_micro.png"),
        images.join("rocket_strip.png"),
        broken,
        copy,
    ];
    let run = |batch: &str, out: &Path| {
        let status = butd_extract()
            .arg("--weights")
            .arg(&weights)
            .args(&inputs)
            .args(["--batch", batch, "--soft-labels", "-o"])
            .arg(out)
            .status()
            .unwrap();
        assert_eq!(
            status.code(),
            Some(1),
            "--batch {batch}: a failure is listed"
        );
    };
    let (one, three) = (OutDir::new("batch-1"), OutDir::new("batch-3"));
    run("1", one.path());
    run("3", three.path());
    let names = |dir: &Path| {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(one.path()), names(three.path()));
    assert_eq!(
        failure_lines(one.path()),
        failure_lines(three.path()),
        "the same failures, with the same reasons"
    );
    for id in [
        "chelsea_tiny",
        "chelsea_micro",
        "rocket_strip",
        "tiny_again",
    ] {
        let file = format!("{id}.safetensors");
        let (a, b) = (one.path().join(&file), three.path().join(&file));
        assert_eq!(read_header(&a).0, read_header(&b).0, "{id}: tensors");
        // Tensor data: everything after the header, byte for byte.
        let data = |p: &Path| {
            let bytes = std::fs::read(p).unwrap();
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            bytes[8 + n..].to_vec()
        };
        assert!(
            data(&a) == data(&b),
            "{id}: tensor bytes differ with --batch 3"
        );
    }
}
