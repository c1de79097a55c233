//! `verify scores` on hand-made JSONL files; expected values computed by hand in the comments.
use std::path::Path;

use butd_scores::{compare_winoground, read_winoground_jsonl};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn six_examples_hand_computed() {
    let dir = tempfile::tempdir().unwrap();
    // text = s(c0,i0)>s(c1,i0) & s(c1,i1)>s(c0,i1); image = s(c0,i0)>s(c0,i1) & s(c1,i1)>s(c1,i0)
    //                                                         A: text image group
    let a = write(
        dir.path(),
        "a.jsonl",
        r#"
{"id": 1, "c0_i0": 0.9, "c0_i1": 0.1, "c1_i0": 0.2,  "c1_i1": 0.8}
{"id": 2, "c0_i0": 0.9, "c0_i1": 0.1, "c1_i0": 0.85, "c1_i1": 0.8, "note": "ignored"}
{"id": 3, "c0_i0": 0.3, "c0_i1": 0.6, "c1_i0": 0.4,  "c1_i1": 0.5}
{"id": 4, "c0_i0": 0.7, "c0_i1": 0.2, "c1_i0": 0.1,  "c1_i1": 0.6}
{"id": 5, "c0_i0": 0.5, "c0_i1": 0.4, "c1_i0": 0.6,  "c1_i1": 0.7}
{"id": 6, "c0_i0": 0.8, "c0_i1": 0.3, "c1_i0": 0.2,  "c1_i1": 0.9}
"#,
    );
    // A outcomes: 1 TTT, 2 TFF, 3 FFF, 4 TTT, 5 FTF, 6 TTT → text 4/6, image 4/6, group 3/6.
    let b = write(
        dir.path(),
        "b.jsonl",
        r#"{"id": "6", "c0_i0": 0.8, "c0_i1": 0.3, "c1_i0": 0.2, "c1_i1": 0.9}
{"id": "5", "c0_i0": 0.5, "c0_i1": 0.4, "c1_i0": 0.6, "c1_i1": 0.7}
{"id": "4", "c0_i0": 0.2, "c0_i1": 0.7, "c1_i0": 0.1, "c1_i1": 0.6}
{"id": "3", "c0_i0": 0.6, "c0_i1": 0.3, "c1_i0": 0.4, "c1_i1": 0.5}
{"id": "2", "c0_i0": 0.9, "c0_i1": 0.1, "c1_i0": 0.8, "c1_i1": 0.85}
{"id": "1", "c0_i0": 0.9, "c0_i1": 0.1, "c1_i0": 0.2, "c1_i1": 0.8}
"#,
    );
    // B outcomes: 1 TTT, 2 TTT, 3 TTT, 4 FFF, 5 FTF, 6 TTT → text 4/6, image 5/6, group 4/6.
    // Discordant (A only / B only): text {4} / {3}; image {4} / {2, 3}; group {4} / {2, 3}.
    // McNemar: text n=2, k=1: 2·(1+2)/4 > 1 → 1; image and group n=3, k=1: 2·(1+3)/8 = 1.
    let ra = read_winoground_jsonl(&a).unwrap();
    let rb = read_winoground_jsonl(&b).unwrap();
    let r = compare_winoground(&ra, &rb, &a, &b).unwrap();
    assert_eq!(r.examples, 6);
    let got: Vec<(&str, f64, f64, usize, usize, f64)> = r
        .metrics
        .iter()
        .map(|m| (m.metric.as_str(), m.a, m.b, m.a_only, m.b_only, m.mcnemar_p))
        .collect();
    assert_eq!(
        got,
        [
            ("text", 4.0 / 6.0, 4.0 / 6.0, 1, 1, 1.0),
            ("image", 4.0 / 6.0, 5.0 / 6.0, 1, 2, 1.0),
            ("group", 3.0 / 6.0, 4.0 / 6.0, 1, 2, 1.0),
        ]
    );
    assert!((r.metrics[1].diff - 1.0 / 6.0).abs() < 1e-15);
    assert_eq!(r.differing, ["2", "3", "4"]);
    assert!(!r.identical());
}

#[test]
fn one_sided_discordance_gives_a_small_p_value() {
    let dir = tempfile::tempdir().unwrap();
    let fail = r#""c0_i0": 0.1, "c0_i1": 0.9, "c1_i0": 0.9, "c1_i1": 0.1"#;
    let win = r#""c0_i0": 0.9, "c0_i1": 0.1, "c1_i0": 0.1, "c1_i1": 0.9"#;
    let a: String = (1..=8)
        .map(|i| format!("{{\"id\": \"x{i}\", {fail}}}\n"))
        .collect();
    let b: String = (1..=8)
        .map(|i| {
            format!(
                "{{\"id\": \"x{i}\", {}}}\n",
                if i <= 7 { win } else { fail }
            )
        })
        .collect();
    let (pa, pb) = (
        write(dir.path(), "a.jsonl", &a),
        write(dir.path(), "b.jsonl", &b),
    );
    let r = compare_winoground(
        &read_winoground_jsonl(&pa).unwrap(),
        &read_winoground_jsonl(&pb).unwrap(),
        &pa,
        &pb,
    )
    .unwrap();
    // 7 discordant pairs, all for B: p = 2 · 0.5^7 = 0.015625 for each metric.
    for m in &r.metrics {
        assert_eq!(
            (m.a, m.b, m.a_only, m.b_only),
            (0.0, 7.0 / 8.0, 0, 7),
            "{}",
            m.metric
        );
        assert!((m.mcnemar_p - 0.015625).abs() < 1e-15);
    }
    // Identical files: identical outcomes, p = 1.
    let same = compare_winoground(
        &read_winoground_jsonl(&pb).unwrap(),
        &read_winoground_jsonl(&pb).unwrap(),
        &pb,
        &pb,
    )
    .unwrap();
    assert!(same.identical());
    assert!(same
        .metrics
        .iter()
        .all(|m| m.mcnemar_p == 1.0 && m.diff == 0.0));
}

#[test]
fn malformed_input_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "bad.jsonl", "{\"id\": 1, \"c0_i0\": 1, \"c0_i1\": 0, \"c1_i0\": 0, \"c1_i1\": 1}\n\n{\"id\": 2, \"c0_i0\": 1}\n");
    let e = read_winoground_jsonl(&p).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl line 3") && e.contains("c0_i1"), "{e}");
    let p = write(dir.path(), "dup.jsonl", "{\"id\": 1, \"c0_i0\": 1, \"c0_i1\": 0, \"c1_i0\": 0, \"c1_i1\": 1}\n{\"id\": 1, \"c0_i0\": 1, \"c0_i1\": 0, \"c1_i0\": 0, \"c1_i1\": 1}\n");
    let e = read_winoground_jsonl(&p).unwrap_err().to_string();
    assert!(e.contains("line 2") && e.contains("twice"), "{e}");
    // Different id sets are an error, not a silent subset.
    let a = write(
        dir.path(),
        "a.jsonl",
        "{\"id\": 1, \"c0_i0\": 1, \"c0_i1\": 0, \"c1_i0\": 0, \"c1_i1\": 1}\n",
    );
    let b = write(
        dir.path(),
        "b.jsonl",
        "{\"id\": 2, \"c0_i0\": 1, \"c0_i1\": 0, \"c1_i0\": 0, \"c1_i1\": 1}\n",
    );
    let e = compare_winoground(
        &read_winoground_jsonl(&a).unwrap(),
        &read_winoground_jsonl(&b).unwrap(),
        &a,
        &b,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("missing from") && e.contains("b.jsonl"), "{e}");
}
