//! Decoder variants the golden set lacks (subsamplings, progressive, restart markers, gray, CMYK,
//! EXIF orientation, PNG bit depths and transparency), each compared with what the real
//! `cv2.imread` returned for it (`tests/data/make_fixtures.py` wrote both; see `cv2_imread.tsv`).

use std::path::PathBuf;

use butd_preprocess::decode_file;

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

#[test]
fn decode_equals_cv2_imread_on_every_fixture() {
    let manifest = std::fs::read_to_string(data_dir().join("cv2_imread.tsv")).unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for line in manifest.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (file, height, width, what) = (
            fields[0],
            fields[1].parse::<usize>().unwrap(),
            fields[2].parse::<usize>().unwrap(),
            fields[3],
        );
        let stem = file.rsplit_once('.').unwrap().0;
        let expected = std::fs::read(data_dir().join(format!("{stem}.bgr"))).unwrap();
        assert_eq!(
            expected.len(),
            height * width * 3,
            "{file}: manifest and .bgr disagree"
        );
        let img = decode_file(&data_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
        if (img.height, img.width) != (height, width) {
            failures.push(format!(
                "{file} ({what}): {}×{} vs cv2 {height}×{width}",
                img.height, img.width
            ));
            continue;
        }
        let differing = img
            .data
            .iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .count();
        if differing != 0 {
            failures.push(format!(
                "{file} ({what}): {differing} of {} bytes differ",
                expected.len()
            ));
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(checked, 17);
}
