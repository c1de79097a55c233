//! `cv2.imread(path)` with its default flag `IMREAD_COLOR` (docs/semantics.md §1.1): every image
//! comes out as 8-bit, 3-channel, BGR, row-major (HWC), with the EXIF orientation applied.
//!
//! Only JPEG and PNG are read; the format is told by the first bytes, never by the file name, as
//! OpenCV does.

mod exif;
mod jpeg;
mod png;

use std::path::Path;

use crate::Error;

/// A decoded image: `height` rows of `width` pixels, 3 bytes per pixel in the order B, G, R.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageBgr {
    pub height: usize,
    pub width: usize,
    /// HWC, BGR: pixel (y, x) channel c is at `(y * width + x) * 3 + c`.
    pub data: Vec<u8>,
}

/// The default [`DecodeOptions::max_pixels`]: 2^28 pixels (e.g. 16384 × 16384), 768 MiB decoded.
/// cv2 itself refuses more than 2^30 pixels (`CV_IO_MAX_IMAGE_PIXELS`); we stop earlier by default
/// because the float32 network input path needs several times the decoded size.
pub const DEFAULT_MAX_PIXELS: u64 = 1 << 28;

/// The default [`DecodeOptions::max_file_bytes`]: 1 GiB. A JPEG or PNG of the largest image
/// allowed ([`DEFAULT_MAX_PIXELS`], 768 MiB of BGR pixels) stays below it even when stored
/// uncompressed; a larger file is refused before a byte of it is read.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 1 << 30;

/// How to decode. The defaults reproduce `cv2.imread(path)` of OpenCV ≥ 3.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Refuse (with [`Error::TooLarge`]) an image whose header announces more pixels than this,
    /// before any pixel memory is allocated.
    pub max_pixels: u64,
    /// Refuse (with [`Error::FileTooLarge`]) a file larger than this, before reading it.
    pub max_file_bytes: u64,
    /// Rotate/flip by the EXIF Orientation tag like OpenCV ≥ 3.1 (§1.1). `false` gives OpenCV 2.4's
    /// behaviour (the tag is ignored).
    pub apply_exif_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_pixels: DEFAULT_MAX_PIXELS,
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            apply_exif_orientation: true,
        }
    }
}

/// `cv2.imread(path)`: reads and decodes a JPEG or PNG file with the default options.
pub fn decode_file(path: &Path) -> Result<ImageBgr, Error> {
    decode_file_with(path, &DecodeOptions::default())
}

/// [`decode_file`] with explicit options.
pub fn decode_file_with(path: &Path, options: &DecodeOptions) -> Result<ImageBgr, Error> {
    let bytes = read_image_file(path, options.max_file_bytes)?;
    decode_bytes_with(&bytes, &path.display().to_string(), options)
}

/// The bytes of a regular file of at most `max_bytes`. The file is opened non-blocking and
/// checked through its open handle before anything is read: a FIFO or a device named `*.jpg`
/// would otherwise block the run or stream forever (`/dev/zero`), and a huge file would be
/// read whole into memory.
pub fn read_image_file(path: &Path, max_bytes: u64) -> Result<Vec<u8>, Error> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    /// O_NONBLOCK on Linux: opening a FIFO without a writer returns at once instead of waiting.
    const O_NONBLOCK: i32 = 0o4000;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(Error::NotAFile {
            path: path.to_path_buf(),
            what,
        });
    }
    if meta.len() > max_bytes {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            bytes: meta.len(),
            max_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // `take`: a file that grows while it is read still stops at the limit.
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(Error::FileTooLarge {
            path: path.to_path_buf(),
            bytes: bytes.len() as u64,
            max_bytes,
        });
    }
    Ok(bytes)
}

/// `cv2.imdecode(bytes, IMREAD_COLOR)`; `name` only labels error messages.
pub fn decode_bytes(bytes: &[u8], name: &str) -> Result<ImageBgr, Error> {
    decode_bytes_with(bytes, name, &DecodeOptions::default())
}

/// [`decode_bytes`] with explicit options.
pub fn decode_bytes_with(
    bytes: &[u8],
    name: &str,
    options: &DecodeOptions,
) -> Result<ImageBgr, Error> {
    let (image, orientation) = match sniff_format(bytes, name)? {
        Format::Jpeg => (
            jpeg::decode(bytes, name, options.max_pixels)?,
            exif::jpeg_orientation(bytes),
        ),
        Format::Png => (
            png::decode(bytes, name, options.max_pixels)?,
            exif::png_orientation(bytes),
        ),
    };
    Ok(match orientation {
        Some(tag) if options.apply_exif_orientation => exif::apply_orientation(image, tag),
        _ => image,
    })
}

enum Format {
    Jpeg,
    Png,
}

/// Magic numbers of the formats cv2 could also read, so that the error can say what the file is.
const OTHER_FORMATS: &[(&[u8], &str)] = &[
    (b"BM", "a BMP image"),
    (b"GIF8", "a GIF image"),
    (b"II*\0", "a TIFF image"),
    (b"MM\0*", "a TIFF image"),
    (b"RIFF", "a RIFF file (WebP?)"),
    (b"\0\0\0\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (b"\xff\x0a", "a JPEG XL image"),
    (b"\0\0\0\x0cJXL ", "a JPEG XL image"),
    (b"#?RADIANCE", "a Radiance HDR image"),
    (b"\x76\x2f\x31\x01", "an OpenEXR image"),
    (b"\x59\xa6\x6a\x95", "a Sun raster image"),
    (b"qoif", "a QOI image"),
    (b"P1", "a PBM image"),
    (b"P2", "a PGM image"),
    (b"P3", "a PPM image"),
    (b"P4", "a PBM image"),
    (b"P5", "a PGM image"),
    (b"P6", "a PPM image"),
    (b"P7", "a PAM image"),
    (b"Pf", "a PFM image"),
    (b"PF", "a PFM image"),
];

fn sniff_format(bytes: &[u8], name: &str) -> Result<Format, Error> {
    if bytes.is_empty() {
        return Err(Error::Empty { name: name.into() });
    }
    if bytes.starts_with(b"\xff\xd8\xff") {
        return Ok(Format::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(Format::Png);
    }
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02X}")).collect();
    let what = if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        "an ISO media file (AVIF/HEIF?)"
    } else {
        OTHER_FORMATS
            .iter()
            .find(|(magic, _)| bytes.starts_with(magic))
            .map_or("not a supported image", |(_, what)| what)
    };
    Err(Error::UnsupportedFormat {
        name: name.into(),
        found: format!("{what} (first bytes {})", head.join(" ")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_is_told_by_content() {
        assert!(matches!(
            sniff_format(b"\xff\xd8\xff\xe0", "a.png"),
            Ok(Format::Jpeg)
        ));
        assert!(matches!(
            sniff_format(b"\x89PNG\r\n\x1a\n", "a.jpg"),
            Ok(Format::Png)
        ));
        let err = sniff_format(b"BM\x36\0\0\0", "x.jpg")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("x.jpg") && err.contains("BMP"), "{err}");
        let err = sniff_format(b"hello", "t.jpg").err().unwrap().to_string();
        assert!(
            err.contains("not a supported image") && err.contains("68 65"),
            "{err}"
        );
        assert!(matches!(
            sniff_format(b"", "e.jpg"),
            Err(Error::Empty { .. })
        ));
    }
}
