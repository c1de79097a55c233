use std::path::PathBuf;

/// Everything that can go wrong between a file on disk and a network input. Every message names the
/// file (or the image) and says what was expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: cannot read the file: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {what}, not an image file; skipped without reading it", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    #[error(
        "{}: the file is {bytes} bytes, more than the limit of {max_bytes} bytes for an image \
         file (DecodeOptions::max_file_bytes); not read",
        path.display()
    )]
    FileTooLarge {
        path: PathBuf,
        bytes: u64,
        max_bytes: u64,
    },
    #[error("{name}: the file is empty (0 bytes); expected a JPEG or PNG image")]
    Empty { name: String },
    #[error(
        "{name}: {found}; expected a JPEG (starting with FF D8 FF) or a PNG \
         (starting with 89 50 4E 47 0D 0A 1A 0A)"
    )]
    UnsupportedFormat { name: String, found: String },
    #[error("{name}: JPEG decoding failed: {message}")]
    Jpeg { name: String, message: String },
    #[error(
        "{name}: JPEG data incomplete ({message}): the file is truncated or its entropy-coded data \
         is cut short; cv2.imread would fill the missing part with made-up pixels"
    )]
    JpegTruncated { name: String, message: String },
    #[error("{name}: PNG decoding failed: {message}")]
    Png { name: String, message: String },
    #[error(
        "{name}: the image is {width}×{height} = {pixels} pixels, more than the limit of \
         {max_pixels} pixels (DecodeOptions::max_pixels)"
    )]
    TooLarge {
        name: String,
        width: u64,
        height: u64,
        pixels: u64,
        max_pixels: u64,
    },
    #[error("{name}: cannot allocate {bytes} bytes for the decoded image")]
    OutOfMemory { name: String, bytes: u64 },
    #[error("image data of {len} values does not match its size {height}×{width}×3 = {expected}")]
    InconsistentImage {
        height: usize,
        width: usize,
        len: usize,
        expected: usize,
    },
    #[error(
        "a {height}×{width} image scaled by {scale} gives an empty {out_height}×{out_width} \
         output (cv2.resize refuses an empty output size too)"
    )]
    EmptyResize {
        height: usize,
        width: usize,
        scale: f64,
        out_height: usize,
        out_width: usize,
    },
    #[error("resize scale {scale} is not a finite positive number")]
    InvalidScale { scale: f64 },
}
