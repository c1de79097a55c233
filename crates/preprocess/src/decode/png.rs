//! PNG as OpenCV's libpng settings read it for `IMREAD_COLOR` (§1.1): `png_set_strip_16` (16-bit
//! samples keep their high byte), `png_set_strip_alpha` (alpha and tRNS dropped, no compositing),
//! `png_set_palette_to_rgb`, `png_set_expand_gray_1_2_4_to_8` (×255, ×85, ×17), and gray copied into
//! B, G and R (`png_set_gray_to_rgb`). No gamma, sBIT or colour-profile handling, as in OpenCV.
//!
//! The `png` crate's `EXPAND | STRIP_16` transformations produce the same 8-bit samples (the same
//! scale factors and the high byte); alpha, where it appears, is then dropped here.
//! Animated PNGs: the default image (IDAT) is read; cv2 4.11 composes the first frame over a
//! transparent-black canvas instead, which gives the same pixels when that frame covers the canvas
//! with the SOURCE blend op.

use png::{BitDepth, ColorType, Decoder, Limits, Transformations};

use super::ImageBgr;
use crate::Error;

pub(super) fn decode(bytes: &[u8], name: &str, max_pixels: u64) -> Result<ImageBgr, Error> {
    let png_error = |e: png::DecodingError| Error::Png {
        name: name.into(),
        message: e.to_string(),
    };
    // The crate's own allocation budget: the largest frame we accept (RGBA, 16 bit) plus room for
    // ancillary chunks; the pixel limit itself is checked on the header below.
    let budget = max_pixels.saturating_mul(8).saturating_add(64 << 20);
    let mut decoder = Decoder::new_with_limits(
        bytes,
        Limits {
            bytes: usize::try_from(budget).unwrap_or(usize::MAX),
        },
    );
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let header = decoder.read_header_info().map_err(png_error)?;
    let (width, height) = (u64::from(header.width), u64::from(header.height));
    if width * height > max_pixels {
        return Err(Error::TooLarge {
            name: name.into(),
            width,
            height,
            pixels: width * height,
            max_pixels,
        });
    }
    let mut reader = decoder.read_info().map_err(png_error)?;
    let (color, depth) = reader.output_color_type();
    let channels = match (color, depth) {
        (ColorType::Grayscale, BitDepth::Eight) => 1,
        (ColorType::GrayscaleAlpha, BitDepth::Eight) => 2,
        (ColorType::Rgb, BitDepth::Eight) => 3,
        (ColorType::Rgba, BitDepth::Eight) => 4,
        other => {
            return Err(Error::Png {
                name: name.into(),
                message: format!(
                    "unexpected decoded sample layout {other:?}, expected 8-bit samples"
                ),
            })
        }
    };
    let size = reader.output_buffer_size();
    let mut raw = Vec::new();
    raw.try_reserve_exact(size)
        .map_err(|_| Error::OutOfMemory {
            name: name.into(),
            bytes: size as u64,
        })?;
    raw.resize(size, 0);
    let frame = reader.next_frame(&mut raw).map_err(png_error)?;
    // libpng's png_read_end: OpenCV fails the read if the chunks after the image data are broken
    // or IEND is missing.
    reader.finish().map_err(png_error)?;
    let (height, width) = (frame.height as usize, frame.width as usize);
    let data = to_bgr(
        &raw[..frame.buffer_size()],
        width * height,
        channels,
        frame.line_size,
        width,
    );
    Ok(ImageBgr {
        height,
        width,
        data,
    })
}

/// Gray → B = G = R = gray; RGB → BGR; any alpha sample is dropped (no compositing).
fn to_bgr(raw: &[u8], pixels: usize, channels: usize, line_size: usize, width: usize) -> Vec<u8> {
    let mut bgr = Vec::with_capacity(pixels * 3);
    for line in raw.chunks_exact(line_size) {
        for px in line[..width * channels].chunks_exact(channels) {
            match channels {
                1 | 2 => bgr.extend_from_slice(&[px[0], px[0], px[0]]),
                _ => bgr.extend_from_slice(&[px[2], px[1], px[0]]),
            }
        }
    }
    bgr
}
