//! The resize of §1.4/§1.5 on small synthetic images: against `cv2.resize` outputs (tests/data,
//! written by make_fixtures.py with IPP off) and against values derived by hand from the formulas.

use std::path::PathBuf;

use butd_preprocess::{cv2_resize_f32, ImageF32};

fn read_f32(path: PathBuf) -> Vec<f32> {
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// A 3-channel image whose channels all hold `values` (row-major, `width` per row).
fn gray(width: usize, values: &[f32]) -> ImageF32 {
    ImageF32 {
        height: values.len() / width,
        width,
        data: values.iter().flat_map(|&v| [v; 3]).collect(),
    }
}

/// Channel 0 of every pixel, row by row.
fn channel0(img: &ImageF32) -> Vec<f32> {
    img.data.iter().step_by(3).copied().collect()
}

#[test]
fn equals_cv2_resize_on_every_fixture() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let manifest = std::fs::read_to_string(dir.join("cv2_resize.tsv")).unwrap();
    let mut checked = 0;
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        let n = f[0];
        let (h, w): (usize, usize) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        let scale: f64 = f[3].parse().unwrap();
        let (oh, ow): (usize, usize) = (f[4].parse().unwrap(), f[5].parse().unwrap());
        let src = ImageF32 {
            height: h,
            width: w,
            data: read_f32(dir.join(format!("resize_{n}.in.f32"))),
        };
        let expected = read_f32(dir.join(format!("resize_{n}.out.f32")));
        let out = cv2_resize_f32(&src, scale).unwrap();
        assert_eq!((out.height, out.width), (oh, ow), "case {n} ({})", f[6]);
        let differing = out
            .data
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(
            differing,
            0,
            "case {n} ({}): {differing} of {} values differ",
            f[6],
            expected.len()
        );
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn upscale_x2_borders_by_hand() {
    // §1.5 with s = 2 (inverse 0.5) on 2×3. Columns: fx = (d + 0.5)·0.5 − 0.5 = −0.25, 0.25, 0.75,
    // 1.25, 1.75, 2.25 → (sx, a1) = (0, 0) left clamp, (0, .25), (0, .75), (1, .25), (1, .75), then
    // sx + 1 ≥ 3: copy of column 2. Rows: fy = −0.25 → rows (0, 0) with b1 = .75; 0.25 → (0, 1),
    // .25; 0.75 → (0, 1), .75; 1.25 → rows (1, 1) (clamped), .25. All products are exact here.
    let img = gray(3, &[0.0, 4.0, 8.0, 16.0, 20.0, 24.0]);
    let out = cv2_resize_f32(&img, 2.0).unwrap();
    assert_eq!((out.height, out.width), (4, 6));
    let h0 = [0.0, 1.0, 3.0, 5.0, 7.0, 8.0]; // horizontal pass of row 0
    let h1 = [16.0, 17.0, 19.0, 21.0, 23.0, 24.0]; // of row 1
    let expected: Vec<f32> = [
        (0.25, 0.75, &h0, &h0),
        (0.75, 0.25, &h0, &h1),
        (0.25, 0.75, &h0, &h1),
        (0.75, 0.25, &h1, &h1),
    ]
    .iter()
    .flat_map(|&(b0, b1, r0, r1)| (0..6).map(move |x| r0[x] * b0 + r1[x] * b1))
    .collect();
    assert_eq!(channel0(&out), expected);
    assert_eq!(&expected[..6], &h0);
}

#[test]
#[allow(clippy::excessive_precision)] // exact f32 values, written out in full
fn source_coordinate_is_rounded_to_f32_first() {
    // §1.5, 1×1100 by 1000/1100 (retina_wide's scale): output column 500 maps to
    // 500.5·1.1 − 0.5 = 550.05 in f64, rounded to f32 550.04998779296875, so the weight of column
    // 551 is 0.04998779296875, not 0.05 (IPP's variant). Vertically the one row mixes with itself:
    // fy = f32(0.5·1.1 − 0.5) = f32(0.05) (from the f64 0.050000000000000044), weights 1 − fy, fy.
    let row: Vec<f32> = (0..1100)
        .map(|x| if x == 551 { 1000.0 } else { 0.0 })
        .collect();
    let out = cv2_resize_f32(&gray(1100, &row), 1000.0 / 1100.0).unwrap();
    assert_eq!((out.height, out.width), (1, 1000));
    let a1 = 0.049_987_792_968_75_f32;
    let h = 0.0f32 * (1.0 - a1) + 1000.0f32 * a1;
    let fy = 0.050_000_000_000_000_044_f64 as f32;
    let expected = h * (1.0 - fy) + h * fy;
    assert_eq!(channel0(&out)[500].to_bits(), expected.to_bits());
    let ipp_like = 1000.0f32 * 0.05 * (1.0 - fy) + 1000.0f32 * 0.05 * fy;
    assert_ne!(expected, ipp_like, "the test must tell the two modes apart");
}

#[test]
fn vertical_border_is_arithmetic_not_a_copy() {
    // §1.5: at the top border both taps read row 0 and the output is R·b0 + R·b1, which can be
    // 1 ulp off R. ×3 on a 1×1 image: every row and column maps to the one pixel; columns copy it
    // (sx + 1 ≥ W), rows compute R·(1 − fy′) + R·fy′ with fy′ the f32 fraction of
    // f32((dy + 0.5)/3 − 0.5).
    let fraction = |dy: usize| {
        let fy = ((dy as f64 + 0.5) * (1.0 / 3.0) - 0.5) as f32;
        fy - fy.floor()
    };
    // Find a value where the quirk shows for row 0, so the test can tell copy from arithmetic.
    let b1 = fraction(0);
    let r = (1..1000)
        .map(|i| i as f32 * 0.173)
        .find(|&r| r * (1.0 - b1) + r * b1 != r)
        .expect("some value is not reproduced exactly");
    let out = cv2_resize_f32(&gray(1, &[r]), 3.0).unwrap();
    assert_eq!((out.height, out.width), (3, 3));
    for dy in 0..3 {
        let b1 = fraction(dy);
        let expected = r * (1.0 - b1) + r * b1;
        assert!(
            channel0(&out)[dy * 3..dy * 3 + 3]
                .iter()
                .all(|v| v.to_bits() == expected.to_bits()),
            "row {dy}"
        );
    }
    assert_ne!(channel0(&out)[0], r);
}

#[test]
fn half_scale_area_path_by_hand() {
    // §1.5, s = 0.5 on 3×7: output rint(1.5) = 2 rows, rint(3.5) = 4 columns.
    // Row 0 (source rows 0, 1), columns 0–2: complete blocks (((S00 + S01) + S10) + S11)·0.25,
    // summed in that order: with S00 = 1e8, S01 = 1, S10 = −1e8, S11 = 1 that is
    // ((1e8 + 1) − 1e8) + 1 = (1e8 − 1e8) + 1 = 1 → 0.25 (pairwise summation would give 0).
    // Column 3: source column 6 only, count 2: (S[0][6] + S[1][6]) / 2.
    // Row 1 (source row 2 only): every pixel sums what exists: (S[2][2x] + S[2][2x+1]) / 2,
    // and column 3: S[2][6] / 1.
    let big = 1.0e8f32;
    let rows = [
        [big, 1.0, big, 1.0, 2.0, 6.0, 10.0],
        [-big, 1.0, -big, 1.0, 4.0, 8.0, 3.0],
        [5.0, 7.0, 0.5, 0.25, -3.0, -4.0, 9.0],
    ];
    let values: Vec<f32> = rows.iter().flatten().copied().collect();
    let out = cv2_resize_f32(&gray(7, &values), 0.5).unwrap();
    assert_eq!((out.height, out.width), (2, 4));
    let expected = [
        0.25,
        0.25,
        (2.0 + 6.0 + 4.0 + 8.0) * 0.25,
        (10.0 + 3.0) / 2.0,
        (5.0 + 7.0) / 2.0,
        (0.5 + 0.25) / 2.0,
        (-3.0 - 4.0) / 2.0,
        9.0,
    ];
    assert_eq!(channel0(&out), expected);
}

#[test]
fn empty_output_is_an_error_like_cv2() {
    // 1×5 at 0.5 → rint(0.5) = 0 rows; cv2.resize asserts !dsize.empty().
    let err = cv2_resize_f32(&gray(5, &[1.0; 5]), 0.5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty 0×2"), "{err}");
    assert!(cv2_resize_f32(&gray(5, &[1.0; 5]), f64::NAN).is_err());
    let bad = ImageF32 {
        height: 2,
        width: 2,
        data: vec![0.0; 5],
    };
    assert!(cv2_resize_f32(&bad, 2.0)
        .unwrap_err()
        .to_string()
        .contains("does not match"));
}
