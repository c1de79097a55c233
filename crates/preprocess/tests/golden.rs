//! Parity with the real `cv2.imread` + `_get_image_blob` (golden/, OpenCV 4.11, IPP off).

mod common;

use butd_preprocess::{decode_file, net_input};
use common::{golden_dir, golden_images, read_tensor};

#[test]
fn golden_set_is_complete() {
    // The brief's coverage: 4 JPEGs (one 512×33) and gray, RGBA and RGB PNGs.
    let images = golden_images();
    let jpegs = images.iter().filter(|(_, f)| f.ends_with(".jpg")).count();
    assert_eq!(jpegs, 4, "{images:?}");
    assert_eq!(images.len(), 9, "{images:?}");
}

#[test]
fn decode_equals_cv2_imread_on_every_golden_image() {
    let mut failures = Vec::new();
    for (stem, file) in golden_images() {
        let path = golden_dir().join("images").join(&file);
        let img = decode_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let golden = read_tensor(&stem, "image_bgr").expect("every golden file has image_bgr");
        assert_eq!(golden.dtype, "U8");
        assert_eq!(
            golden.shape,
            vec![img.height, img.width, 3],
            "{file}: shape"
        );
        let differing = img
            .data
            .iter()
            .zip(&golden.bytes)
            .filter(|(a, b)| a != b)
            .count();
        if differing != 0 {
            failures.push(format!(
                "{file}: {differing} of {} bytes differ",
                golden.bytes.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn im_info_equals_golden_for_every_image() {
    for (stem, file) in golden_images() {
        let img = decode_file(&golden_dir().join("images").join(&file)).unwrap();
        let input = net_input(&img).unwrap();
        let golden = read_tensor(&stem, "im_info")
            .expect("every golden file has im_info")
            .f32s();
        let ours = input.im_info();
        assert_eq!(
            ours.map(f32::to_bits).to_vec(),
            golden.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{file}: im_info {ours:?} vs golden {golden:?}"
        );
        assert_eq!(input.data.len(), 3 * input.height * input.width);
    }
}

#[test]
fn net_input_equals_golden_data_bit_for_bit() {
    let mut checked = 0;
    for (stem, file) in golden_images() {
        let Some(golden) = read_tensor(&stem, "data") else {
            continue;
        };
        let img = decode_file(&golden_dir().join("images").join(&file)).unwrap();
        let input = net_input(&img).unwrap();
        assert_eq!(
            golden.shape,
            vec![1, 3, input.height, input.width],
            "{file}: shape"
        );
        let golden = golden.f32s();
        let differing: Vec<usize> = (0..golden.len())
            .filter(|&i| golden[i].to_bits() != input.data[i].to_bits())
            .collect();
        assert!(
            differing.is_empty(),
            "{file}: {} of {} values differ, first at {} ({} vs golden {})",
            differing.len(),
            golden.len(),
            differing[0],
            input.data[differing[0]],
            golden[differing[0]]
        );
        checked += 1;
    }
    // rocket_strip and astronaut_strip carry `data` (tier 1).
    assert_eq!(checked, 2);
}
