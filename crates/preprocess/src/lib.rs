//! Image decoding and network-input preparation exactly as BUTD's Caffe pipeline does it:
//! `cv2.imread(path)` then `lib/fast_rcnn/test.py:_get_image_blob` (docs/semantics.md §1).
//!
//! ```no_run
//! let img = butd_preprocess::decode_file(std::path::Path::new("photo.jpg"))?;
//! let input = butd_preprocess::net_input(&img)?; // 1×3×H′×W′ as `input.data`, plus im_info()
//! # Ok::<(), butd_preprocess::Error>(())
//! ```
//!
//! Each Caffe/OpenCV/NumPy quirk is one named function citing its section:
//! [`numpy_round_half_even`] and [`im_scale`] (§1.3), [`cv_round`] and [`resized_size`] (§1.4),
//! [`subtract_mean_f64`] (§1.2), [`linear_source_coord`], [`linear_becomes_area_half`] and the
//! resize itself, [`cv2_resize_f32`] (§1.5), the CHW blob of [`net_input`] and
//! [`NetInput::im_info`] (§1.6).
//!
//! Checked bit for bit against the real pipeline: every golden file's `image_bgr`, `im_info` and
//! (tier 1) `data` (OpenCV 4.11); 17 decoder fixtures and 7 resize fixtures made with OpenCV 5.0
//! (`tests/data`). Where this crate deliberately differs from `cv2.imread`:
//! - a JPEG whose data ends before its pixels do ([`Error::JpegTruncated`]) is refused; cv2 warns
//!   and returns an image whose missing part is made up;
//! - images over [`DecodeOptions::max_pixels`] (default 2^28) are refused; cv2's limit is 2^30;
//! - only JPEG and PNG are read ([`Error::UnsupportedFormat`] names what else a file is);
//! - an animated PNG gives its default image (see `decode/png.rs`).

mod blob;
mod decode;
mod error;
mod mean;
mod resize;
mod scale;

pub use blob::{net_input, net_input_with, NetInput};
pub use decode::{
    decode_bytes, decode_bytes_with, decode_file, decode_file_with, read_image_file, DecodeOptions,
    ImageBgr, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS,
};
pub use error::Error;
pub use mean::{subtract_mean_f64, PIXEL_MEANS_BGR};
pub use resize::{cv2_resize_f32, linear_becomes_area_half, linear_source_coord, ImageF32};
pub use scale::{
    cv_round, im_scale, im_scale_with, numpy_round_half_even, resized_size, TEST_MAX_SIZE,
    TEST_SCALE,
};
