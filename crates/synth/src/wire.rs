//! The protobuf wire encoding of SYNTHETIC.md §2, field by field in the documented order. Each
//! message's length is computed from the shapes first ([`blob_len`], [`layer_head`]), so the
//! values can be streamed straight to the output.
use super::{blob_key, Blob, Dtype, Encoding, Layer, Variant};
use std::io::{self, Write};

/// Values generated per chunk while streaming a blob.
const CHUNK: usize = 1 << 16;

/// V1LayerParameter type enum values; the other types have none and carry no type field.
fn v1_type(kind: &str) -> Option<u64> {
    Some(match kind {
        "Concat" => 3,
        "Convolution" => 4,
        "Flatten" => 8,
        "InnerProduct" => 14,
        "Pooling" => 17,
        "ReLU" => 18,
        "Softmax" => 20,
        "Eltwise" => 25,
        "ArgMax" => 30,
        _ => return None,
    })
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> u64 {
    (64 - v.max(1).leading_zeros() as u64).div_ceil(7)
}

fn tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, u64::from(field) << 3 | u64::from(wire_type));
}

/// The tag and length prefix of a length-delimited field.
fn len_prefix(out: &mut Vec<u8>, field: u32, len: u64) {
    tag(out, field, 2);
    varint(out, len);
}

