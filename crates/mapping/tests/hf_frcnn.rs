//! The built-in Caffe → Hugging Face FRCNN mapping on the synthetic BUTD model: the written
//! file holds exactly the manifest's keys, and each transform computes what Caffe computes.
//! Caffe-side values are read from the caffemodel with `butd-caffe`, HF-side values from the
//! written safetensors file with the `safetensors` crate; expected numbers come from Caffe's
//! formulas (docs/semantics.md), never from this crate.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use butd_caffe::CaffeModel;
use butd_mapping::{BlobUse, FloatDtype, Inventory, Mapping, Plan, WriteOptions};
use common::Rng;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// HF anchor k = 3·size + ratio (docs/ports.md §C.3) ← Caffe anchor a = 4·ratio + scale
/// (docs/semantics.md §2.4): `butd-host`'s one anchor table, which the model also uses.
fn caffe_anchor_of(k: usize) -> usize {
    butd_host::anchors::hf_anchor_order()[k]
}

struct Converted {
    _dir: tempfile::TempDir,
    path: PathBuf,
    bytes: Vec<u8>,
}

fn model_path() -> PathBuf {
    common::synthetic_model("v2")
}

fn convert(model: &Path, float: FloatDtype, dir: &Path, name: &str) -> PathBuf {
    let caffe = CaffeModel::open(model).unwrap();
    let mapping = Mapping::builtin("caffe-to-hf-frcnn").unwrap();
    let plan = Plan::new(
        &mapping,
        &Inventory::of(&caffe),
        &mapping.target_manifest().unwrap(),
    );
    let out = dir.join(name);
    let options = WriteOptions {
        float,
        metadata: vec![],
        ..WriteOptions::default()
    };
    plan.write_safetensors(&mapping, &caffe, &out, &options)
        .unwrap();
    out
}

/// The synthetic model converted once per test binary.
fn converted() -> &'static Converted {
    static CELL: OnceLock<Converted> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = convert(&model_path(), FloatDtype::F32, dir.path(), "hf.safetensors");
        let bytes = std::fs::read(&path).unwrap();
        Converted {
            _dir: dir,
            path,
            bytes,
        }
    })
}

fn hf() -> SafeTensors<'static> {
    SafeTensors::deserialize(&converted().bytes).expect("the safetensors crate loads the file")
}

