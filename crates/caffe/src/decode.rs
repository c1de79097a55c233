//! NetParameter → layers → blobs, on top of the wire walker. Field numbers come from the
//! generated schema; what each field means is decided here.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Error, ErrorKind, Location};
use crate::schema::{blob_proto, blob_shape, layer_parameter, net_parameter, v1_layer_parameter};
use crate::wire::{packed_varints, Field, Fields, Value, WireError};
use crate::{Blob, BlobDtype, Data, Format, Layer};

/// The decoded header of a model: everything but the blob values, which stay in the buffer.
pub(crate) struct Net {
    pub name: Option<String>,
    pub format: Format,
    pub layers: Vec<Layer>,
    /// Layer index by name (names are unique).
    pub by_name: HashMap<String, usize>,
}

/// Where errors are: file, layer and blob, as far as they are known.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    file: Option<&'a Path>,
    layer_index: Option<usize>,
    layer: Option<&'a str>,
    blob: Option<usize>,
}

impl Ctx<'_> {
    fn err(&self, offset: usize, kind: ErrorKind) -> Error {
        Error::Malformed {
            location: Box::new(Location {
                file: self.file.map(Path::to_path_buf),
                offset: offset as u64,
                layer_index: self.layer_index,
                layer: self.layer.map(str::to_owned),
                blob: self.blob,
            }),
            kind,
        }
    }

    fn wire(&self, e: WireError) -> Error {
        self.err(e.offset, e.kind)
    }
}

pub(crate) fn decode_net(buf: &[u8], file: Option<&Path>) -> Result<Net, Error> {
    let ctx = Ctx {
        file,
        layer_index: None,
        layer: None,
        blob: None,
    };
    if buf.is_empty() {
        return Err(ctx.err(0, ErrorKind::Empty));
    }
    let mut name = None;
    let mut format = None;
    let mut layers: Vec<Layer> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for field in Fields::new(buf, 0, buf.len(), "NetParameter") {
        let field = field.map_err(|e| net_wire_error(e, layers.len(), ctx))?;
        let schema = match field.number {
            net_parameter::NAME => {
                name = Some(string(buf, &field, "NetParameter", "name", ctx)?.to_owned());
                continue;
            }
            net_parameter::LAYER => &V2_LAYER,
            net_parameter::LAYERS => &V1_LAYER,
            _ => continue,
        };
        if *format.get_or_insert(schema.format) != schema.format {
            return Err(ctx.err(field.offset, ErrorKind::MixedFormats));
        }
        let ctx = Ctx {
            layer_index: Some(layers.len()),
            ..ctx
        };
        let (start, end) = len_range(&field, "NetParameter", schema.net_field, ctx)?;
        let layer = decode_layer(buf, schema, field.offset, start, end, ctx)?;
        if let Some(&first) = by_name.get(&layer.name) {
            let kind = ErrorKind::DuplicateLayer {
                name: layer.name.clone(),
                first_index: first,
                first_offset: layers[first].offset,
            };
            return Err(Ctx {
                layer: Some(&layer.name),
                ..ctx
            }
            .err(field.offset, kind));
        }
        by_name.insert(layer.name.clone(), layers.len());
        layers.push(layer);
    }
    let Some(format) = format else {
        let kind = ErrorKind::NoLayers {
            v2: net_parameter::LAYER,
            v1: net_parameter::LAYERS,
        };
        return Err(ctx.err(0, kind));
    };
    Ok(Net {
        name,
        format,
        layers,
        by_name,
    })
}

/// A walker error at the top level; one in a layer field's header (a layer cut short, say)
/// also names the layer's index, since its name is inside the part that is missing.
fn net_wire_error(e: WireError, next_layer: usize, ctx: Ctx) -> Error {
    match e.kind {
        ErrorKind::LengthPastEnd { field, .. }
            if field == net_parameter::LAYER || field == net_parameter::LAYERS =>
        {
            Ctx {
                layer_index: Some(next_layer),
                ..ctx
            }
            .wire(e)
        }
        _ => ctx.wire(e),
    }
}

/// The fields that V1 and V2 layers share, gathered in one pass. Blobs are decoded after the
/// pass, so that their errors can name the layer even when `name` comes after `blobs`.
#[derive(Default)]
struct LayerFields {
    name: String,
    kind: String,
    bottom: Vec<String>,
    top: Vec<String>,
    /// (tag offset, value start, value end) of each `blobs` field.
    blobs: Vec<(usize, usize, usize)>,
}

