//! The reader against the synthetic BUTD model (golden/SYNTHETIC.md): its figures,
//! its layer table (synthetic_constants.json) and every value of every blob, bit for bit, in
//! the V2 float, V1 float and V2 double encodings. The models are generated into $BUTD_CACHE
//! when missing.

#[path = "common/model_file.rs"]
mod model_file;
#[path = "common/recipe.rs"]
mod recipe;

use butd_caffe::{BlobDtype, CaffeModel, Format};
use model_file::{synthetic_model, V1_FLOAT, V2_DOUBLE, V2_FLOAT};
use recipe::*;

/// The ten layers after `attr_prob` that the BUTD test net does not use (SYNTHETIC.md §1).
const EXTRA_LAYERS: [&str; 10] = [
    "heatmap_conv1",
    "heatmap_conv2",
    "heatmap_conv3",
    "heatmap_embedding",
    "heatmap_scale",
    "fc_rel1",
    "fc_subject",
    "fc_object",
    "rel_merge",
    "rel_score",
];

/// Types that have a V1 enum value (SYNTHETIC.md §2); the V1 file has no type for the others.
const V1_ENUM_TYPES: [&str; 9] = [
    "Convolution",
    "ReLU",
    "Eltwise",
    "InnerProduct",
    "Pooling",
    "Softmax",
    "Flatten",
    "Concat",
    "ArgMax",
];

#[test]
fn recipe_reproduces_the_documented_test_vectors() {
    // SYNTHETIC.md §4.
    assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
    assert_eq!(blob_key("conv1", 0), 0x036443a74fd2bc65);
    assert_eq!(splitmix64(0x036443a74fd2bc65), 0x0bc911d97478ccec);
    let a = f32::from_bits(0x3e4ed917);
    let conv1: Vec<u32> = (0..5)
        .map(|i| recipe_value(0x036443a74fd2bc65, i, a, 0.0).to_bits())
        .collect();
    assert_eq!(
        conv1,
        [0xbe3bcd83, 0x3df905fd, 0xbe07d96f, 0x3da52ee2, 0xbe4b52da]
    );
    assert_eq!(uniform(0x036443a74fd2bc65, 1).to_bits(), 0x3f1a1940);

    assert_eq!(blob_key("bn2a_branch2a", 1), 0x90495dc9dde6d0b8);
    let (a, b) = (f32::from_bits(0x3f20a3d7), f32::from_bits(0x4020a3d7));
    let var: Vec<u32> = (0..5)
        .map(|i| recipe_value(0x90495dc9dde6d0b8, i, a, b).to_bits())
        .collect();
    assert_eq!(
        var,
        [0x402ea426, 0x40385db4, 0x3fffae59, 0x401cd7a1, 0x4044b9a7]
    );

    assert_eq!(blob_key("bbox_pred", 0), 0x2ad7348a73a5c3bb);
    assert_eq!(blob_key("scale4b22_branch2c", 0), 0xcbebf60ef94f1ef8);
    let layers = constants();
    let bbox = &layers.iter().find(|l| l.name == "bbox_pred").unwrap().blobs[0];
    let values = expected_values("bbox_pred", 0, bbox);
    assert_eq!(values.len(), 13_115_392);
    assert_eq!(
        (values[0].to_bits(), values[13_115_391].to_bits()),
        (0x3b17421c, 0x3aa0bc70)
    );
    let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
    assert!((sum - -9.1106620176).abs() < 1e-9, "sum {sum}");
    let cls_bias = &layers.iter().find(|l| l.name == "cls_score").unwrap().blobs[1];
    assert_eq!(
        expected_values("cls_score", 1, cls_bias)[..2]
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>(),
        [0x40872386, 0xc0f41386]
    );
}