fn hf_f32(name: &str) -> (Vec<usize>, Vec<f32>) {
    let st = hf();
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

fn caffe() -> CaffeModel {
    CaffeModel::open(model_path()).unwrap()
}

fn blob(model: &CaffeModel, layer: &str, i: usize) -> Vec<f32> {
    let l = model
        .layer(layer)
        .unwrap_or_else(|| panic!("no layer {layer}"));
    model.to_vec_f32(&l.blobs[i])
}

/// Σ f(w·x) + f(b) per row of a row-major W, in f64.
fn row_sums(w: &[f32], b: &[f32], x: &[f32], f: impl Fn(f64) -> f64) -> Vec<f64> {
    w.chunks_exact(x.len())
        .zip(b)
        .map(|(row, &bias)| {
            row.iter()
                .zip(x)
                .map(|(&a, &v)| f(a as f64 * v as f64))
                .sum::<f64>()
                + f(bias as f64)
        })
        .collect()
}

/// y = W·x + b for a row-major W, in f64.
fn affine(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f64> {
    row_sums(w, b, x, |v| v)
}

/// Σ|w·x| + |b| per row: the scale of an f32 rounding error in the row's result.
fn magnitude(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f64> {
    row_sums(w, b, x, f64::abs)
}

fn manifest_keys(path: &Path) -> Vec<(String, Vec<usize>, String)> {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let shape = k["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (
                k["name"].as_str().unwrap().to_string(),
                shape,
                k["dtype"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn output_has_exactly_the_manifest_keys_order_shapes_and_dtypes() {
    let manifest = manifest_keys(&common::repo_root().join("mappings/hf-frcnn.manifest.json"));
    assert_eq!(manifest.len(), 640);
    let st = hf();
    assert_eq!(st.len(), 640);
    let bytes = &converted().bytes;
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + header_len]).unwrap();
    let base = st.tensor(&manifest[0].0).unwrap().data().as_ptr() as usize;
    let (mut last_key_pos, mut last_offset) = (0, None);
    for (name, shape, dtype) in &manifest {
        let t = st.tensor(name).unwrap_or_else(|_| panic!("{name} missing"));
        assert_eq!(t.shape(), shape.as_slice(), "{name}");
        let want = match dtype.as_str() {
            "float32" => Dtype::F32,
            "int64" => Dtype::I64,
            other => panic!("manifest dtype {other}"),
        };
        assert_eq!(t.dtype(), want, "{name}");
        // Order: both the header's key order and the data order follow the manifest.
        let pos = header
            .find(&format!("{}:", serde_json::to_string(name).unwrap()))
            .unwrap();
        assert!(pos > last_key_pos, "{name} is out of order in the header");
        last_key_pos = pos;
        let offset = t.data().as_ptr() as usize - base;
        if let Some(last) = last_offset {
            assert!(offset > last, "{name} is out of order in the data");
        }
        assert_eq!(
            offset % t.dtype().size(),
            0,
            "{name} is not aligned to its dtype"
        );
        last_offset = Some(offset);
    }
    assert!(
        header.contains(r#""__metadata__":{"format":"pt""#),
        "torch-style metadata"
    );
    assert_eq!((8 + header_len) % 8, 0, "data starts 8-byte aligned");
}

#[test]
fn every_caffe_blob_is_consumed_or_ignored_and_only_the_unused_layers_are_ignored() {
    let model = caffe();
    let mapping = Mapping::builtin("caffe-to-hf-frcnn").unwrap();
    let target = mapping.target_manifest().unwrap();
    let plan = Plan::new(&mapping, &Inventory::of(&model), &target);
    assert!(plan.problems.is_empty(), "{:#?}", plan.problems);
    // The ten extra layers after attr_prob (golden/SYNTHETIC.md §1).
    let extra = butd_synth::UNUSED_BY_TEST_NET;
    let mut blobs = 0;
    for layer in model.layers() {
        for (i, _) in layer.blobs.iter().enumerate() {
            blobs += 1;
            let status = &plan
                .blobs
                .iter()
                .find(|b| b.name == format!("{}[{i}]", layer.name))
                .unwrap()
                .status;
            if extra.contains(&layer.name.as_str()) {
                assert!(
                    matches!(status, BlobUse::Ignored(_)),
                    "{}[{i}]: {status:?}",
                    layer.name
                );
            } else {
                assert!(
                    matches!(status, BlobUse::Used(_)),
                    "{}[{i}]: {status:?}",
                    layer.name
                );
            }
        }
    }
    let s = plan.summary(&target);
    assert_eq!(
        (s.blobs, s.consumed, s.ignored, s.unused),
        (blobs, blobs - 19, 19, 0)
    );
    assert_eq!((s.produced, s.target), (640, 640));
}

#[test]
fn objectness_sigmoid_equals_caffe_softmax() {
    let model = caffe();
    let (w, b) = (
        blob(&model, "rpn_cls_score", 0),
        blob(&model, "rpn_cls_score", 1),
    );
    let (shape, hw) = hf_f32("proposal_generator.rpn_head.objectness_logits.weight");
    assert_eq!(shape, [12, 512, 1, 1]);
    let (_, hb) = hf_f32("proposal_generator.rpn_head.objectness_logits.bias");
    let mut rng = Rng(7);
    let (mut worst, mut unsaturated, mut total) = (0f64, 0, 0);
    for _ in 0..200 {
        // rpn/output after its ReLU: non-negative, std ≈ 0.5 (SYNTHETIC.md §5).
        let x: Vec<f32> = rng.vec(512, 1.5).into_iter().map(|v| v.max(0.0)).collect();
        let s = affine(&w, &b, &x); // Caffe's 24 channels (docs/semantics.md §2.3)
        let logit = affine(&hw, &hb, &x);
        for (k, &l) in logit.iter().enumerate() {
            let a = caffe_anchor_of(k);
            let (bg, fg) = (s[a], s[12 + a]);
            let m = bg.max(fg);
            let (e0, e1) = ((bg - m).exp(), (fg - m).exp());
            let caffe_fg = e1 / (e0 + e1);
            let hf_fg = 1.0 / (1.0 + (-l).exp());
            worst = worst.max((caffe_fg - hf_fg).abs());
            unsaturated += usize::from((0.01..0.99).contains(&caffe_fg));
            total += 1;
        }
    }
    assert!(worst <= 1e-6, "max |sigmoid − softmax| = {worst:e}");
    assert!(
        unsaturated * 5 > total,
        "only {unsaturated} of {total} probabilities are informative"
    );
}

/// Row `dst` of `hf` (`rows` rows of equal length) equals row `src_of(dst)` of `caffe`.
fn assert_rows_from(
    hf: &[f32],
    caffe: &[f32],
    rows: usize,
    src_of: impl Fn(usize) -> usize,
    what: &str,
) {
    let row = caffe.len() / rows;
    for dst in 0..rows {
        let src = src_of(dst);
        assert_eq!(
            hf[dst * row..][..row],
            caffe[src * row..][..row],
            "{what} row {dst} ← {src}"
        );
    }
}

#[test]
fn rpn_deltas_rows_come_from_their_caffe_anchor() {
    let model = caffe();
    for (i, key) in [(0, "weight"), (1, "bias")] {
        let caffe = blob(&model, "rpn_bbox_pred", i);
        let (_, hf) = hf_f32(&format!("proposal_generator.rpn_head.anchor_deltas.{key}"));
        assert_rows_from(
            &hf,
            &caffe,
            48,
            |dst| 4 * caffe_anchor_of(dst / 4) + dst % 4,
            key,
        );
    }
}

#[test]
fn cell_anchors_are_caffe_generate_anchors_in_hf_convention() {
    // generate_anchors(base 16, ratios (0.5, 1, 2), scales (4, 8, 16, 32)), docs/semantics.md §2.4:
    // the proposal layer's own table (`butd-host`), so the mapping's constant cannot drift from it.
    let caffe = butd_host::anchors::caffe_anchors();
    assert_eq!(
        caffe[0],
        [-38.0, -16.0, 53.0, 31.0],
        "the §2.4 table's first row"
    );
    let (shape, hf) = hf_f32("proposal_generator.anchor_generator.cell_anchors.0");
    assert_eq!(shape, [12, 4]);
    for k in 0..12 {
        let c = caffe[caffe_anchor_of(k)];
        let h: Vec<f64> = hf[4 * k..4 * k + 4].iter().map(|&v| v as f64).collect();
        assert_eq!(h, [c[0], c[1], c[2] + 1.0, c[3] + 1.0], "anchor {k}");
        // Same geometry under each side's decode: Caffe w = x2 − x1 + 1, HF w = x2 − x1 (docs/ports.md
        // §C.5), centre x1 + 0.5·w on both.
        let (cw, chh) = (c[2] - c[0] + 1.0, c[3] - c[1] + 1.0);
        let (hw, hh) = (h[2] - h[0], h[3] - h[1]);
        assert_eq!(
            (hw, hh, h[0] + 0.5 * hw, h[1] + 0.5 * hh),
            (cw, chh, c[0] + 0.5 * cw, c[1] + 0.5 * chh)
        );
    }
}

#[test]
fn bbox_deltas_divided_by_hf_weights_equal_caffe_deltas() {
    let model = caffe();
    let (w, b) = (blob(&model, "bbox_pred", 0), blob(&model, "bbox_pred", 1));
    let (shape, hw) = hf_f32("roi_heads.box_predictor.bbox_pred.weight");
    assert_eq!(shape, [6400, 2048]);
    let (_, hb) = hf_f32("roi_heads.box_predictor.bbox_pred.bias");
    let weights = [10.0, 10.0, 5.0, 5.0]; // HF BBOX_REG_WEIGHTS (docs/ports.md §C.0)
    let mut rng = Rng(11);
    for _ in 0..3 {
        let x: Vec<f32> = rng.vec(2048, 1.0).into_iter().map(|v| v.max(0.0)).collect();
        let caffe = affine(&w, &b, &x);
        let hf = affine(&hw, &hb, &x);
        let scale = magnitude(&w, &b, &x);
        for r in 0..6400 {
            // HF row r = class r/4 + 1 of Caffe (background rows 0..3 dropped).
            let got = hf[r] / weights[r % 4];
            let want = caffe[r + 4];
            assert!(
                (got - want).abs() <= 1e-6 * scale[r + 4],
                "row {r}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn background_rows_move_to_the_end() {
    let model = caffe();
    for (layer, key, blobs) in [
        ("cls_score", "cls_score", 2),
        ("cls_embedding", "cls_embedding", 1),
        ("attr_score", "attr_score", 2),
    ] {
        for (i, param) in ["weight", "bias"].into_iter().enumerate().take(blobs) {
            let caffe = blob(&model, layer, i);
            let (shape, hf) = hf_f32(&format!("roi_heads.box_predictor.{key}.{param}"));
            let rows = shape[0];
            let src_of = |r: usize| if r + 1 == rows { 0 } else { r + 1 };
            assert_rows_from(&hf, &caffe, rows, src_of, &format!("{key}.{param}"));
        }
    }
}

#[test]
fn batchnorm_equals_caffe_formula() {
    let model = caffe();
    let st = hf();
    let eps = 1e-5f32;
    let mut rng = Rng(3);
    let mut layers = 0;
    for layer in model.layers().iter().filter(|l| l.kind == "BatchNorm") {
        layers += 1;
        let suffix = &layer.name["bn".len()..];
        let scale = format!("scale{suffix}");
        let prefix = hf_norm_prefix(suffix);
        let (m, v, f) = (
            blob(&model, &layer.name, 0),
            blob(&model, &layer.name, 1),
            blob(&model, &layer.name, 2)[0],
        );
        let (gamma, beta) = (blob(&model, &scale, 0), blob(&model, &scale, 1));
        // docs/semantics.md §2.2: sf = f32 reciprocal (0 for f = 0), then a multiply.
        let sf = if f == 0.0 { 0.0 } else { 1.0 / f };
        let get = |p: &str| hf_f32(&format!("{prefix}.norm.{p}")).1;
        let (rm, rv, w, b) = (
            get("running_mean"),
            get("running_var"),
            get("weight"),
            get("bias"),
        );
        for c in 0..m.len() {
            assert_eq!(rm[c].to_bits(), (m[c] * sf).to_bits(), "{prefix} mean {c}");
            assert_eq!(rv[c].to_bits(), (v[c] * sf).to_bits(), "{prefix} var {c}");
            for _ in 0..4 {
                let x = rng.uniform() * 4.0;
                let caffe = (x - m[c] * sf) / (v[c] * sf + eps).sqrt() * gamma[c] + beta[c];
                let torch = (x - rm[c]) / (rv[c] + eps).sqrt() * w[c] + b[c];
                assert_eq!(
                    caffe.to_bits(),
                    torch.to_bits(),
                    "{prefix} channel {c} at x = {x}"
                );
            }
        }
        let n = st
            .tensor(&format!("{prefix}.norm.num_batches_tracked"))
            .unwrap();
        assert_eq!(
            (n.dtype(), n.shape(), n.data()),
            (Dtype::I64, &[][..], &0i64.to_le_bytes()[..])
        );
    }
    assert_eq!(layers, 104);
}

/// The HF module of a BatchNorm layer, from the Caffe name suffix (docs/ports.md §G naming).
fn hf_norm_prefix(suffix: &str) -> String {
    if suffix == "_conv1" {
        return "backbone.stem.conv1".into();
    }
    let (block, branch) = suffix.split_once("_branch").unwrap();
    let stage = &block[..1];
    let index = match &block[1..] {
        "a" => "0".to_string(),
        "b" => "1".to_string(),
        "c" => "2".to_string(),
        b => b.strip_prefix('b').unwrap().to_string(),
    };
    let module = match branch {
        "1" => "shortcut",
        "2a" => "conv1",
        "2b" => "conv2",
        "2c" => "conv3",
        other => panic!("branch {other}"),
    };
    let root = if stage == "5" {
        "roi_heads.res5".to_string()
    } else {
        format!("backbone.res{stage}")
    };
    format!("{root}.{index}.{module}")
}

#[test]
fn plain_copies_are_bit_exact() {
    let model = caffe();
    let mut checked = 0;
    let mut pairs: Vec<(String, String, usize)> =
        vec![("conv1".into(), "backbone.stem.conv1.weight".into(), 0)];
    for layer in model
        .layers()
        .iter()
        .filter(|l| l.kind == "Convolution" && l.name.starts_with("res"))
    {
        pairs.push((
            layer.name.clone(),
            format!("{}.weight", hf_norm_prefix(&layer.name[3..])),
            0,
        ));
    }
    for (i, p) in ["weight", "bias"].into_iter().enumerate() {
        pairs.push((
            "rpn_conv/3x3".into(),
            format!("proposal_generator.rpn_head.conv.{p}"),
            i,
        ));
        pairs.push((
            "fc_attr".into(),
            format!("roi_heads.box_predictor.fc_attr.{p}"),
            i,
        ));
    }
    for (layer, key, i) in &pairs {
        assert_eq!(
            hf_f32(key).1,
            blob(&model, layer, *i),
            "{key} ← {layer}[{i}]"
        );
        checked += 1;
    }
    assert_eq!(checked, 1 + 103 + 4);
}

#[test]
fn f16_output_is_the_rounded_f32_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = convert(
        &model_path(),
        FloatDtype::F16,
        dir.path(),
        "hf16.safetensors",
    );
    let bytes = std::fs::read(&path).unwrap();
    let st16 = SafeTensors::deserialize(&bytes).unwrap();
    let st32 = hf();
    assert_eq!(st16.len(), 640);
    for (name, t32) in st32.tensors() {
        let t16 = st16.tensor(&name).unwrap();
        assert_eq!(t16.shape(), t32.shape(), "{name}");
        if t32.dtype() == Dtype::I64 {
            assert_eq!(
                (t16.dtype(), t16.data()),
                (Dtype::I64, t32.data()),
                "{name}"
            );
            continue;
        }
        assert_eq!(t16.dtype(), Dtype::F16, "{name}");
        for (a, b) in t32
            .data()
            .chunks_exact(4)
            .zip(t16.data().chunks_exact(2))
            .step_by(97)
        {
            let want = half::f16::from_f32(f32::from_le_bytes(a.try_into().unwrap()));
            assert_eq!(
                want.to_bits(),
                u16::from_le_bytes(b.try_into().unwrap()),
                "{name}"
            );
        }
    }
}

#[test]
fn v1_legacy_file_converts_to_the_same_tensors() {
    let v1 = common::synthetic_model("v1");
    let dir = tempfile::tempdir().unwrap();
    let path = convert(&v1, FloatDtype::F32, dir.path(), "hf-v1.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let a = SafeTensors::deserialize(&bytes).unwrap();
    let b = hf();
    let tensors: HashMap<String, _> = b.tensors().into_iter().collect();
    assert_eq!(a.len(), tensors.len());
    for (name, t) in a.tensors() {
        let u = &tensors[&name];
        assert_eq!(
            (t.dtype(), t.shape(), t.data()),
            (u.dtype(), u.shape(), u.data()),
            "{name}"
        );
    }
    assert!(converted().path.exists());
}

#[test]
fn an_unknown_map_name_lists_the_built_in_mappings() {
    let err = butd_mapping::Mapping::load("hf").unwrap_err().to_string();
    assert!(err.contains("built in: caffe-to-hf-frcnn"), "{err}");
    assert!(
        !err.contains("os error"),
        "not reported as a missing file: {err}"
    );
}
