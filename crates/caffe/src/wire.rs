//! A bounds-checked, zero-copy walker over the protobuf wire format.
//!
//! It yields the fields of one message as (number, byte offsets, value) and never copies or
//! allocates: a length-delimited value is a byte range into the caller's buffer. Every length
//! is checked against the end of the enclosing message before it is used, so a corrupt or
//! hostile declared length produces an error, never an allocation or an out-of-bounds read.

use crate::error::ErrorKind;

/// A walker error: the byte offset where it happened and what it was.
#[derive(Debug)]
pub(crate) struct WireError {
    pub offset: usize,
    pub kind: ErrorKind,
}

/// Deepest nesting of (always unknown, skipped) groups that we follow.
const MAX_GROUP_DEPTH: usize = 64;
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    /// A length-delimited value at `start..end` of the buffer.
    Len {
        start: usize,
        end: usize,
    },
    /// A (deprecated) group; Caffe's schema has none, so it is only ever skipped.
    Group,
}

impl Value {
    pub fn wire_name(&self) -> &'static str {
        match self {
            Value::Varint(_) => "varint",
            Value::Fixed64(_) => "fixed64",
            Value::Fixed32(_) => "fixed32",
            Value::Len { .. } => "length-delimited",
            Value::Group => "group",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub number: u32,
    /// Offset of the field's tag.
    pub offset: usize,
    /// Offset of the field's value (just after the tag).
    pub value_offset: usize,
    pub value: Value,
}

/// The fields of one message, `buf[pos..end]`, in order. Stops after the first error.
pub(crate) struct Fields<'a> {
    buf: &'a [u8],
    /// Where the message starts: the whole buffer (the file) when 0 and `end == buf.len()`.
    start: usize,
    pos: usize,
    end: usize,
    message: &'static str,
    failed: bool,
}

impl<'a> Fields<'a> {
    /// `message` names the message type in error texts.
    pub fn new(buf: &'a [u8], start: usize, end: usize, message: &'static str) -> Self {
        debug_assert!(start <= end && end <= buf.len());
        Fields {
            buf,
            start,
            pos: start,
            end,
            message,
            failed: false,
        }
    }

    /// After `field` (a fixed-width value of `width` bytes), skips the directly following
    /// fields that repeat its exact tag bytes, and returns how many it skipped. This is how an
    /// unpacked `repeated float` (one tag per value) becomes one strided run without decoding.
    pub fn skip_repeats(&mut self, field: &Field, width: usize) -> usize {
        let tag = &self.buf[field.offset..field.value_offset];
        let stride = tag.len() + width;
        let start = self.pos;
        if let [byte] = *tag {
            // The common case (fields 1..15), kept to one compare per value: V1 files hold
            // tens of millions of unpacked floats.
            while self.end - self.pos >= stride && self.buf[self.pos] == byte {
                self.pos += stride;
            }
        } else {
            while self.end - self.pos >= stride && self.buf[self.pos..].starts_with(tag) {
                self.pos += stride;
            }
        }
        (self.pos - start) / stride
    }

    fn error(&self, offset: usize, kind: ErrorKind) -> WireError {
        WireError { offset, kind }
    }

