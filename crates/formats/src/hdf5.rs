//! Just enough HDF5 to write the VQA feature files, without libhdf5: a root group holding
//! contiguous little-endian f32/i32 datasets, in the HDF5 1.8 file format (superblock version 2,
//! version-2 object headers, compact "new-style" links; HDF5 File Format Specification v3,
//! §II.A.2, §IV.A.1.ii, §IV.A.2.c/d/e/g/h/i/q), which every h5py/libhdf5 ≥ 1.8 reads. Reading,
//! of these files and of everything h5py writes, is `hdf5-reader`'s ([`crate::VqaHdf5`]).
use std::io::{Seek, SeekFrom, Write};

const SIGNATURE: [u8; 8] = [0x89, b'H', b'D', b'F', b'\r', b'\n', 0x1a, b'\n'];
/// Size of the version-2 superblock, which the writer reserves at offset 0.
pub const SUPERBLOCK_LEN: u64 = 48;
/// HDF5's "undefined address".
const UNDEF: u64 = u64::MAX;

// Object header message types (spec §IV.A.2).
const MSG_DATASPACE: u8 = 0x01;
const MSG_LINK_INFO: u8 = 0x02;
const MSG_DATATYPE: u8 = 0x03;
const MSG_FILL_VALUE: u8 = 0x05;
const MSG_LINK: u8 = 0x06;
const MSG_LAYOUT: u8 = 0x08;
const MSG_GROUP_INFO: u8 = 0x0A;

/// Bob Jenkins' lookup3 `hashlittle` (byte-wise form), which HDF5 uses for every metadata
/// checksum (`H5_checksum_lookup3` with `initval` 0).
pub fn lookup3(data: &[u8], initval: u32) -> u32 {
    // lookup3.c's `mix` and `final` macros are sequences of these two steps on rotating roles.
    fn mix_step(x: &mut u32, z: &mut u32, y: u32, k: u32) {
        *x = x.wrapping_sub(*z) ^ z.rotate_left(k);
        *z = z.wrapping_add(y);
    }
    fn final_step(x: &mut u32, y: u32, k: u32) {
        *x = (*x ^ y).wrapping_sub(y.rotate_left(k));
    }
    let mut a = 0xdeadbeefu32
        .wrapping_add(data.len() as u32)
        .wrapping_add(initval);
    let (mut b, mut c) = (a, a);
    let word = |k: &[u8], i: usize| -> u32 {
        (0..4)
            .map(|j| k.get(i + j).map_or(0, |&x| (x as u32) << (8 * j)))
            .fold(0, |s, x| s | x)
    };
    let mut k = data;
    while k.len() > 12 {
        a = a.wrapping_add(word(k, 0));
        b = b.wrapping_add(word(k, 4));
        c = c.wrapping_add(word(k, 8));
        // mix(a, b, c)
        for [ka, kb, kc] in [[4, 6, 8], [16, 19, 4]] {
            mix_step(&mut a, &mut c, b, ka);
            mix_step(&mut b, &mut a, c, kb);
            mix_step(&mut c, &mut b, a, kc);
        }
        k = &k[12..];
    }
    if k.is_empty() {
        return c;
    }
    // The last 1–12 bytes, zero-padded (the switch's fall-through cases).
    a = a.wrapping_add(word(k, 0));
    b = b.wrapping_add(word(k, 4));
    c = c.wrapping_add(word(k, 8));
    // final(a, b, c)
    for [kc, ka, kb] in [[14, 11, 25], [16, 4, 14]] {
        final_step(&mut c, b, kc);
        final_step(&mut a, c, ka);
        final_step(&mut b, a, kb);
    }
    final_step(&mut c, b, 24);
    c
}

/// The element types the VQA files use (h5py's `'f'` and `'int32'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hdf5Dtype {
    F32,
    I32,
}

/// A contiguous dataset in the root group: its data lies at `offset`, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hdf5Dataset {
    pub name: String,
    pub dtype: Hdf5Dtype,
    pub shape: Vec<u64>,
    pub offset: u64,
}

impl Hdf5Dataset {
    pub fn byte_len(&self) -> u64 {
        self.shape.iter().product::<u64>() * 4
    }
}

fn superblock(eof: u64, root: u64) -> Vec<u8> {
    let mut s = SIGNATURE.to_vec();
    // version 2, size of offsets 8, size of lengths 8, file consistency flags 0
    s.extend_from_slice(&[2, 8, 8, 0]);
    s.extend_from_slice(&0u64.to_le_bytes()); // base address
    s.extend_from_slice(&UNDEF.to_le_bytes()); // superblock extension
    s.extend_from_slice(&eof.to_le_bytes());
    s.extend_from_slice(&root.to_le_bytes());
    let sum = lookup3(&s, 0);
    s.extend_from_slice(&sum.to_le_bytes());
    debug_assert_eq!(s.len() as u64, SUPERBLOCK_LEN);
    s
}

