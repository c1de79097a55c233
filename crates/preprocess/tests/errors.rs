//! Bad and unusual inputs: clear errors (never panics) naming the file, and the PNG sample
//! conversions of §1.1 on images built here with the `png` encoder.

mod common;

use butd_preprocess::{
    decode_bytes, decode_bytes_with, decode_file, net_input, DecodeOptions, Error, ImageBgr,
};
use png::{BitDepth, ColorType};

fn encode_png(
    width: u32,
    height: u32,
    color: ColorType,
    depth: BitDepth,
    data: &[u8],
    extra: impl FnOnce(&mut png::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(color);
        encoder.set_depth(depth);
        extra(&mut encoder);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(data).unwrap();
    }
    out
}

fn plain_png(width: u32, height: u32, color: ColorType, depth: BitDepth, data: &[u8]) -> Vec<u8> {
    encode_png(width, height, color, depth, data, |_| {})
}

fn golden_jpeg(name: &str) -> Vec<u8> {
    std::fs::read(common::golden_dir().join("images").join(name)).unwrap()
}

#[test]
fn empty_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.jpg");
    std::fs::write(&path, b"").unwrap();
    let err = decode_file(&path).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("empty.jpg") && msg.contains("0 bytes"),
        "{msg}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let err = decode_file(std::path::Path::new("/nonexistent/x.png")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/x.png"), "{err}");
}

#[test]
fn text_named_jpg_is_not_an_image() {
    let err = decode_bytes(b"hello, this is text\n", "notes.jpg").unwrap_err();
    assert!(matches!(err, Error::UnsupportedFormat { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("notes.jpg")
            && msg.contains("not a supported image")
            && msg.contains("68 65 6C"),
        "{msg}"
    );
}

#[test]
fn other_formats_are_named() {
    let bmp = [
        b"BM".as_slice(),
        &[0x3a, 0, 0, 0, 0, 0, 0, 0, 0x36, 0, 0, 0],
    ]
    .concat();
    let msg = decode_bytes(&bmp, "pic.png").unwrap_err().to_string();
    assert!(msg.contains("pic.png") && msg.contains("BMP"), "{msg}");
}

#[test]
fn truncated_jpeg_is_an_error_not_made_up_pixels() {
    let jpeg = golden_jpeg("coffee.jpg");
    for cut in [jpeg.len() / 2, jpeg.len() - 100] {
        let err = decode_bytes(&jpeg[..cut], "coffee_cut.jpg").unwrap_err();
        assert!(
            matches!(err, Error::JpegTruncated { .. }),
            "cut at {cut}: {err}"
        );
        assert!(err.to_string().contains("coffee_cut.jpg"), "{err}");
    }
    // Cut inside the header: libjpeg's own error.
    let err = decode_bytes(&jpeg[..40], "head.jpg").unwrap_err();
    assert!(
        matches!(err, Error::Jpeg { .. } | Error::JpegTruncated { .. }),
        "{err}"
    );
}

#[test]
fn jpeg_missing_only_its_end_marker_decodes_like_cv2() {
    // cv2.imread warns "Premature end of JPEG file" and returns every pixel; so do we.
    let jpeg = golden_jpeg("coffee.jpg");
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9]);
    let golden = common::read_tensor("coffee", "image_bgr").unwrap();
    assert_eq!(
        decode_bytes(&jpeg[..jpeg.len() - 2], "no_eoi.jpg")
            .unwrap()
            .data,
        golden.bytes
    );
    let progressive = std::fs::read(data_dir().join("jpeg_progressive.jpg")).unwrap();
    let cv2 = std::fs::read(data_dir().join("jpeg_progressive.bgr")).unwrap();
    assert_eq!(
        decode_bytes(&progressive[..progressive.len() - 2], "p.jpg")
            .unwrap()
            .data,
        cv2
    );
}

#[test]
fn progressive_jpeg_cut_between_scans_is_an_error() {
    // Cut right before the last SOS: every remaining scan is whole, but the last refinement is
    // missing, so cv2 would return a coarser image.
    let jpeg = std::fs::read(data_dir().join("jpeg_progressive.jpg")).unwrap();
    let last_sos = jpeg.windows(2).rposition(|w| w == [0xff, 0xda]).unwrap();
    for cut in [last_sos, last_sos + 20] {
        let err = decode_bytes(&jpeg[..cut], "prog_cut.jpg").unwrap_err();
        assert!(
            matches!(err, Error::JpegTruncated { .. }),
            "cut at {cut}: {err}"
        );
    }
}