impl LayerFields {
    fn push_blob(&mut self, field: &Field, message: &'static str, ctx: Ctx) -> Result<(), Error> {
        let (start, end) = len_range(field, message, "blobs", ctx)?;
        self.blobs.push((field.offset, start, end));
        Ok(())
    }

    fn finish(self, buf: &[u8], offset: usize, ctx: Ctx) -> Result<Layer, Error> {
        let ctx = Ctx {
            layer: Some(&self.name),
            ..ctx
        };
        let blobs = self
            .blobs
            .iter()
            .enumerate()
            .map(|(j, &(offset, start, end))| {
                decode_blob(
                    buf,
                    offset,
                    start,
                    end,
                    Ctx {
                        blob: Some(j),
                        ..ctx
                    },
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(Layer {
            name: self.name,
            kind: self.kind,
            bottom: self.bottom,
            top: self.top,
            blobs,
            offset: offset as u64,
        })
    }
}

/// A layer message, V2 or V1: its field numbers and names.
struct LayerSchema {
    format: Format,
    /// The NetParameter field holding it, by name.
    net_field: &'static str,
    message: &'static str,
    name: u32,
    kind: u32,
    /// V1's type is an enum varint, V2's a string.
    kind_is_enum: bool,
    bottom: u32,
    top: u32,
    blobs: u32,
    /// The nested V0 layer of V1, refused.
    v0: Option<u32>,
}

const V2_LAYER: LayerSchema = LayerSchema {
    format: Format::V2,
    net_field: "layer",
    message: "LayerParameter",
    name: layer_parameter::NAME,
    kind: layer_parameter::TYPE,
    kind_is_enum: false,
    bottom: layer_parameter::BOTTOM,
    top: layer_parameter::TOP,
    blobs: layer_parameter::BLOBS,
    v0: None,
};

const V1_LAYER: LayerSchema = LayerSchema {
    format: Format::V1,
    net_field: "layers",
    message: "V1LayerParameter",
    name: v1_layer_parameter::NAME,
    kind: v1_layer_parameter::TYPE,
    kind_is_enum: true,
    bottom: v1_layer_parameter::BOTTOM,
    top: v1_layer_parameter::TOP,
    blobs: v1_layer_parameter::BLOBS,
    v0: Some(v1_layer_parameter::LAYER),
};

fn decode_layer(
    buf: &[u8],
    s: &LayerSchema,
    offset: usize,
    start: usize,
    end: usize,
    ctx: Ctx,
) -> Result<Layer, Error> {
    let msg = s.message;
    let mut l = LayerFields::default();
    let mut named = false;
    let mut pass = || {
        for field in Fields::new(buf, start, end, msg) {
            let field = field.map_err(|e| ctx.wire(e))?;
            match field.number {
                n if n == s.name => {
                    l.name = string(buf, &field, msg, "name", ctx)?.to_owned();
                    named = true;
                }
                n if n == s.kind && s.kind_is_enum => {
                    l.kind =
                        crate::schema::v1_type_name(varint(&field, msg, "type", ctx)?).to_owned();
                }
                n if n == s.kind => l.kind = string(buf, &field, msg, "type", ctx)?.to_owned(),
                n if n == s.bottom => l
                    .bottom
                    .push(string(buf, &field, msg, "bottom", ctx)?.to_owned()),
                n if n == s.top => l.top.push(string(buf, &field, msg, "top", ctx)?.to_owned()),
                n if n == s.blobs => l.push_blob(&field, msg, ctx)?,
                n if Some(n) == s.v0 => return Err(ctx.err(field.offset, ErrorKind::V0Layer)),
                _ => {}
            }
        }
        Ok(())
    };
    match pass() {
        Ok(()) => l.finish(buf, offset, ctx),
        Err(e) if named => Err(name_layer(e, &l.name)),
        Err(e) => Err(e),
    }
}

/// Adds the layer name to an error raised while the layer's fields were being read.
fn name_layer(mut e: Error, name: &str) -> Error {
    if let Error::Malformed { location, .. } = &mut e {
        location.layer.get_or_insert_with(|| name.to_owned());
    }
    e
}

/// Values of one dtype as they appear in a BlobProto: runs of `n` values, value `i` of a run
/// at `start + i * stride`. A packed field is one run with `stride == width`; an unpacked
/// field is one run per stretch of consecutive values with `stride == tag bytes + width`.
#[derive(Default)]
struct Runs {
    runs: Vec<(usize, usize, usize)>, // (start, stride, n)
    count: u64,
}

impl Runs {
    fn push(&mut self, start: usize, stride: usize, n: usize) {
        self.runs.push((start, stride, n));
        self.count += n as u64;
    }

    /// Adds one data field: a packed array, or the first of a stretch of unpacked values.
    fn add(
        &mut self,
        fields: &mut Fields,
        field: &Field,
        width: usize,
        name: &'static str,
        ctx: Ctx,
    ) -> Result<(), Error> {
        match field.value {
            Value::Len { start, end } => {
                if (end - start) % width != 0 {
                    let kind = ErrorKind::PackedLength {
                        field: name,
                        bytes: (end - start) as u64,
                        width: width as u64,
                    };
                    return Err(ctx.err(field.offset, kind));
                }
                self.push(start, width, (end - start) / width);
            }
            Value::Fixed32(_) | Value::Fixed64(_) if wire_width(&field.value) == width => {
                let stride = field.value_offset - field.offset + width;
                let n = 1 + fields.skip_repeats(field, width);
                self.push(field.value_offset, stride, n);
            }
            _ => {
                let expected = if width == 4 {
                    "fixed32 or length-delimited"
                } else {
                    "fixed64 or length-delimited"
                };
                return Err(wrong_wire_type(field, "BlobProto", name, expected, ctx));
            }
        }
        Ok(())
    }

    /// Where the values are: one run stays in the buffer; several are gathered, still as
    /// little-endian bytes, into an owned Vec.
    fn into_data(self, buf: &[u8], width: usize) -> Data {
        match self.runs.as_slice() {
            [] => Data::Run {
                start: 0,
                stride: width,
            },
            &[(start, stride, _)] => Data::Run { start, stride },
            runs => {
                let mut bytes = Vec::with_capacity(self.count as usize * width);
                for &(start, stride, n) in runs {
                    for i in 0..n {
                        bytes.extend_from_slice(&buf[start + i * stride..][..width]);
                    }
                }
                Data::Gathered(bytes)
            }
        }
    }
}

fn wire_width(value: &Value) -> usize {
    match value {
        Value::Fixed32(_) => 4,
        Value::Fixed64(_) => 8,
        _ => 0,
    }
}

fn decode_blob(
    buf: &[u8],
    offset: usize,
    start: usize,
    end: usize,
    ctx: Ctx,
) -> Result<Blob, Error> {
    const MSG: &str = "BlobProto";
    let mut shape: Option<Vec<usize>> = None;
    let mut legacy: [Option<usize>; 4] = [None; 4];
    let mut floats = Runs::default();
    let mut doubles = Runs::default();
    let mut fields = Fields::new(buf, start, end, MSG);
    while let Some(field) = fields.next() {
        let field = field.map_err(|e| ctx.wire(e))?;
        match field.number {
            blob_proto::SHAPE => {
                let (s, e) = len_range(&field, MSG, "shape", ctx)?;
                // Repeated occurrences of a message field merge, so their dims concatenate.
                decode_shape(buf, s, e, shape.get_or_insert_with(Vec::new), ctx)?;
            }
            blob_proto::NUM => legacy[0] = Some(legacy_dim(&field, "num", ctx)?),
            blob_proto::CHANNELS => legacy[1] = Some(legacy_dim(&field, "channels", ctx)?),
            blob_proto::HEIGHT => legacy[2] = Some(legacy_dim(&field, "height", ctx)?),
            blob_proto::WIDTH => legacy[3] = Some(legacy_dim(&field, "width", ctx)?),
            blob_proto::DATA => floats.add(&mut fields, &field, 4, "data", ctx)?,
            blob_proto::DOUBLE_DATA => doubles.add(&mut fields, &field, 8, "double_data", ctx)?,
            _ => {}
        }
    }
    let shape = resolve_shape(shape, legacy);
    let expected = element_count(&shape).ok_or_else(|| {
        let kind = ErrorKind::ShapeOverflow {
            shape: shape.iter().map(|&d| d as u64).collect(),
        };
        ctx.err(offset, kind)
    })?;
    if floats.count > 0 && doubles.count > 0 {
        let kind = ErrorKind::BothDataKinds {
            floats: floats.count,
            doubles: doubles.count,
        };
        return Err(ctx.err(offset, kind));
    }
    let (dtype, found) = if doubles.count > 0 {
        (BlobDtype::F64, doubles.count)
    } else {
        (BlobDtype::F32, floats.count)
    };
    if found != expected {
        let kind = ErrorKind::CountMismatch {
            shape,
            expected,
            found,
        };
        return Err(ctx.err(offset, kind));
    }
    let data = match dtype {
        BlobDtype::F32 => floats.into_data(buf, dtype.width()),
        BlobDtype::F64 => doubles.into_data(buf, dtype.width()),
    };
    Ok(Blob {
        shape,
        offset: offset as u64,
        dtype,
        len: expected as usize,
        data,
    })
}

/// Caffe's `Blob::FromProto` shape rule: `shape` when present (even with no dims: a 0-dim
/// blob of one value); otherwise the legacy 4-D `num, channels, height, width` when any of
/// them is present, kept as given (`[n, c, h, w]`, unset ones 0, never squeezed); otherwise
/// no dims.
fn resolve_shape(shape: Option<Vec<usize>>, legacy: [Option<usize>; 4]) -> Vec<usize> {
    match shape {
        Some(dims) => dims,
        None if legacy.iter().any(Option::is_some) => {
            legacy.iter().map(|d| d.unwrap_or(0)).collect()
        }
        None => Vec::new(),
    }
}

/// Product of the dims (1 for no dims), or `None` when it overflows.
fn element_count(shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
}

fn decode_shape(
    buf: &[u8],
    start: usize,
    end: usize,
    dims: &mut Vec<usize>,
    ctx: Ctx,
) -> Result<(), Error> {
    const MSG: &str = "BlobShape";
    for field in Fields::new(buf, start, end, MSG) {
        let field = field.map_err(|e| ctx.wire(e))?;
        if field.number != blob_shape::DIM {
            continue;
        }
        let mut push = |at: usize, v: u64| {
            let dim = i64::from_ne_bytes(v.to_ne_bytes());
            let dim = usize::try_from(dim).map_err(|_| {
                ctx.err(
                    at,
                    ErrorKind::BadDimension {
                        field: "BlobShape.dim",
                        value: dim,
                    },
                )
            })?;
            dims.push(dim);
            Ok::<_, Error>(())
        };
        match field.value {
            Value::Varint(v) => push(field.value_offset, v)?,
            Value::Len { start, end } => {
                for item in packed_varints(buf, start, end, MSG) {
                    let (at, v) = item.map_err(|e| ctx.wire(e))?;
                    push(at, v)?;
                }
            }
            _ => {
                return Err(wrong_wire_type(
                    &field,
                    MSG,
                    "dim",
                    "varint or length-delimited",
                    ctx,
                ))
            }
        }
    }
    Ok(())
}

/// A legacy int32 dimension: negative (and out-of-int32) values are errors.
fn legacy_dim(field: &Field, name: &'static str, ctx: Ctx) -> Result<usize, Error> {
    let v = varint(field, "BlobProto", name, ctx)?;
    let value = i64::from_ne_bytes(v.to_ne_bytes());
    match i32::try_from(value) {
        Ok(d) if d >= 0 => Ok(d as usize),
        _ => Err(ctx.err(
            field.value_offset,
            ErrorKind::BadDimension { field: name, value },
        )),
    }
}

fn wrong_wire_type(
    field: &Field,
    message: &'static str,
    name: &'static str,
    expected: &'static str,
    ctx: Ctx,
) -> Error {
    let kind = ErrorKind::WrongWireType {
        message,
        field: name,
        number: field.number,
        expected,
        found: field.value.wire_name(),
    };
    ctx.err(field.offset, kind)
}

fn len_range(
    field: &Field,
    message: &'static str,
    name: &'static str,
    ctx: Ctx,
) -> Result<(usize, usize), Error> {
    match field.value {
        Value::Len { start, end } => Ok((start, end)),
        _ => Err(wrong_wire_type(
            field,
            message,
            name,
            "length-delimited",
            ctx,
        )),
    }
}

fn varint(
    field: &Field,
    message: &'static str,
    name: &'static str,
    ctx: Ctx,
) -> Result<u64, Error> {
    match field.value {
        Value::Varint(v) => Ok(v),
        _ => Err(wrong_wire_type(field, message, name, "varint", ctx)),
    }
}

fn string<'b>(
    buf: &'b [u8],
    field: &Field,
    message: &'static str,
    name: &'static str,
    ctx: Ctx,
) -> Result<&'b str, Error> {
    let (start, end) = len_range(field, message, name, ctx)?;
    std::str::from_utf8(&buf[start..end]).map_err(|_| {
        ctx.err(
            field.offset,
            ErrorKind::InvalidUtf8 {
                message,
                field: name,
            },
        )
    })
}
