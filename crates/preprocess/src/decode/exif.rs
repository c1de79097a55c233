//! EXIF orientation (§1.1): OpenCV ≥ 3.1 reads the Orientation tag (0x0112) from a JPEG's Exif APP1
//! segment or a PNG's eXIf chunk and rotates/flips the decoded image (`ApplyExifOrientation` in
//! `imgcodecs/src/loadsave.cpp`); H and W swap for orientations 5–8.
//!
//! The tag is read the way OpenCV's `ExifReader` reads it, quirks included: only IFD0; the byte order
//! is little-endian only for "II" (anything else reads big-endian); the value is the 16-bit word at
//! offset 8 of the entry whatever its declared type; entries are parsed in file order and the first
//! one OpenCV cannot read (a string, rational or short pointing past the end) ends the parse, so an
//! Orientation entry after it is ignored; the first Orientation entry wins; values outside 1–8 do
//! nothing.

use super::ImageBgr;

const ORIENTATION: u16 = 0x0112;

/// The Orientation of the first Exif APP1 segment that has one, scanning the markers before the
/// first SOS like `jpeg_read_header` does.
pub(super) fn jpeg_orientation(jpeg: &[u8]) -> Option<u16> {
    let mut pos = 2; // after SOI
    loop {
        // libjpeg's next_marker: skip any garbage, then any number of 0xFF fill bytes.
        while *jpeg.get(pos)? != 0xff {
            pos += 1;
        }
        while *jpeg.get(pos)? == 0xff {
            pos += 1;
        }
        let marker = *jpeg.get(pos)?;
        pos += 1;
        match marker {
            0xda | 0xd9 => return None,     // SOS, EOI: the header is over
            0x01 | 0xd0..=0xd8 => continue, // TEM, RSTn, SOI: no length field
            _ => {}
        }
        let length = usize::from(u16::from_be_bytes([*jpeg.get(pos)?, *jpeg.get(pos + 1)?]));
        let segment = jpeg.get(pos + 2..pos.checked_add(length)?)?;
        if marker == 0xe1 && segment.len() > 6 && segment.starts_with(b"Exif\0\0") {
            if let Some(tag) = tiff_orientation(&segment[6..]) {
                return Some(tag);
            }
        }
        pos += length.max(2);
    }
}

/// The Orientation of the first eXIf chunk. libpng drops an eXIf chunk whose first two bytes are
/// not "II" or "MM", so OpenCV never sees it.
pub(super) fn png_orientation(png: &[u8]) -> Option<u16> {
    let mut pos = 8; // after the signature
    loop {
        let length = u32::from_be_bytes(png.get(pos..pos + 4)?.try_into().ok()?) as usize;
        let kind = png.get(pos + 4..pos + 8)?;
        let data = png.get(pos + 8..(pos + 8).checked_add(length)?)?;
        match kind {
            b"eXIf" if data.starts_with(b"II") || data.starts_with(b"MM") => {
                return tiff_orientation(data)
            }
            b"IEND" => return None,
            _ => pos += 12 + length,
        }
    }
}

