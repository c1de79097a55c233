//! Small hand-built models: what the reader accepts (every encoding Caffe's schema allows)
//! and what it refuses (every malformed-file case, with the error message's content).

#[path = "common/encode.rs"]
mod encode;

use butd_caffe::{BlobDtype, CaffeModel, ErrorKind, Format};
use encode::*;

fn parse(bytes: Vec<u8>) -> CaffeModel {
    CaffeModel::from_vec(bytes).unwrap_or_else(|e| panic!("unexpected error: {e}"))
}

/// The error message for `bytes`, checked to contain every one of `parts`.
fn error_with(bytes: Vec<u8>, parts: &[&str]) -> String {
    let msg = match CaffeModel::from_vec(bytes) {
        Ok(m) => panic!("expected an error, got {} layers", m.layers().len()),
        Err(e) => e.to_string(),
    };
    for p in parts {
        assert!(msg.contains(p), "error {msg:?} does not contain {p:?}");
    }
    msg
}

/// Offset of the `layer` field tag of each layer in `net(layers)`.
fn layer_offsets(layers: &[Vec<u8>]) -> Vec<usize> {
    let mut at = str_field(1, "test-net").len();
    layers
        .iter()
        .map(|l| {
            let here = at;
            at += len_field(100, l).len();
            here
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Accepted encodings

#[test]
fn reads_v2_layers_blobs_shapes_and_offsets() {
    let w = [1.0f32, -2.0, 3.5, f32::MIN_POSITIVE];
    let conv_blobs = vec![blob(&[2, 1, 1, 2], &w), blob(&[2], &[0.25, -0.5])];
    let layers = vec![
        layer("conv/1", "Convolution", &conv_blobs),
        layer("relu", "ReLU", &[]),
        layer("scale", "Scale", &[blob(&[], &[0.75])]),
    ];
    let bytes = net(&layers);
    let model = parse(bytes.clone());
    assert_eq!(model.format(), Format::V2);
    assert_eq!(model.net_name(), Some("test-net"));
    assert_eq!(model.file_len(), bytes.len() as u64);
    assert_eq!(model.path(), None);

    let names: Vec<&str> = model.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["conv/1", "relu", "scale"]);
    let offsets: Vec<u64> = model.layers().iter().map(|l| l.offset).collect();
    assert_eq!(
        offsets,
        layer_offsets(&layers)
            .iter()
            .map(|&o| o as u64)
            .collect::<Vec<_>>()
    );

    let conv = model.layer("conv/1").unwrap();
    assert_eq!(
        (
            conv.kind.as_str(),
            conv.bottom.as_slice(),
            conv.top.as_slice()
        ),
        (
            "Convolution",
            &["in".to_string()][..],
            &["out".to_string()][..]
        )
    );
    assert_eq!(conv.blobs[0].shape, [2, 1, 1, 2]);
    assert_eq!(conv.blobs[0].dtype, BlobDtype::F32);
    assert_eq!(model.to_vec_f32(&conv.blobs[0]), w);
    assert_eq!(model.to_vec_f32(&conv.blobs[1]), [0.25, -0.5]);
    assert_eq!(conv.param_count(), 6);
    // The first blob's tag follows the layer's tag, length and name/type/bottom/top fields.
    let layer_header = len_field(100, &layers[0]).len() - layers[0].len();
    let fields_before = layer("conv/1", "Convolution", &[]).len();
    assert_eq!(
        conv.blobs[0].offset as usize,
        layer_offsets(&layers)[0] + layer_header + fields_before
    );
    assert_eq!(
        model.data_bytes(&conv.blobs[0]).unwrap(),
        w.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()
    );

    assert!(model.layer("relu").unwrap().blobs.is_empty());
    let scalar = &model.layer("scale").unwrap().blobs[0];
    assert!(scalar.shape.is_empty());
    assert_eq!(scalar.len(), 1);
    assert_eq!(model.to_vec_f32(scalar), [0.75]);
    assert!(model.layer("nope").is_none());
}

#[test]
fn unknown_fields_and_groups_are_skipped() {
    let blob_body = [
        varint_field(11, 3),
        packed_f32(6, &[9.0, 9.0]), // diff
        shape(&[2]),
        [tag(12, 5), vec![1, 2, 3, 4]].concat(),
        packed_f32(5, &[1.0, 2.0]),
        packed_f64(9, &[9.0]), // double_diff
    ]
    .concat();
    let layer_body = [
        str_field(1, "ip"),
        len_field(6, &[0x0a, 0x00]), // `param`
        [tag(13, 1), vec![0; 8]].concat(),
        str_field(2, "InnerProduct"),
        len_field(7, &blob_body),
        [tag(20, 3), varint_field(1, 5), tag(20, 4)].concat(), // a group
    ]
    .concat();
    let bytes = [
        varint_field(3, 7),
        len_field(200, b"anything"),
        [
            tag(9, 3),
            tag(10, 3),
            varint_field(1, 1),
            tag(10, 4),
            tag(9, 4),
        ]
        .concat(),
        len_field(100, &layer_body),
    ]
    .concat();
    let model = parse(bytes);
    let l = model.layer("ip").unwrap();
    assert_eq!(l.kind, "InnerProduct");
    assert_eq!(l.blobs.len(), 1);
    assert_eq!(model.to_vec_f32(&l.blobs[0]), [1.0, 2.0]);
}

#[test]
fn unpacked_and_split_data_are_read_in_order() {
    let unpacked = [shape(&[3]), unpacked_f32(5, &[1.0, 2.0, 3.0])].concat();
    let mixed = [
        shape(&[5]),
        packed_f32(5, &[1.0, 2.0]),
        unpacked_f32(5, &[3.0]),
        packed_f32(5, &[4.0, 5.0]),
    ]
    .concat();
    let model = parse(net(&[layer("a", "X", &[unpacked, mixed])]));
    let [u, m] = &model.layer("a").unwrap().blobs[..] else {
        panic!("two blobs")
    };
    assert_eq!(model.to_vec_f32(u), [1.0, 2.0, 3.0]);
    assert_eq!(
        model.data_bytes(u),
        None,
        "unpacked values are not contiguous"
    );
    assert_eq!(model.to_vec_f32(m), [1.0, 2.0, 3.0, 4.0, 5.0]);
    assert_eq!(
        model.data_bytes(m).unwrap().len(),
        20,
        "gathered values are contiguous"
    );

    // Blobs compare bitwise, so one holding NaN still equals itself (a fuzzer find).
    let nan = [
        shape(&[2]),
        packed_f32(5, &[f32::NAN]),
        unpacked_f32(5, &[1.0]),
    ]
    .concat();
    let model = parse(net(&[layer("n", "X", &[nan])]));
    assert_eq!(model.layer("n"), Some(&model.layers()[0]));
}

#[test]
fn double_data_packed_and_unpacked_rounds_to_f32() {
    let values = [0.1f64, -2.5, 1e40, 1.0 + f64::EPSILON];
    let rounded: Vec<f32> = values.iter().map(|&v| v as f32).collect();
    let packed = [shape(&[4]), packed_f64(8, &values)].concat();
    let unpacked = [shape(&[2, 2]), unpacked_f64(8, &values)].concat();
    let model = parse(net(&[layer("d", "X", &[packed, unpacked])]));
    for b in &model.layer("d").unwrap().blobs {
        assert_eq!(b.dtype, BlobDtype::F64);
        assert_eq!(model.to_vec_f32(b), rounded);
    }
    let packed = &model.layer("d").unwrap().blobs[0];
    assert_eq!(model.data_bytes(packed).unwrap().len(), 32);
}

#[test]
fn legacy_dims_are_kept_as_given_and_no_shape_is_a_scalar() {
    let full = legacy_blob([1, 1, 1, 3], &[1.0, 2.0, 3.0]);
    let partial = varint_field(1, 2); // only num: [2, 0, 0, 0], no values
    let bare = packed_f32(5, &[4.0]); // neither shape nor legacy dims
    let model = parse(net(&[layer("l", "X", &[full, partial, bare])]));
    let blobs = &model.layer("l").unwrap().blobs;
    assert_eq!(blobs[0].shape, [1, 1, 1, 3]);
    assert_eq!(model.to_vec_f32(&blobs[0]), [1.0, 2.0, 3.0]);
    assert_eq!(
        (blobs[1].shape.as_slice(), blobs[1].len()),
        (&[2, 0, 0, 0][..], 0)
    );
    assert!(blobs[1].is_empty());
    assert_eq!((blobs[2].shape.as_slice(), blobs[2].len()), (&[][..], 1));
    assert_eq!(model.to_vec_f32(&blobs[2]), [4.0]);
}

#[test]
fn v1_layers_get_v2_type_names() {
    let layers = vec![
        v1_layer(
            "conv",
            Some(4),
            &[legacy_blob([1, 1, 2, 2], &[1.0, 2.0, 3.0, 4.0])],
        ),
        v1_layer("bn", None, &[]),
        v1_layer("relu", Some(18), &[]),
        v1_layer("future", Some(999), &[]),
        v1_layer("loss", Some(21), &[]),
    ];
    let model = parse(v1_net(&layers));
    assert_eq!(model.format(), Format::V1);
    let kinds: Vec<&str> = model.layers().iter().map(|l| l.kind.as_str()).collect();
    assert_eq!(kinds, ["Convolution", "", "ReLU", "", "SoftmaxWithLoss"]);
    let conv = model.layer("conv").unwrap();
    assert_eq!(conv.blobs[0].shape, [1, 1, 2, 2]);
    assert_eq!(model.to_vec_f32(&conv.blobs[0]), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn read_f32_at_reads_any_range() {
    let values: Vec<f32> = (0..10).map(|i| i as f32 * 0.5).collect();
    let packed = blob(&[10], &values);
    let unpacked = [shape(&[10]), unpacked_f32(5, &values)].concat();
    let model = parse(net(&[layer("r", "X", &[packed, unpacked])]));
    for b in &model.layer("r").unwrap().blobs {
        let mut out = [0f32; 3];
        model.read_f32_at(b, 7, &mut out);
        assert_eq!(out, values[7..10]);
        model.read_f32_at(b, 0, &mut out[..0]);
    }
}

#[test]
#[should_panic(expected = "output length differs")]
fn read_f32_panics_on_a_wrong_length_output() {
    let model = parse(net(&[layer("r", "X", &[blob(&[2], &[1.0, 2.0])])]));
    model.read_f32(&model.layers()[0].blobs[0], &mut [0.0; 3]);
}

#[test]
fn open_maps_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.caffemodel");
    std::fs::write(&good, net(&[layer("a", "X", &[blob(&[1], &[2.0])])])).unwrap();
    let model = CaffeModel::open(&good).unwrap();
    assert_eq!(model.path(), Some(good.as_path()));
    assert_eq!(model.to_vec_f32(&model.layers()[0].blobs[0]), [2.0]);

    let bad = dir.path().join("bad.caffemodel");
    std::fs::write(&bad, net(&[layer("a", "X", &[blob(&[2], &[2.0])])])).unwrap();
    let msg = CaffeModel::open(&bad).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}: byte ", bad.display())),
        "{msg}"
    );

    let empty = dir.path().join("empty.caffemodel");
    std::fs::write(&empty, b"").unwrap();
    let msg = CaffeModel::open(&empty).unwrap_err().to_string();
    assert_eq!(
        msg,
        format!(
            "{}: byte 0: the file is empty (expected a Caffe NetParameter)",
            empty.display()
        )
    );

    let missing = dir.path().join("missing.caffemodel");
    let msg = CaffeModel::open(&missing).unwrap_err().to_string();
    assert!(
        msg.starts_with(&format!("{}: cannot read", missing.display())),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// Malformed files: an error naming the offset (and layer/blob where known), never a panic

#[test]
fn empty_input() {
    error_with(Vec::new(), &["<memory>: byte 0: the file is empty"]);
}

#[test]
fn not_protobuf() {
    // 'h' = field 13 varint, 'e' its value, 'l' = field 13 end-group: invalid at byte 2.
    error_with(
        b"hello, this is not a caffemodel\n".to_vec(),
        &["byte 2", "end of group 13 without a start", "not protobuf"],
    );
    error_with(
        vec![0x0f, 0x00],
        &["byte 0", "field 1 has invalid wire type 7", "not protobuf"],
    );
    error_with(vec![0x02, 0x00], &["byte 0", "invalid field number 0"]);
    let mut overlong = vec![0x08];
    overlong.extend([0xff; 10]);
    error_with(overlong, &["byte 1", "varint longer than 10 bytes"]);
}

#[test]
fn protobuf_without_layers() {
    error_with(
        str_field(1, "just a name"),
        &[
            "byte 0",
            "no layers found",
            "field 100 `layer`",
            "field 2 `layers`",
        ],
    );
}

#[test]
fn truncated_anywhere() {
    let layers = vec![
        layer(
            "conv",
            "Convolution",
            &[
                blob(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
                legacy_blob([1, 1, 1, 2], &[5.0, 6.0]),
            ],
        ),
        layer("d", "X", &[[shape(&[1]), packed_f64(8, &[7.0])].concat()]),
    ];
    let bytes = net(&layers);
    let offsets = layer_offsets(&layers);
    let boundaries = [str_field(1, "test-net").len(), offsets[1]];
    for cut in 0..bytes.len() {
        let result = CaffeModel::from_vec(bytes[..cut].to_vec());
        if boundaries.contains(&cut) {
            // A cut between two layers leaves a shorter valid net (the wire format has no
            // end marker): one layer, or none at all.
            assert_eq!(
                result
                    .map(|m| m.layers().len())
                    .map_err(|e| e.to_string())
                    .unwrap_or(0),
                usize::from(cut == offsets[1])
            );
        } else {
            assert!(
                result.is_err(),
                "cut at {cut} of {} was accepted",
                bytes.len()
            );
        }
    }
    // Cut inside the second layer's data: its length field runs past the end of the file.
    let cut = bytes.len() - 3;
    error_with(
        bytes[..cut].to_vec(),
        &[
            &format!("byte {}, layer 1:", offsets[1]),
            "field 100 declares",
            "remain in the file (truncated?)",
        ],
    );
    // Cut inside a varint.
    error_with(
        vec![0x0a, 0x80],
        &["byte 1", "truncated length: the file ends at byte 2"],
    );
    // A fixed32 value cut short inside its blob.
    let blob_body = [shape(&[1]), tag(5, 5), vec![0, 0]].concat();
    let msg = error_with(
        net(&[layer("c", "X", &[blob_body])]),
        &[
            "layer 0 \"c\", blob 0",
            "in BlobProto: truncated fixed32 value: the enclosing message ends at byte",
        ],
    );
    assert!(msg.contains("byte "), "{msg}");
}

#[test]
fn wrong_wire_types() {
    let name_as_varint = [varint_field(1, 5), str_field(2, "X")].concat();
    error_with(
        net(&[name_as_varint]),
        &[
            "layer 0:",
            "LayerParameter.name (field 1) has wire type varint, expected length-delimited",
        ],
    );

    let blobs_as_fixed32 = [str_field(1, "b"), tag(7, 5), vec![0; 4]].concat();
    error_with(
        net(&[blobs_as_fixed32]),
        &[
            "layer 0 \"b\"",
            "LayerParameter.blobs (field 7) has wire type fixed32",
        ],
    );

    let data_as_varint = [shape(&[1]), varint_field(5, 1)].concat();
    error_with(
        net(&[layer("c", "X", &[data_as_varint])]),
        &[
            "layer 0 \"c\", blob 0",
            "BlobProto.data (field 5) has wire type varint, expected fixed32 or length-delimited",
        ],
    );

    let double_as_fixed32 = [shape(&[1]), tag(8, 5), vec![0; 4]].concat();
    error_with(
        net(&[layer("c", "X", &[double_as_fixed32])]),
        &[
            "blob 0",
            "BlobProto.double_data (field 8) has wire type fixed32, expected fixed64",
        ],
    );

    let dim_as_fixed64 = len_field(7, &[tag(1, 1), vec![0; 8]].concat());
    error_with(
        net(&[layer("c", "X", &[dim_as_fixed64])]),
        &["blob 0", "BlobShape.dim (field 1) has wire type fixed64"],
    );

    let layer_as_varint = varint_field(100, 1);
    error_with(
        layer_as_varint,
        &[
            "byte 0",
            "NetParameter.layer (field 100) has wire type varint",
        ],
    );

    let v1_type_as_string = [str_field(4, "v"), str_field(5, "CONVOLUTION")].concat();
    error_with(
        v1_net(&[v1_type_as_string]),
        &[
            "layer 0 \"v\"",
            "V1LayerParameter.type (field 5) has wire type length-delimited, expected varint",
        ],
    );
}

#[test]
fn length_running_past_the_end_of_its_message() {
    // Packed data that declares 400 bytes inside a blob that holds 8.
    let blob_body = [shape(&[2]), tag(5, 2), varint(400), vec![0; 8]].concat();
    let bytes = net(&[layer("c", "X", std::slice::from_ref(&blob_body))]);
    let data_at = bytes.len() - blob_body.len() + shape(&[2]).len();
    error_with(
        bytes,
        &[
            &format!("byte {data_at}, layer 0 \"c\", blob 0"),
            "field 5 declares 400 bytes but only 8 remain in the enclosing message",
        ],
    );
}

#[test]
fn absurd_declared_lengths_are_not_allocated() {
    let bytes = [str_field(1, "n"), tag(100, 2), varint(1 << 60), vec![0; 16]].concat();
    error_with(
        bytes,
        &[
            "byte 3, layer 0:",
            &format!(
                "declares {} bytes but only 16 remain in the file",
                1u64 << 60
            ),
        ],
    );

    // A huge shape with one value: a count mismatch, found before anything is allocated.
    let huge = blob(&[1 << 31, 1 << 31], &[1.0]);
    error_with(
        net(&[layer("h", "X", &[huge])]),
        &[
            "blob 0",
            "blob has 1 values but its shape [2147483648, 2147483648] needs 4611686018427387904",
        ],
    );
}

#[test]
fn shape_overflowing_64_bits() {
    let huge = blob(&[1 << 40, 1 << 40], &[1.0]);
    error_with(
        net(&[layer("h", "X", &[huge])]),
        &[
            "layer 0 \"h\", blob 0",
            "shape [1099511627776, 1099511627776] has more elements than fit in 64 bits",
        ],
    );
}

#[test]
fn element_count_disagreeing_with_shape() {
    let layers = vec![
        layer("ok", "X", &[]),
        layer(
            "conv",
            "Convolution",
            &[blob(&[2], &[1.0, 2.0]), blob(&[2, 3], &[0.0; 5])],
        ),
    ];
    let bytes = net(&layers);
    let model_prefix_len = bytes.len() - len_field(7, &blob(&[2, 3], &[0.0; 5])).len();
    error_with(bytes, &[&format!("byte {model_prefix_len}, layer 1 \"conv\", blob 1: blob has 5 values but its shape [2, 3] needs 6")]);

    let legacy = legacy_blob([1, 1, 2, 2], &[1.0]);
    error_with(
        v1_net(&[v1_layer("v", Some(4), &[legacy])]),
        &[
            "layer 0 \"v\", blob 0",
            "blob has 1 values but its shape [1, 1, 2, 2] needs 4",
        ],
    );

    let scalar_without_value = shape(&[]);
    error_with(
        net(&[layer("s", "X", &[scalar_without_value])]),
        &["blob 0", "blob has 0 values but its shape [] needs 1"],
    );
}

#[test]
fn duplicate_layer_names() {
    let layers = vec![
        layer("a", "X", &[]),
        layer("dup", "X", &[]),
        layer("dup", "Y", &[]),
    ];
    let offsets = layer_offsets(&layers);
    error_with(
        net(&layers),
        &[&format!(
            "byte {}, layer 2 \"dup\": duplicate layer name \"dup\" (first at layer 1, byte {})",
            offsets[2], offsets[1]
        )],
    );
}

#[test]
fn invalid_utf8_in_a_name() {
    let body = [len_field(1, &[0x66, 0xff, 0xfe]), str_field(2, "X")].concat();
    error_with(
        net(&[body]),
        &["layer 0", "LayerParameter.name is not valid UTF-8"],
    );
}

#[test]
fn negative_dimensions() {
    error_with(
        net(&[layer("n", "X", &[blob(&[2, -3], &[])])]),
        &[
            "layer 0 \"n\", blob 0",
            "invalid dimension -3 in BlobShape.dim",
        ],
    );
    // int32 -1 is a 10-byte varint.
    let legacy = [
        varint_field(1, u64::MAX),
        varint_field(2, 1),
        varint_field(3, 1),
        varint_field(4, 1),
    ]
    .concat();
    error_with(
        net(&[layer("n", "X", &[legacy])]),
        &["blob 0", "invalid dimension -1 in num"],
    );
    let too_big = varint_field(4, 1 << 33);
    error_with(
        net(&[layer("n", "X", &[too_big])]),
        &["blob 0", "invalid dimension 8589934592 in width"],
    );
}

#[test]
fn packed_data_not_a_whole_number_of_values() {
    let body = [shape(&[1]), len_field(5, &[0; 6])].concat();
    error_with(
        net(&[layer("p", "X", &[body])]),
        &[
            "layer 0 \"p\", blob 0",
            "packed data is 6 bytes long, not a multiple of 4",
        ],
    );
    let body = [shape(&[1]), len_field(8, &[0; 12])].concat();
    error_with(
        net(&[layer("p", "X", &[body])]),
        &[
            "blob 0",
            "packed double_data is 12 bytes long, not a multiple of 8",
        ],
    );
}

#[test]
fn float_and_double_data_together() {
    let body = [shape(&[1]), packed_f32(5, &[1.0]), packed_f64(8, &[1.0])].concat();
    error_with(
        net(&[layer("b", "X", &[body])]),
        &[
            "layer 0 \"b\", blob 0",
            "both float data (1 values) and double_data (1 values)",
        ],
    );
}

#[test]
fn v1_and_v2_layers_together() {
    let bytes = [
        len_field(100, &layer("a", "X", &[])),
        len_field(2, &v1_layer("b", None, &[])),
    ]
    .concat();
    let second = len_field(100, &layer("a", "X", &[])).len();
    error_with(
        bytes,
        &[
            &format!("byte {second}:"),
            "both V2 `layer` and V1 `layers`",
        ],
    );
}

#[test]
fn v0_layers_are_refused() {
    let body = [len_field(1, &str_field(1, "old")), str_field(4, "v0")].concat();
    error_with(
        v1_net(&[body]),
        &["byte 2, layer 0:", "V0 (pre-2014) layers are not supported"],
    );
}

#[test]
fn broken_groups() {
    error_with(
        [tag(9, 3), varint_field(1, 1)].concat(),
        &["byte 3", "group 9 is not closed"],
    );
    error_with(
        [tag(9, 3), tag(8, 4)].concat(),
        &["byte 1", "end of group 8 without a start"],
    );
    let deep: Vec<u8> = (0..100).flat_map(|_| tag(9, 3)).collect();
    error_with(deep, &["groups nested deeper than 64"]);
}

#[test]
fn errors_expose_kind_and_location() {
    let e = CaffeModel::from_vec(net(&[layer("a", "X", &[]), layer("a", "X", &[])])).unwrap_err();
    assert!(
        matches!(e.kind(), Some(ErrorKind::DuplicateLayer { name, first_index: 0, .. }) if name == "a")
    );
    let loc = e.location().unwrap();
    assert_eq!(
        (loc.layer_index, loc.layer.as_deref(), loc.blob),
        (Some(1), Some("a"), None)
    );
}