fn data_dir() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

#[test]
fn corrupt_jpeg_header_is_libjpegs_error() {
    let mut jpeg = golden_jpeg("chelsea.jpg");
    // Find SOF0 (FF C0) and set the number of components to 0.
    let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).unwrap();
    jpeg[sof + 9] = 0;
    let err = decode_bytes(&jpeg, "bad_sof.jpg").unwrap_err();
    assert!(matches!(err, Error::Jpeg { .. }), "{err}");
    assert!(err.to_string().contains("bad_sof.jpg"), "{err}");
}

#[test]
fn one_pixel_image_works() {
    let png = plain_png(1, 1, ColorType::Rgb, BitDepth::Eight, &[10, 20, 30]);
    let img = decode_bytes(&png, "dot.png").unwrap();
    assert_eq!(
        img,
        ImageBgr {
            height: 1,
            width: 1,
            data: vec![30, 20, 10]
        }
    );
    // §1.3: short side 1 → s = 600, long side 600 ≤ 1000.
    let input = net_input(&img).unwrap();
    assert_eq!((input.height, input.width), (600, 600));
    assert_eq!(input.im_info(), [600.0, 600.0, 600.0]);
}

#[test]
fn sixteen_bit_png_keeps_the_high_byte() {
    // §1.1: png_set_strip_16 truncates: 0xABCD → 0xAB (round(v/257) would give 0xAC).
    let rgb16 = [0xab, 0xcd, 0x12, 0xff, 0x00, 0x80];
    let img = decode_bytes(
        &plain_png(1, 1, ColorType::Rgb, BitDepth::Sixteen, &rgb16),
        "16.png",
    )
    .unwrap();
    assert_eq!(img.data, vec![0x00, 0x12, 0xab]);
    let gray16 = [0x7f, 0xff, 0x80, 0x00];
    let img = decode_bytes(
        &plain_png(2, 1, ColorType::Grayscale, BitDepth::Sixteen, &gray16),
        "g16.png",
    )
    .unwrap();
    assert_eq!(img.data, vec![0x7f, 0x7f, 0x7f, 0x80, 0x80, 0x80]);
}

#[test]
fn palette_png_is_expanded_and_transparency_dropped() {
    let palette = vec![255, 0, 0, 0, 255, 0, 1, 2, 3];
    let png = encode_png(3, 1, ColorType::Indexed, BitDepth::Eight, &[2, 0, 1], |e| {
        e.set_palette(palette);
        e.set_trns(vec![0, 128, 255]);
    });
    let img = decode_bytes(&png, "pal.png").unwrap();
    assert_eq!(img.data, vec![3, 2, 1, 0, 0, 255, 0, 255, 0]);
}

#[test]
fn alpha_is_dropped_without_compositing() {
    // Gray+alpha: gray copied into B, G, R; a fully transparent pixel keeps its stored value.
    let img = decode_bytes(
        &plain_png(
            2,
            1,
            ColorType::GrayscaleAlpha,
            BitDepth::Eight,
            &[200, 0, 7, 255],
        ),
        "la.png",
    )
    .unwrap();
    assert_eq!(img.data, vec![200, 200, 200, 7, 7, 7]);
    let img = decode_bytes(
        &plain_png(1, 1, ColorType::Rgba, BitDepth::Eight, &[1, 2, 3, 0]),
        "rgba.png",
    )
    .unwrap();
    assert_eq!(img.data, vec![3, 2, 1]);
}

#[test]
fn low_bit_gray_is_scaled_like_libpng() {
    // png_set_expand_gray_1_2_4_to_8: 2-bit ×85, 4-bit ×17, 1-bit ×255.
    let img = decode_bytes(
        &plain_png(4, 1, ColorType::Grayscale, BitDepth::Two, &[0b00_01_10_11]),
        "g2.png",
    )
    .unwrap();
    assert_eq!(
        img.data.iter().step_by(3).copied().collect::<Vec<_>>(),
        vec![0, 85, 170, 255]
    );
    let img = decode_bytes(
        &plain_png(2, 1, ColorType::Grayscale, BitDepth::Four, &[0x3c]),
        "g4.png",
    )
    .unwrap();
    assert_eq!(
        img.data.iter().step_by(3).copied().collect::<Vec<_>>(),
        vec![51, 204]
    );
    let img = decode_bytes(
        &plain_png(3, 1, ColorType::Grayscale, BitDepth::One, &[0b101_00000]),
        "g1.png",
    )
    .unwrap();
    assert_eq!(
        img.data.iter().step_by(3).copied().collect::<Vec<_>>(),
        vec![255, 0, 255]
    );
}

