//! `Detector::load` refuses weights whose rows are in another layout than the network reads:
//! a mapping that keeps Caffe's class order writes the same keys and shapes as the built-in
//! one, so only the mapping digest `butd convert` stores can tell them apart.

use butd_testkit as support;

use butd_model::tch::Device;
use butd_model::Detector;

/// The synthetic model converted with `mapping_text` into `dir/name`.
fn convert(mapping_text: &str, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let model = butd_caffe::CaffeModel::open(&support::synthetic_caffemodel()).unwrap();
    let mapping = butd_mapping::Mapping::from_str_in(mapping_text, name, dir).unwrap();
    let target = mapping.target_manifest().unwrap();
    let plan = butd_mapping::Plan::new(&mapping, &butd_mapping::Inventory::of(&model), &target);
    assert!(plan.problems.is_empty(), "{:?}", plan.problems);
    let out = dir.join(format!("{name}.safetensors"));
    plan.write_safetensors(
        &mapping,
        &model,
        &out,
        &butd_mapping::WriteOptions::default(),
    )
    .unwrap();
    out
}

#[test]
fn weights_converted_with_caffe_class_order_are_refused_at_load() {
    let builtin = butd_mapping::builtin::mapping("caffe-to-hf-frcnn").unwrap();
    let move_background = "do = [{ move = { dim = 0, from = 0, to = -1 } }]";
    assert!(
        builtin.contains(move_background),
        "the rule this test edits"
    );
    // The same rule without its move: classes stay in Caffe's order, background first.
    let caffe_order = builtin.replace(move_background, "");
    let dir = tempfile::tempdir().unwrap();
    let weights = convert(&caffe_order, dir.path(), "caffe-class-order.toml");

    let err = Detector::load(&weights, Device::Cpu)
        .err()
        .expect("refused");
    let message = err.to_string();
    for part in [
        "caffe-class-order.toml.safetensors",       // the file
        "mapping `caffe-class-order.toml`",         // what it says it is
        "butd_mapping_digest = fnv1a64:",           // the metadata found and expected
        "the built-in mapping `caffe-to-hf-frcnn`", // what was expected
    ] {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
}

#[test]
fn weights_without_mapping_metadata_are_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bare.safetensors");
    let t = butd_model::tch::Tensor::zeros([2], (butd_model::tch::Kind::Float, Device::Cpu));
    butd_model::tch::Tensor::write_safetensors(&[("x", &t)], &path).unwrap();
    let message = Detector::load(&path, Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        message.contains("bare.safetensors")
            && message.contains("no butd_mapping")
            && message.contains("butd convert MODEL --map caffe-to-hf-frcnn"),
        "{message}"
    );
}