fn str_field(out: &mut Vec<u8>, field: u32, s: &str) {
    len_prefix(out, field, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// The legacy 4-D shape: right-aligned, padded with 1 on the left (the 0-dim blob → 1,1,1,1).
fn legacy_dims(shape: &[usize]) -> [u64; 4] {
    let mut dims = [1u64; 4];
    for (d, &s) in dims[4 - shape.len()..].iter_mut().zip(shape) {
        *d = s as u64;
    }
    dims
}

/// A BlobProto's bytes before its values (shape, and in V2 the values' length prefix).
fn blob_head(blob: &Blob, v: Variant) -> Vec<u8> {
    let mut head = Vec::new();
    let width = value_width(v.dtype);
    match v.encoding {
        Encoding::V2 => {
            let mut dims = Vec::new();
            for &d in &blob.shape {
                varint(&mut dims, d as u64);
            }
            let mut shape = Vec::new();
            if !blob.shape.is_empty() {
                len_prefix(&mut shape, 1, dims.len() as u64);
                shape.extend(dims);
            }
            len_prefix(&mut head, 7, shape.len() as u64);
            head.extend(shape);
            let field = if v.dtype == Dtype::Float { 5 } else { 8 };
            len_prefix(&mut head, field, (blob.count() * width) as u64);
        }
        Encoding::V1 => {
            for (field, d) in (1..=4).zip(legacy_dims(&blob.shape)) {
                tag(&mut head, field, 0);
                varint(&mut head, d);
            }
        }
    }
    head
}

fn value_width(dtype: Dtype) -> usize {
    match dtype {
        Dtype::Float => 4,
        Dtype::Double => 8,
    }
}

/// Bytes of one value: V1 writes a one-byte tag before each (unpacked repeated field).
fn value_bytes(v: Variant) -> usize {
    value_width(v.dtype) + usize::from(v.encoding == Encoding::V1)
}

/// A BlobProto's whole length.
fn blob_len(blob: &Blob, v: Variant) -> u64 {
    (blob_head(blob, v).len() + blob.count() * value_bytes(v)) as u64
}

/// A LayerParameter's bytes before its blobs: name, type, bottoms, tops.
fn layer_head(layer: &Layer, v: Variant) -> Vec<u8> {
    let mut head = Vec::new();
    match v.encoding {
        Encoding::V2 => {
            str_field(&mut head, 1, &layer.name);
            str_field(&mut head, 2, &layer.kind);
            layer.bottom.iter().for_each(|b| str_field(&mut head, 3, b));
            layer.top.iter().for_each(|t| str_field(&mut head, 4, t));
        }
        Encoding::V1 => {
            str_field(&mut head, 4, &layer.name);
            if let Some(t) = v1_type(&layer.kind) {
                tag(&mut head, 5, 0);
                varint(&mut head, t);
            }
            layer.bottom.iter().for_each(|b| str_field(&mut head, 2, b));
            layer.top.iter().for_each(|t| str_field(&mut head, 3, t));
        }
    }
    head
}

/// The blobs' field number inside a layer, and the layers' inside the net.
fn fields(e: Encoding) -> (u32, u32) {
    match e {
        Encoding::V2 => (7, 100),
        Encoding::V1 => (6, 2),
    }
}

/// The whole NetParameter.
pub(super) fn write_net(
    out: &mut impl Write,
    net_name: &str,
    layers: &[Layer],
    v: Variant,
) -> io::Result<()> {
    let (blob_field, layer_field) = fields(v.encoding);
    let mut buf = Vec::new();
    str_field(&mut buf, 1, net_name);
    out.write_all(&buf)?;
    for layer in layers {
        let head = layer_head(layer, v);
        let blobs_len: u64 = layer
            .blobs
            .iter()
            .map(|b| {
                let len = blob_len(b, v);
                1 + varint_len(len) + len // the blob field's tag is one byte (6 or 7)
            })
            .sum();
        buf.clear();
        len_prefix(&mut buf, layer_field, head.len() as u64 + blobs_len);
        buf.extend(head);
        out.write_all(&buf)?;
        for (j, blob) in layer.blobs.iter().enumerate() {
            buf.clear();
            len_prefix(&mut buf, blob_field, blob_len(blob, v));
            buf.extend(blob_head(blob, v));
            out.write_all(&buf)?;
            write_values(out, blob_key(&layer.name, j), blob, v)?;
        }
    }
    Ok(())
}

/// The blob's values, little-endian, generated and written a chunk at a time.
fn write_values(out: &mut impl Write, key: u64, blob: &Blob, v: Variant) -> io::Result<()> {
    let count = blob.count();
    let mut values = vec![0f32; CHUNK.min(count)];
    let mut bytes = Vec::with_capacity(values.len() * value_bytes(v));
    for start in (0..count).step_by(CHUNK) {
        let chunk = &mut values[..CHUNK.min(count - start)];
        blob.fill(key, start, chunk);
        bytes.clear();
        for &x in chunk.iter() {
            match (v.encoding, v.dtype) {
                (Encoding::V2, Dtype::Float) => bytes.extend(x.to_le_bytes()),
                (Encoding::V2, Dtype::Double) => bytes.extend(f64::from(x).to_le_bytes()),
                (Encoding::V1, Dtype::Float) => {
                    bytes.push(5 << 3 | 5); // field 5, wire type 5 (32-bit)
                    bytes.extend(x.to_le_bytes());
                }
                (Encoding::V1, Dtype::Double) => {
                    bytes.push(8 << 3 | 1); // field 8, wire type 1 (64-bit)
                    bytes.extend(f64::from(x).to_le_bytes());
                }
            }
        }
        out.write_all(&bytes)?;
    }
    Ok(())
}

/// A writer that counts the bytes passed through it.
pub(super) struct Counting<'a, W: Write> {
    inner: &'a mut W,
    written: u64,
}

impl<'a, W: Write> Counting<'a, W> {
    pub(super) fn new(inner: &'a mut W) -> Self {
        Counting { inner, written: 0 }
    }

    pub(super) fn written(&self) -> u64 {
        self.written
    }
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_len_agrees_with_the_encoder() {
        for v in [0, 1, 127, 128, 16_383, 16_384, 270_617_013, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(varint_len(v), out.len() as u64, "{v}");
        }
    }

    #[test]
    fn legacy_dims_are_right_aligned() {
        assert_eq!(legacy_dims(&[64, 3, 7, 7]), [64, 3, 7, 7]);
        assert_eq!(legacy_dims(&[1601, 2048]), [1, 1, 1601, 2048]);
        assert_eq!(legacy_dims(&[]), [1, 1, 1, 1]);
    }
}