#[test]
fn oversized_images_are_refused_before_decoding() {
    // A PNG whose header announces 20000×20000 (more than the default 2^28 pixels) and no data.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend((data.len() as u32).to_be_bytes());
        let body = [kind, data].concat();
        png.extend(&body);
        png.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(20000u32.to_be_bytes());
    ihdr.extend(20000u32.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IEND", &[]);
    let err = decode_bytes(&png, "huge.png").unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                pixels: 400_000_000,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("huge.png"), "{err}");

    // The limit is an option, and applies to JPEG too (the 512×33 golden strip is 16896 pixels).
    let options = DecodeOptions {
        max_pixels: 16895,
        ..DecodeOptions::default()
    };
    let err =
        decode_bytes_with(&golden_jpeg("astronaut_strip.jpg"), "strip.jpg", &options).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                width: 33,
                height: 512,
                ..
            }
        ),
        "{err}"
    );
    let options = DecodeOptions {
        max_pixels: 16896,
        ..options
    };
    assert!(decode_bytes_with(&golden_jpeg("astronaut_strip.jpg"), "strip.jpg", &options).is_ok());
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn truncated_png_is_an_error() {
    let png = plain_png(16, 16, ColorType::Rgb, BitDepth::Eight, &[77; 16 * 16 * 3]);
    for cut in [20, png.len() / 2, png.len() - 5] {
        let err = decode_bytes(&png[..cut], "cut.png").unwrap_err();
        assert!(matches!(err, Error::Png { .. }), "cut at {cut}: {err}");
        assert!(err.to_string().contains("cut.png"), "{err}");
    }
}

#[test]
fn exif_orientation_can_be_ignored() {
    // tests/data/jpeg_exif6.jpg carries Orientation 6; cv2 (tests/data/jpeg_exif6.bgr, 37×29)
    // rotates it 90° clockwise: out[y][x] = stored[H − 1 − x][y] for the stored 29×37 image.
    let dir = data_dir();
    let bytes = std::fs::read(dir.join("jpeg_exif6.jpg")).unwrap();
    let options = DecodeOptions {
        apply_exif_orientation: false,
        ..DecodeOptions::default()
    };
    let stored = decode_bytes_with(&bytes, "exif6.jpg", &options).unwrap();
    assert_eq!((stored.height, stored.width), (29, 37));
    let cv2 = std::fs::read(dir.join("jpeg_exif6.bgr")).unwrap();
    for y in 0..37 {
        for x in 0..29 {
            let s = ((29 - 1 - x) * 37 + y) * 3;
            let o = (y * 29 + x) * 3;
            assert_eq!(&cv2[o..o + 3], &stored.data[s..s + 3], "({y}, {x})");
        }
    }
}

#[test]
fn net_input_refuses_bad_images() {
    let bad = ImageBgr {
        height: 2,
        width: 2,
        data: vec![0; 11],
    };
    assert!(matches!(
        net_input(&bad),
        Err(Error::InconsistentImage { .. })
    ));
    // 1×2001: s = 1000/2001 (clamp), H′ = rint(0.49975) = 0: cv2.resize would assert.
    let strip = ImageBgr {
        height: 1,
        width: 2001,
        data: vec![0; 2001 * 3],
    };
    let err = net_input(&strip).unwrap_err();
    assert!(
        matches!(
            err,
            Error::EmptyResize {
                out_height: 0,
                out_width: 1000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_fifo_named_jpg_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.jpg");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // Opened for a blocking read, a FIFO without a writer would hang this test.
    let err = decode_file(&fifo).unwrap_err();
    assert!(matches!(err, Error::NotAFile { .. }), "{err}");
    assert!(err.to_string().contains("FIFO"), "{err}");
}

#[test]
fn a_device_named_jpg_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero.jpg");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    let err = decode_file(&zero).unwrap_err();
    assert!(err.to_string().contains("a device"), "{err}");
}

#[test]
fn a_3_gb_file_named_jpg_is_refused_before_it_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.jpg");
    // Sparse: takes no disk space; reading it would take 3 GB of memory.
    std::fs::File::create(&big)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let err = decode_file(&big).unwrap_err();
    assert!(
        matches!(err, Error::FileTooLarge { bytes, max_bytes, .. }
            if bytes == 3 << 30 && max_bytes == butd_preprocess::DEFAULT_MAX_FILE_BYTES),
        "{err}"
    );
    assert!(err.to_string().contains("big.jpg"), "{err}");
}