/// OpenCV's `ExifReader::parseExif` reduced to the Orientation tag (see the module doc).
pub(crate) fn tiff_orientation(tiff: &[u8]) -> Option<u16> {
    let intel = tiff.len() > 1 && tiff[0] == b'I' && tiff[1] == b'I';
    let u16_at = |off: usize| -> Option<u16> {
        let b: [u8; 2] = tiff.get(off..off.checked_add(2)?)?.try_into().ok()?;
        Some(if intel {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    };
    let u32_at = |off: usize| -> Option<usize> {
        let b: [u8; 4] = tiff.get(off..off.checked_add(4)?)?.try_into().ok()?;
        Some(if intel {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        } as usize)
    };
    // The rationals at the offset stored in an entry: OpenCV reads them all, failing past the end.
    let rationals_fit = |entry: usize, count: usize| -> Option<()> {
        let start = u32_at(entry + 8)?;
        u32_at(start.checked_add(8 * count - 4)?).map(|_| ())
    };
    if u16_at(2)? != 42 {
        return None;
    }
    let ifd0 = u32_at(4)?;
    let entries = u16_at(ifd0)?;
    for i in 0..usize::from(entries) {
        let entry = ifd0 + 2 + 12 * i;
        match u16_at(entry)? {
            ORIENTATION => return u16_at(entry + 8),
            // ImageDescription, Make, Model, Software, DateTime, Copyright: ExifReader::getString.
            0x010e | 0x010f | 0x0110 | 0x0131 | 0x0132 | 0x8298 => {
                let size = u32_at(entry + 4)?;
                let start = if size > 4 { u32_at(entry + 8)? } else { 8 };
                if start > tiff.len() || start + size > tiff.len() {
                    return None;
                }
            }
            0x0128 | 0x0213 => {
                u16_at(entry + 8)?; // ResolutionUnit, YCbCrPositioning
            }
            0x011a | 0x011b => rationals_fit(entry, 1)?, // X/YResolution
            0x013e => rationals_fit(entry, 2)?,          // WhitePoint
            0x0211 => rationals_fit(entry, 3)?,          // YCbCrCoefficients
            0x013f | 0x0214 => rationals_fit(entry, 6)?, // PrimaryChromaticities, ReferenceBlackWhite
            _ => {}
        }
    }
    None
}

/// OpenCV's `ExifTransform`: 2 flip left-right; 3 rotate 180°; 4 flip top-bottom; 5 transpose;
/// 6 transpose + flip left-right (90° clockwise); 7 transpose + rotate 180°; 8 transpose + flip
/// top-bottom (90° counter-clockwise); anything else leaves the image as it is.
pub(crate) fn apply_orientation(image: ImageBgr, orientation: u16) -> ImageBgr {
    let (transpose, flip_lr, flip_tb) = match orientation {
        2 => (false, true, false),
        3 => (false, true, true),
        4 => (false, false, true),
        5 => (true, false, false),
        6 => (true, true, false),
        7 => (true, true, true),
        8 => (true, false, true),
        _ => return image,
    };
    let (h, w) = if transpose {
        (image.width, image.height)
    } else {
        (image.height, image.width)
    };
    let mut data = Vec::with_capacity(image.data.len());
    for y in 0..h {
        let ty = if flip_tb { h - 1 - y } else { y };
        for x in 0..w {
            let tx = if flip_lr { w - 1 - x } else { x };
            let (sy, sx) = if transpose { (tx, ty) } else { (ty, tx) };
            let at = (sy * image.width + sx) * 3;
            data.extend_from_slice(&image.data[at..at + 3]);
        }
    }
    ImageBgr {
        height: h,
        width: w,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2×3 image whose pixel (y, x) is [10y + x; 3].
    fn image() -> ImageBgr {
        let data = (0..2u8)
            .flat_map(|y| (0..3u8).flat_map(move |x| [10 * y + x; 3]))
            .collect();
        ImageBgr {
            height: 2,
            width: 3,
            data,
        }
    }

    fn values(img: &ImageBgr) -> Vec<u8> {
        img.data.iter().step_by(3).copied().collect()
    }

    #[test]
    fn orientations_follow_opencv_exif_transform() {
        // Source rows: [0 1 2] / [10 11 12]. Expected layouts written from the EXIF definitions.
        let cases: [(u16, usize, usize, &[u8]); 9] = [
            (1, 2, 3, &[0, 1, 2, 10, 11, 12]),
            (2, 2, 3, &[2, 1, 0, 12, 11, 10]),
            (3, 2, 3, &[12, 11, 10, 2, 1, 0]),
            (4, 2, 3, &[10, 11, 12, 0, 1, 2]),
            (5, 3, 2, &[0, 10, 1, 11, 2, 12]),
            (6, 3, 2, &[10, 0, 11, 1, 12, 2]),
            (7, 3, 2, &[12, 2, 11, 1, 10, 0]),
            (8, 3, 2, &[2, 12, 1, 11, 0, 10]),
            (9, 2, 3, &[0, 1, 2, 10, 11, 12]),
        ];
        for (tag, h, w, expected) in cases {
            let out = apply_orientation(image(), tag);
            assert_eq!((out.height, out.width), (h, w), "orientation {tag}");
            assert_eq!(values(&out), expected, "orientation {tag}");
        }
    }

    fn tiff(intel: bool, entries: &[(u16, u16, u32, [u8; 4])]) -> Vec<u8> {
        let w16 = |v: u16| {
            if intel {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let w32 = |v: u32| {
            if intel {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        let mut t = if intel {
            b"II".to_vec()
        } else {
            b"MM".to_vec()
        };
        t.extend(w16(42));
        t.extend(w32(8));
        t.extend(w16(entries.len() as u16));
        for &(tag, kind, count, value) in entries {
            t.extend(w16(tag));
            t.extend(w16(kind));
            t.extend(w32(count));
            t.extend(value);
        }
        t.extend([0; 4]);
        t
    }

    #[test]
    fn orientation_tag_is_read_in_both_byte_orders() {
        assert_eq!(
            tiff_orientation(&tiff(true, &[(0x0112, 3, 1, [6, 0, 0, 0])])),
            Some(6)
        );
        assert_eq!(
            tiff_orientation(&tiff(false, &[(0x0112, 3, 1, [0, 8, 0, 0])])),
            Some(8)
        );
        // Make (ASCII, 3 bytes stored inline) before it is fine.
        let ok = tiff(
            true,
            &[(0x010f, 2, 3, *b"ab\0\0"), (0x0112, 3, 1, [3, 0, 0, 0])],
        );
        assert_eq!(tiff_orientation(&ok), Some(3));
        // A Make string pointing past the end stops OpenCV's parse before the Orientation entry.
        let bad = tiff(
            true,
            &[
                (0x010f, 2, 40, [200, 0, 0, 0]),
                (0x0112, 3, 1, [3, 0, 0, 0]),
            ],
        );
        assert_eq!(tiff_orientation(&bad), None);
        // Wrong TIFF mark.
        let mut wrong = tiff(true, &[(0x0112, 3, 1, [6, 0, 0, 0])]);
        wrong[2] = 43;
        assert_eq!(tiff_orientation(&wrong), None);
    }

    #[test]
    fn jpeg_exif_segment_is_found_before_sos() {
        let t = tiff(false, &[(0x0112, 3, 1, [0, 6, 0, 0])]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(&t);
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0, 4, 1, 2]; // SOI, a short APP0
        jpeg.extend([0xff, 0xe1]);
        jpeg.extend(((app1.len() + 2) as u16).to_be_bytes());
        jpeg.extend(&app1);
        jpeg.extend([0xff, 0xda, 0, 2]);
        assert_eq!(jpeg_orientation(&jpeg), Some(6));
        // After SOS the segment is not looked at, like libjpeg's header reader.
        let mut late = vec![0xff, 0xd8, 0xff, 0xda, 0, 2];
        late.extend(&jpeg[8..]);
        assert_eq!(jpeg_orientation(&late), None);
        // Truncated segments end the search quietly.
        assert_eq!(jpeg_orientation(&jpeg[..12]), None);
    }
}