#[test]
fn v2_figures_match_synthetic_md() {
    let model = CaffeModel::open(synthetic_model(V2_FLOAT)).unwrap();
    assert_eq!(model.format(), Format::V2);
    assert_eq!(model.net_name(), Some("ResNet-101"));
    let layers = model.layers();
    assert_eq!(layers.len(), 478);
    assert_eq!(layers.iter().filter(|l| !l.blobs.is_empty()).count(), 330);
    assert_eq!(layers.iter().map(|l| l.blobs.len()).sum::<usize>(), 658);
    let (extra, net): (Vec<_>, Vec<_>) = layers
        .iter()
        .partition(|l| EXTRA_LAYERS.contains(&l.name.as_str()));
    assert_eq!(
        extra.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        EXTRA_LAYERS
    );
    assert_eq!(net.iter().map(|l| l.param_count()).sum::<u64>(), 65_559_622);
    assert_eq!(
        extra.iter().map(|l| l.param_count()).sum::<u64>(),
        2_085_174
    );
    assert_eq!(
        layers.iter().map(|l| l.param_count()).sum::<u64>(),
        67_644_796
    );

    let bn: Vec<_> = layers.iter().filter(|l| l.kind == "BatchNorm").collect();
    assert_eq!(bn.len(), 104);
    for l in bn {
        let c = l.blobs[0].shape.clone();
        let shapes: Vec<_> = l.blobs.iter().map(|b| b.shape.clone()).collect();
        assert_eq!(shapes, [c.clone(), c, vec![1]], "{}", l.name);
        assert_eq!(model.to_vec_f32(&l.blobs[2]), [2.0], "{} factor", l.name);
    }
    let scalar = &model.layer("heatmap_scale").unwrap().blobs;
    assert_eq!(scalar.len(), 1);
    assert!(scalar[0].shape.is_empty());
    assert_eq!(model.to_vec_f32(&scalar[0]), [0.75]);
}

#[test]
fn v2_float_every_value_is_bit_exact() {
    let model = CaffeModel::open(synthetic_model(V2_FLOAT)).unwrap();
    check_against_constants(
        &model,
        |spec| spec.kind.clone(),
        |shape| shape.to_vec(),
        BlobDtype::F32,
    );
    // Packed floats are served straight from the file.
    let conv1 = &model.layer("conv1").unwrap().blobs[0];
    assert_eq!(model.data_bytes(conv1).unwrap().len(), 64 * 3 * 7 * 7 * 4);
}

#[test]
fn v1_float_every_value_is_bit_exact() {
    let model = CaffeModel::open(synthetic_model(V1_FLOAT)).unwrap();
    assert_eq!(model.format(), Format::V1);
    check_against_constants(
        &model,
        |spec| {
            if V1_ENUM_TYPES.contains(&spec.kind.as_str()) {
                spec.kind.clone()
            } else {
                String::new()
            }
        },
        legacy_4d,
        BlobDtype::F32,
    );
}

#[test]
fn v2_double_every_value_is_bit_exact() {
    let model = CaffeModel::open(synthetic_model(V2_DOUBLE)).unwrap();
    check_against_constants(
        &model,
        |spec| spec.kind.clone(),
        |shape| shape.to_vec(),
        BlobDtype::F64,
    );
    // The file holds the f32 values widened exactly.
    let spec = &constants()[0];
    let conv1 = &model.layer(&spec.name).unwrap().blobs[0];
    let stored: Vec<f64> = model
        .data_bytes(conv1)
        .unwrap()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let expected: Vec<f64> = expected_values(&spec.name, 0, &spec.blobs[0])
        .into_iter()
        .map(f64::from)
        .collect();
    assert_eq!(stored, expected);
}

/// SYNTHETIC.md §2: a V1 blob's shape right-aligned into 4 dims, padded with 1 on the left.
fn legacy_4d(shape: &[usize]) -> Vec<usize> {
    let mut dims = vec![1; 4 - shape.len()];
    dims.extend_from_slice(shape);
    dims
}

/// Layer table and every blob's values equal synthetic_constants.json and the recipe.
fn check_against_constants(
    model: &CaffeModel,
    kind: impl Fn(&LayerSpec) -> String,
    shape: impl Fn(&[usize]) -> Vec<usize>,
    dtype: BlobDtype,
) {
    let specs = constants();
    assert_eq!(model.layers().len(), specs.len());
    let mut buf = Vec::new();
    for (layer, spec) in model.layers().iter().zip(&specs) {
        assert_eq!(layer.name, spec.name);
        assert_eq!(layer.kind, kind(spec), "{}", spec.name);
        assert_eq!(
            (&layer.bottom, &layer.top),
            (&spec.bottom, &spec.top),
            "{}",
            spec.name
        );
        assert_eq!(layer.blobs.len(), spec.blobs.len(), "{}", spec.name);
        for (j, (blob, bspec)) in layer.blobs.iter().zip(&spec.blobs).enumerate() {
            assert_eq!(blob.shape, shape(&bspec.shape), "{}/{j}", spec.name);
            assert_eq!(blob.dtype, dtype, "{}/{j}", spec.name);
            let expected = expected_values(&spec.name, j, bspec);
            buf.resize(blob.len(), f32::NAN);
            model.read_f32(blob, &mut buf);
            if let Some(i) =
                (0..expected.len()).find(|&i| buf[i].to_bits() != expected[i].to_bits())
            {
                panic!(
                    "{}/{j}[{i}]: read {:#010x}, recipe {:#010x}",
                    spec.name,
                    buf[i].to_bits(),
                    expected[i].to_bits()
                );
            }
        }
    }
}
