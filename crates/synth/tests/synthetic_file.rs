//! The written files against the figures of golden/SYNTHETIC.md: the sha256 of each variant
//! (the file the golden Caffe run read), the layer and parameter counts, and the recipe's
//! test vectors (§4).
use butd_synth::{blob_key, fnv1a64, layers, recipe_value, splitmix64, uniform, Variant};
use sha2::{Digest, Sha256};

/// sha256 of the variant as streamed by `write`, and its length.
fn digest(variant: Variant) -> (u64, String) {
    let mut hasher = Sha256::new();
    let n = butd_synth::write(&mut hasher, variant).unwrap();
    let hex = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (n, hex)
}

#[test]
fn the_default_file_is_the_one_the_golden_run_read() {
    let (size, sha) = Variant::V2_FLOAT.figures();
    assert_eq!(
        sha,
        "0a7c7c778ef597a49d385c03a023665e3ee64470cd4a4f08dea23d44df1c3998"
    );
    assert_eq!(digest(Variant::V2_FLOAT), (size, sha.to_string()));
}

#[test]
fn the_v1_and_double_variants_have_their_documented_sha256() {
    for v in [Variant::V1_FLOAT, Variant::V2_DOUBLE, Variant::V1_DOUBLE] {
        let (size, sha) = v.figures();
        assert_eq!(digest(v), (size, sha.to_string()), "{v:?}");
    }
}

#[test]
fn write_file_leaves_the_file_and_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.caffemodel");
    butd_synth::ensure(&path, Variant::V2_FLOAT).unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        Variant::V2_FLOAT.figures().0
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["m.caffemodel"]);
}

#[test]
fn the_table_has_the_documented_layer_and_parameter_counts() {
    // SYNTHETIC.md §1: 478 layers, 330 with blobs, 658 blobs, 67,644,796 parameters.
    let l = layers();
    assert_eq!(l.len(), 478);
    assert_eq!(l.iter().filter(|l| !l.blobs.is_empty()).count(), 330);
    assert_eq!(l.iter().map(|l| l.blobs.len()).sum::<usize>(), 658);
    let params: usize = l.iter().flat_map(|l| &l.blobs).map(|b| b.count()).sum();
    assert_eq!(params, 67_644_796);
    assert_eq!(butd_synth::net_name(), "ResNet-101");
}

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
    let find = |name: &str| layers().iter().find(|l| l.name == name).unwrap();
    let values = find("bbox_pred").blobs[0].values("bbox_pred", 0);
    assert_eq!(values.len(), 13_115_392);
    assert_eq!(
        (values[0].to_bits(), values[13_115_391].to_bits()),
        (0x3b17421c, 0x3aa0bc70)
    );
    let sum: f64 = values.iter().map(|&v| f64::from(v)).sum();
    assert!((sum - -9.1106620176).abs() < 1e-9, "sum {sum}");
    let cls_bias = find("cls_score").blobs[1].values("cls_score", 1);
    let first: Vec<u32> = cls_bias[..5].iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        first,
        [0x40872386, 0xc0f41386, 0x412baca2, 0x40ec50fe, 0xbf83f55b]
    );
    let scale = find("scale4b22_branch2c").blobs[0].values("scale4b22_branch2c", 0);
    assert_eq!(
        (scale[0].to_bits(), scale[1023].to_bits()),
        (0x3e9715fe, 0x3ebc97c2)
    );
    assert_eq!(find("bn_conv1").blobs[2].values("bn_conv1", 2), [2.0]);
    assert_eq!(
        find("heatmap_scale").blobs[0].values("heatmap_scale", 0),
        [0.75]
    );
}
