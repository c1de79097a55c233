//! A tiny protobuf encoder for building test models by hand. Field numbers are written out
//! literally (from Caffe's schema) so that the tests check the generated ones independently.

pub fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

pub fn tag(field: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(field) << 3 | u64::from(wire_type))
}

pub fn varint_field(field: u32, v: u64) -> Vec<u8> {
    [tag(field, 0), varint(v)].concat()
}

pub fn len_field(field: u32, payload: &[u8]) -> Vec<u8> {
    [
        tag(field, 2),
        varint(payload.len() as u64),
        payload.to_vec(),
    ]
    .concat()
}

pub fn str_field(field: u32, s: &str) -> Vec<u8> {
    len_field(field, s.as_bytes())
}

/// The values' little-endian bytes, one after another.
fn le_bytes<T: Copy, const N: usize>(values: &[T], to_le: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to_le(v)).collect()
}

pub fn packed_f32(field: u32, values: &[f32]) -> Vec<u8> {
    len_field(field, &le_bytes(values, f32::to_le_bytes))
}

pub fn packed_f64(field: u32, values: &[f64]) -> Vec<u8> {
    len_field(field, &le_bytes(values, f64::to_le_bytes))
}

/// One tag per value (wire type 5), as legacy writers do.
pub fn unpacked_f32(field: u32, values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| [tag(field, 5), v.to_le_bytes().to_vec()].concat())
        .collect()
}

/// One tag per value (wire type 1).
pub fn unpacked_f64(field: u32, values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|v| [tag(field, 1), v.to_le_bytes().to_vec()].concat())
        .collect()
}

/// BlobShape (field 7 of BlobProto) with packed int64 dims.
pub fn shape(dims: &[i64]) -> Vec<u8> {
    let packed: Vec<u8> = dims.iter().flat_map(|&d| varint(d as u64)).collect();
    let body = if dims.is_empty() {
        Vec::new()
    } else {
        len_field(1, &packed)
    };
    len_field(7, &body)
}

/// A V2 BlobProto body: shape + packed float data.
pub fn blob(dims: &[i64], data: &[f32]) -> Vec<u8> {
    [shape(dims), packed_f32(5, data)].concat()
}

/// A V1-style BlobProto body: legacy num/channels/height/width + unpacked float data.
pub fn legacy_blob(nchw: [u64; 4], data: &[f32]) -> Vec<u8> {
    let dims: Vec<u8> = (1..=4)
        .zip(nchw)
        .flat_map(|(f, d)| varint_field(f, d))
        .collect();
    [dims, unpacked_f32(5, data)].concat()
}

/// A V2 LayerParameter body.
pub fn layer(name: &str, kind: &str, blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = [
        str_field(1, name),
        str_field(2, kind),
        str_field(3, "in"),
        str_field(4, "out"),
    ]
    .concat();
    for b in blobs {
        out.extend(len_field(7, b));
    }
    out
}

/// A V1LayerParameter body; `kind` is the enum value, None for no type field.
pub fn v1_layer(name: &str, kind: Option<u64>, blobs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = str_field(4, name);
    if let Some(k) = kind {
        out.extend(varint_field(5, k));
    }
    out.extend([str_field(2, "in"), str_field(3, "out")].concat());
    for b in blobs {
        out.extend(len_field(6, b));
    }
    out
}

/// A V2 NetParameter: name + `layer` (field 100) entries.
pub fn net(layers: &[Vec<u8>]) -> Vec<u8> {
    let mut out = str_field(1, "test-net");
    for l in layers {
        out.extend(len_field(100, l));
    }
    out
}

/// A V1 NetParameter: `layers` (field 2) entries.
pub fn v1_net(layers: &[Vec<u8>]) -> Vec<u8> {
    layers.iter().flat_map(|l| len_field(2, l)).collect()
}
