//! `butd-extract` (run as `butd extract`) end to end: records, failures, exit codes. Uses the synthetic weights
//! converted with the built-in mapping (shared with the model's golden tests) and the small
//! golden images, so it runs in seconds.

#[path = "../../model/tests/support/mod.rs"]
mod support;

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
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1), "some images failed: exit status 1");

    let failures = std::fs::read_to_string(out.path().join("failures.tsv")).unwrap();
    let lines: Vec<&str> = failures.lines().collect();
    assert_eq!(lines[0], "image\treason");
    assert_eq!(lines.len(), 3, "{failures}");
    assert!(
        lines[1].contains("chelsea_micro.png\tno proposals"),
        "{failures}"
    );
    assert!(lines[2].contains("index.json\t"), "{failures}");

    let (tensors, meta) = read_header(&out.path().join("chelsea_tiny.safetensors"));
    let golden = support::golden_dir().join("chelsea_tiny.safetensors");
    let (golden_tensors, golden_meta) = read_header(&golden);
    for name in [
        "boxes",
        "features",
        "keep",
        "max_conf",
        "objects_id",
        "objects_conf",
        "attrs_id",
        "attrs_conf",
        "im_info",
        "rois",
    ] {
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
    assert_eq!(meta["format"], "butd-record-v1");
    assert_eq!(meta["image_name"], "chelsea_tiny.png");
    assert_eq!(meta["device"], "cpu");
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
    assert!(!out.path().join("chelsea_micro.safetensors").exists());
}

#[test]
fn extract_fixed_boxes_with_activations() {
    let weights = support::synthetic_hf_weights();
    let out = OutDir::new("fixed");
    let status = butd_extract()
        .args([
            "extract",
            "--fixed",
            "36",
            "--dump-activations",
            "--weights",
        ])
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
    let failures = std::fs::read_to_string(out.path().join("failures.tsv")).unwrap();
    assert_eq!(failures, "image\treason\n");
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
