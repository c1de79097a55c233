//! The reader against the synthetic BUTD model (golden/SYNTHETIC.md): its figures,
//! its layer table (synthetic_constants.json) and every value of every blob, bit for bit, in
//! the V2 float, V1 float and V2 double encodings. The models are written into $BUTD_CACHE
//! by `butd-synth` when missing; its own tests pin the files to the documented sha256s, so
//! a value the reader decodes differently from the recipe is the reader's fault.

use butd_caffe::{BlobDtype, CaffeModel, Format};
use butd_synth::Variant;
use butd_synth::{layers as constants, Layer as LayerSpec};

/// The synthetic model `variant`, written into the butd cache when missing.
fn synthetic_model(variant: Variant) -> std::path::PathBuf {
    butd_synth::cached(variant).expect("the synthetic model is written")
}

// The ten layers after `attr_prob` that the BUTD test net does not use (SYNTHETIC.md §1).
use butd_synth::UNUSED_BY_TEST_NET as EXTRA_LAYERS;

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
fn v2_figures_match_synthetic_md() {
    let model = CaffeModel::open(synthetic_model(Variant::V2_FLOAT)).unwrap();
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
    let model = CaffeModel::open(synthetic_model(Variant::V2_FLOAT)).unwrap();
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
    let model = CaffeModel::open(synthetic_model(Variant::V1_FLOAT)).unwrap();
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
    let model = CaffeModel::open(synthetic_model(Variant::V2_DOUBLE)).unwrap();
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
    let expected: Vec<f64> = spec.blobs[0]
        .values(&spec.name, 0)
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
    for (layer, spec) in model.layers().iter().zip(specs) {
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
            let expected = bspec.values(&spec.name, j);
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