    fn within(&self) -> &'static str {
        if self.start == 0 && self.end == self.buf.len() {
            "the file"
        } else {
            "the enclosing message"
        }
    }

    fn varint(&self, pos: usize, what: &'static str) -> Result<(u64, usize), WireError> {
        let mut value = 0u64;
        for i in 0..10 {
            let p = pos + i;
            if p >= self.end {
                let kind = ErrorKind::Truncated {
                    message: self.message,
                    what,
                    within: self.within(),
                    end: self.end as u64,
                };
                return Err(self.error(pos, kind));
            }
            let byte = self.buf[p];
            if i == 9 && byte > 1 {
                break;
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok((value, p + 1));
            }
        }
        Err(self.error(
            pos,
            ErrorKind::VarintOverflow {
                message: self.message,
            },
        ))
    }

    fn fixed<const N: usize>(&self, pos: usize) -> Result<[u8; N], WireError> {
        match self.buf[pos..self.end].first_chunk::<N>() {
            Some(bytes) => Ok(*bytes),
            None => {
                let what = if N == 4 {
                    "fixed32 value"
                } else {
                    "fixed64 value"
                };
                let kind = ErrorKind::Truncated {
                    message: self.message,
                    what,
                    within: self.within(),
                    end: self.end as u64,
                };
                Err(self.error(pos, kind))
            }
        }
    }

    /// Reads one field starting at `pos`; returns it and the offset after it.
    fn field_at(&self, pos: usize, depth: usize) -> Result<(Field, usize), WireError> {
        let (tag, value_offset) = self.varint(pos, "field tag")?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(self.error(
                pos,
                ErrorKind::InvalidFieldNumber {
                    message: self.message,
                    number,
                },
            ));
        }
        let number = number as u32;
        let (value, next) = match (tag & 7) as u8 {
            0 => {
                let (v, next) = self.varint(value_offset, "varint value")?;
                (Value::Varint(v), next)
            }
            1 => {
                let bytes = self.fixed::<8>(value_offset)?;
                (Value::Fixed64(u64::from_le_bytes(bytes)), value_offset + 8)
            }
            2 => {
                let (len, start) = self.varint(value_offset, "length")?;
                let available = (self.end - start) as u64;
                if len > available {
                    let kind = ErrorKind::LengthPastEnd {
                        message: self.message,
                        field: number,
                        declared: len,
                        available,
                        within: self.within(),
                    };
                    return Err(self.error(pos, kind));
                }
                let end = start + len as usize;
                (Value::Len { start, end }, end)
            }
            3 => (Value::Group, self.skip_group(number, value_offset, depth)?),
            4 => {
                let kind = ErrorKind::UnexpectedEndGroup {
                    message: self.message,
                    field: number,
                };
                return Err(self.error(pos, kind));
            }
            5 => {
                let bytes = self.fixed::<4>(value_offset)?;
                (Value::Fixed32(u32::from_le_bytes(bytes)), value_offset + 4)
            }
            wire_type => {
                let kind = ErrorKind::InvalidWireType {
                    message: self.message,
                    field: number,
                    wire_type,
                };
                return Err(self.error(pos, kind));
            }
        };
        Ok((
            Field {
                number,
                offset: pos,
                value_offset,
                value,
            },
            next,
        ))
    }

    /// Skips the body of group `number` starting at `pos`; returns the offset after its end tag.
    fn skip_group(&self, number: u32, mut pos: usize, depth: usize) -> Result<usize, WireError> {
        if depth >= MAX_GROUP_DEPTH {
            let kind = ErrorKind::GroupTooDeep {
                message: self.message,
                limit: MAX_GROUP_DEPTH,
            };
            return Err(self.error(pos, kind));
        }
        loop {
            if pos >= self.end {
                let kind = ErrorKind::UnterminatedGroup {
                    message: self.message,
                    field: number,
                };
                return Err(self.error(pos, kind));
            }
            let (tag, after_tag) = self.varint(pos, "field tag")?;
            if tag == (u64::from(number) << 3) | 4 {
                return Ok(after_tag);
            }
            pos = self.field_at(pos, depth + 1)?.1;
        }
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        match self.field_at(self.pos, 0) {
            Ok((field, next)) => {
                self.pos = next;
                Some(Ok(field))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

/// The varints of a packed `repeated int64` (or of one unpacked value), in order.
pub(crate) fn packed_varints<'a>(
    buf: &'a [u8],
    start: usize,
    end: usize,
    message: &'static str,
) -> impl Iterator<Item = Result<(usize, u64), WireError>> + 'a {
    let walker = Fields::new(buf, start, end, message);
    let mut pos = start;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || pos >= end {
            return None;
        }
        match walker.varint(pos, "packed varint") {
            Ok((v, next)) => {
                let at = pos;
                pos = next;
                Some(Ok((at, v)))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Vec<Result<Field, WireError>> {
        Fields::new(buf, 0, buf.len(), "Test").collect()
    }

    #[test]
    fn reads_each_wire_type_with_offsets() {
        // field 1 varint 300; field 2 len "ab"; field 3 fixed32; field 4 fixed64
        let buf = [
            0x08, 0xac, 0x02, 0x12, 0x02, b'a', b'b', 0x1d, 1, 0, 0, 0, 0x21, 2, 0, 0, 0, 0, 0, 0,
            0,
        ];
        let f: Vec<Field> = fields(&buf).into_iter().map(Result::unwrap).collect();
        assert_eq!(f.len(), 4);
        assert_eq!(
            (f[0].number, f[0].offset, f[0].value),
            (1, 0, Value::Varint(300))
        );
        assert_eq!(
            (f[1].number, f[1].offset, f[1].value),
            (2, 3, Value::Len { start: 5, end: 7 })
        );
        assert_eq!(f[2].value, Value::Fixed32(1));
        assert_eq!((f[3].offset, f[3].value), (12, Value::Fixed64(2)));
    }

    #[test]
    fn skips_nested_groups() {
        // group 5 { group 6 { field 1 varint 7 } } then field 2 varint 1
        let buf = [0x2b, 0x33, 0x08, 0x07, 0x34, 0x2c, 0x10, 0x01];
        let f: Vec<Field> = fields(&buf).into_iter().map(Result::unwrap).collect();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].value, Value::Group);
        assert_eq!((f[1].number, f[1].offset), (2, 6));
    }

    #[test]
    fn varint_over_64_bits_is_an_error() {
        let buf = [
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
        ];
        let e = fields(&buf).pop().unwrap().unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(matches!(e.kind, ErrorKind::VarintOverflow { .. }));
    }

    #[test]
    fn unpacked_run_is_skipped_by_tag() {
        // three unpacked floats of field 5 (tag 0x2d), then field 1
        let buf = [
            0x2d, 0, 0, 0, 0, 0x2d, 0, 0, 0, 0, 0x2d, 0, 0, 0, 0, 0x08, 0x01,
        ];
        let mut w = Fields::new(&buf, 0, buf.len(), "Test");
        let first = w.next().unwrap().unwrap();
        assert_eq!(w.skip_repeats(&first, 4), 2);
        assert_eq!(w.next().unwrap().unwrap().number, 1);

        // Field 16 has a two-byte tag (0x85 0x01); a run stops at a different field.
        let buf = [
            0x85, 0x01, 0, 0, 0, 0, 0x85, 0x01, 0, 0, 0, 0, 0x8d, 0x01, 0, 0, 0, 0,
        ];
        let mut w = Fields::new(&buf, 0, buf.len(), "Test");
        let first = w.next().unwrap().unwrap();
        assert_eq!(w.skip_repeats(&first, 4), 1);
        assert_eq!(w.next().unwrap().unwrap().number, 17);
    }
}
