//! JPEG through libjpeg-turbo (§1.1).
//!
//! Why a C library: the pixels must be bit-identical to the libjpeg-turbo inside cv2 (ISLOW integer
//! IDCT, fancy upsampling, libjpeg's YCbCr tables). On the four golden JPEGs the pure-Rust decoders
//! are not: `zune-jpeg` 0.4 differs in 8856 / 125892 / 51112 / 69258 values (astronaut_strip /
//! coffee / chelsea / retina_wide, up to ±6) and `jpeg-decoder` 0.3 in 3917 / 60829 / 33042 / 64200
//! (up to ±3). `mozjpeg-sys` compiles libjpeg-turbo's decoder (Mozilla changed only the encoder)
//! from C with `cc`, needs no system library and no NASM, and is exact on all of them
//! (`tests/golden.rs`).
//!
//! libjpeg is driven by `csrc/jpeg_shim.c`, which keeps libjpeg's setjmp/longjmp error handling in C.

use std::ffi::{c_char, c_int, c_uint, c_ulong, c_void, CStr};

use super::ImageBgr;
use crate::Error;

// Pulls in the compiled libjpeg that the shim links against.
use mozjpeg_sys as _;

const JMSG_LENGTH_MAX: usize = 200;

const OK: c_int = 0;
const ERROR: c_int = 1;
const REFUSED: c_int = 2;
const TRUNCATED: c_int = 3;

#[repr(C)]
struct ShimResult {
    width: c_uint,
    height: c_uint,
    channels: c_uint,
    message: [c_char; JMSG_LENGTH_MAX],
}

type AllocFn = extern "C" fn(*mut c_void, c_uint, c_uint, c_uint) -> *mut u8;

extern "C" {
    fn butd_jpeg_decode(
        data: *const u8,
        len: c_ulong,
        alloc: AllocFn,
        ctx: *mut c_void,
        result: *mut ShimResult,
    ) -> c_int;
}

/// The output buffer, sized by the shim once the header is read; refuses oversized images.
struct Output {
    max_pixels: u64,
    buffer: Vec<u8>,
    refusal: Option<Refusal>,
}

enum Refusal {
    TooLarge { width: u64, height: u64 },
    NoMemory { bytes: u64 },
}

/// Called from C between `jpeg_read_header` and `jpeg_start_decompress`; must not unwind.
extern "C" fn allocate(
    ctx: *mut c_void,
    width: c_uint,
    height: c_uint,
    channels: c_uint,
) -> *mut u8 {
    // SAFETY: `ctx` is the `&mut Output` that `decode` passed to the shim for this call only.
    let out = unsafe { &mut *ctx.cast::<Output>() };
    let (width, height) = (u64::from(width), u64::from(height));
    if width * height > out.max_pixels {
        out.refusal = Some(Refusal::TooLarge { width, height });
        return std::ptr::null_mut();
    }
    let bytes = width * height * u64::from(channels);
    let Ok(len) = usize::try_from(bytes) else {
        out.refusal = Some(Refusal::NoMemory { bytes });
        return std::ptr::null_mut();
    };
    if out.buffer.try_reserve_exact(len).is_err() {
        out.refusal = Some(Refusal::NoMemory { bytes });
        return std::ptr::null_mut();
    }
    out.buffer.resize(len, 0);
    out.buffer.as_mut_ptr()
}

pub(super) fn decode(bytes: &[u8], name: &str, max_pixels: u64) -> Result<ImageBgr, Error> {
    let mut out = Output {
        max_pixels,
        buffer: Vec::new(),
        refusal: None,
    };
    let mut result = ShimResult {
        width: 0,
        height: 0,
        channels: 0,
        message: [0; JMSG_LENGTH_MAX],
    };
    let len = c_ulong::try_from(bytes.len()).map_err(|_| Error::Jpeg {
        name: name.into(),
        message: format!("{} bytes is more than libjpeg can address", bytes.len()),
    })?;
    // SAFETY: `bytes` outlives the call; `allocate` only touches `out`, whose buffer stays alive and
    // unmoved while the shim writes `height` rows of `width * channels` bytes into it.
    let code = unsafe {
        butd_jpeg_decode(
            bytes.as_ptr(),
            len,
            allocate,
            (&mut out as *mut Output).cast(),
            &mut result,
        )
    };
    // SAFETY: libjpeg's format_message writes a NUL-terminated string of < JMSG_LENGTH_MAX bytes,
    // and the shim zeroes the buffer first.
    let message = || {
        unsafe { CStr::from_ptr(result.message.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    };
    match code {
        OK => {}
        ERROR => {
            return Err(Error::Jpeg {
                name: name.into(),
                message: message(),
            })
        }
        TRUNCATED => {
            return Err(Error::JpegTruncated {
                name: name.into(),
                message: message(),
            })
        }
        REFUSED => {
            return Err(match out.refusal {
                Some(Refusal::TooLarge { width, height }) => Error::TooLarge {
                    name: name.into(),
                    width,
                    height,
                    pixels: width * height,
                    max_pixels,
                },
                Some(Refusal::NoMemory { bytes }) => Error::OutOfMemory {
                    name: name.into(),
                    bytes,
                },
                None => Error::Jpeg {
                    name: name.into(),
                    message: "the output buffer was refused without a reason".into(),
                },
            })
        }
        other => {
            return Err(Error::Jpeg {
                name: name.into(),
                message: format!("unexpected shim return code {other}"),
            })
        }
    }
    let (height, width) = (result.height as usize, result.width as usize);
    let data = match result.channels {
        3 => out.buffer,
        4 => cmyk_to_bgr_opencv(&out.buffer),
        n => {
            return Err(Error::Jpeg {
                name: name.into(),
                message: format!("libjpeg delivered {n} channels, expected 3 (BGR) or 4 (CMYK)"),
            })
        }
    };
    Ok(ImageBgr {
        height,
        width,
        data,
    })
}

/// OpenCV's CMYK→BGR for 4-component JPEGs (`icvCvt_CMYK2BGR_8u_C4C3R`, used by `cv2.imread`;
/// §1.1 leaves it unspecified, this is OpenCV's code). libjpeg hands over the stored CMYK values
/// (YCCK already turned into CMYK), which Adobe writes inverted; per channel
/// `out = k − ((255 − v)·k >> 8)`, written as B = y, G = m, R = c.
pub(crate) fn cmyk_to_bgr_opencv(cmyk: &[u8]) -> Vec<u8> {
    let mut bgr = Vec::with_capacity(cmyk.len() / 4 * 3);
    for px in cmyk.chunks_exact(4) {
        let k = i32::from(px[3]);
        let ink = |v: u8| (k - (((255 - i32::from(v)) * k) >> 8)) as u8;
        bgr.extend_from_slice(&[ink(px[2]), ink(px[1]), ink(px[0])]);
    }
    bgr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_formula_is_opencvs() {
        // Hand-evaluated: k = 200; c = 10: 200 − (245·200 >> 8) = 200 − 191 = 9;
        // m = 255: 200 − 0 = 200; y = 0: 200 − (255·200 >> 8) = 200 − 199 = 1. k = 0 → all 0.
        assert_eq!(
            cmyk_to_bgr_opencv(&[10, 255, 0, 200, 7, 8, 9, 0]),
            vec![1, 200, 9, 0, 0, 0]
        );
    }
}