/// A version-2 object header with one chunk holding `messages` (type, flags, body).
fn object_header(messages: &[(u8, u8, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (kind, flags, data) in messages {
        body.push(*kind);
        body.extend_from_slice(&(data.len() as u16).to_le_bytes());
        body.push(*flags);
        body.extend_from_slice(data);
    }
    let mut h = b"OHDR".to_vec();
    // version 2; flags: "size of chunk #0" takes 4 bytes, no times, no attribute info
    h.extend_from_slice(&[2, 0x02]);
    h.extend_from_slice(&(body.len() as u32).to_le_bytes());
    h.extend_from_slice(&body);
    let sum = lookup3(&h, 0);
    h.extend_from_slice(&sum.to_le_bytes());
    h
}

fn dataspace(shape: &[u64]) -> Vec<u8> {
    // version 2, rank, no max dims, type 1 = simple
    let mut m = vec![2, shape.len() as u8, 0, 1];
    for d in shape {
        m.extend_from_slice(&d.to_le_bytes());
    }
    m
}

fn datatype(dtype: Hdf5Dtype) -> Vec<u8> {
    match dtype {
        // class 1 (floating point), version 1; little-endian, implied-MSB mantissa
        // normalisation, sign at bit 31; size 4; offset 0, precision 32, exponent at 23 (8 bits),
        // mantissa at 0 (23 bits), bias 127: IEEE binary32 (H5T_IEEE_F32LE).
        Hdf5Dtype::F32 => {
            let mut m = vec![0x11, 0x20, 31, 0];
            m.extend_from_slice(&4u32.to_le_bytes());
            m.extend_from_slice(&0u16.to_le_bytes());
            m.extend_from_slice(&32u16.to_le_bytes());
            m.extend_from_slice(&[23, 8, 0, 23]);
            m.extend_from_slice(&127u32.to_le_bytes());
            m
        }
        // class 0 (fixed point), version 1; little-endian, signed; size 4; offset 0,
        // precision 32 (H5T_STD_I32LE).
        Hdf5Dtype::I32 => {
            let mut m = vec![0x10, 0x08, 0, 0];
            m.extend_from_slice(&4u32.to_le_bytes());
            m.extend_from_slice(&0u16.to_le_bytes());
            m.extend_from_slice(&32u16.to_le_bytes());
            m
        }
    }
}

fn dataset_header(d: &Hdf5Dataset) -> Vec<u8> {
    // Fill value version 3: space allocated early, fill written "if set", default value.
    let fill = vec![3, 0x01 | (2 << 2)];
    let mut layout = vec![3, 1]; // version 3, contiguous
    layout.extend_from_slice(&d.offset.to_le_bytes());
    layout.extend_from_slice(&d.byte_len().to_le_bytes());
    // Datatype flagged constant (bit 0), as libhdf5 flags it.
    object_header(&[
        (MSG_DATASPACE, 0, dataspace(&d.shape)),
        (MSG_DATATYPE, 1, datatype(d.dtype)),
        (MSG_FILL_VALUE, 1, fill),
        (MSG_LAYOUT, 0, layout),
    ])
}

fn root_header(links: &[(&str, u64)]) -> Vec<u8> {
    // Link info version 0, no creation order; no fractal heap, no name index: compact links.
    let mut linfo = vec![0, 0];
    linfo.extend_from_slice(&UNDEF.to_le_bytes());
    linfo.extend_from_slice(&UNDEF.to_le_bytes());
    let mut messages = vec![(MSG_LINK_INFO, 0, linfo), (MSG_GROUP_INFO, 0, vec![0, 0])];
    for (name, addr) in links {
        // Link version 1, flags 0: hard link, 1-byte name length, ASCII.
        let mut m = vec![1, 0, name.len() as u8];
        m.extend_from_slice(name.as_bytes());
        m.extend_from_slice(&addr.to_le_bytes());
        messages.push((MSG_LINK, 0, m));
    }
    object_header(&messages)
}

/// Completes a file whose dataset bytes are already in place (after the reserved
/// [`SUPERBLOCK_LEN`] bytes, ending at `end`): appends the object headers and writes the
/// superblock. Names must be shorter than 256 bytes.
pub fn finish_file<F: Write + Seek>(
    file: &mut F,
    datasets: &[Hdf5Dataset],
    end: u64,
) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(end))?;
    let mut pos = end;
    let mut links = Vec::with_capacity(datasets.len());
    for d in datasets {
        let h = dataset_header(d);
        file.write_all(&h)?;
        links.push((d.name.as_str(), pos));
        pos += h.len() as u64;
    }
    let root = pos;
    let h = root_header(&links);
    file.write_all(&h)?;
    let eof = root + h.len() as u64;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&superblock(eof, root))?;
    file.flush()?;
    Ok(eof)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup3_matches_the_reference_driver() {
        // lookup3.c's driver5 values.
        assert_eq!(lookup3(b"", 0), 0xdeadbeef);
        assert_eq!(lookup3(b"", 0xdeadbeef), 0xbd5b7dde);
        assert_eq!(lookup3(b"Four score and seven years ago", 0), 0x17770551);
        assert_eq!(lookup3(b"Four score and seven years ago", 1), 0xcd628161);
    }
}
