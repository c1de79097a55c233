//! Strictness: a malformed mapping fails with the rule's name and its line, one case each, on
//! a tiny in-memory caffemodel. Expected lines are found in the test's own TOML text.

mod common;

use butd_caffe::CaffeModel;
use butd_mapping::{
    Error, FloatDtype, Inventory, Manifest, Mapping, Plan, ProblemKind, WriteOptions,
};
use safetensors::SafeTensors;

const BASE: &str = r#"
[captures]
param = { "0" = "weight", "1" = "bias" }

[rule.conv]
from = "conv[{param}]"
to = "conv.{param}"

[rule.norm_mean]
from = "bn[0]"
to = "norm.running_mean"
do = [{ bn_factor = "bn[2]" }]

[rule.head]
from = "head[{param}]"
to = "head.{param}"
do = [
  { move = { dim = 0, from = 0, to = -1 } },
]

[rule.counter]
to = "norm.num_batches_tracked"
const = 0
dtype = "int64"

[ignore]
"bn[1]" = "the variance is not needed here"
extra = "no counterpart in the target"
"#;

const MANIFEST: &str = r#"{"keys": [
  {"name": "conv.weight", "shape": [3, 2], "dtype": "float32"},
  {"name": "conv.bias", "shape": [3], "dtype": "float32"},
  {"name": "norm.running_mean", "shape": [3], "dtype": "float32"},
  {"name": "norm.num_batches_tracked", "shape": [], "dtype": "int64"},
  {"name": "head.weight", "shape": [4, 2], "dtype": "float32"},
  {"name": "head.bias", "shape": [4], "dtype": "float32"}
]}"#;

fn model() -> CaffeModel {
    let seq = |n: usize, base: f32| (0..n).map(|i| base + i as f32).collect::<Vec<f32>>();
    common::tiny_model(&[
        ("data", "Input", vec![]),
        (
            "conv",
            "Convolution",
            vec![(vec![3, 2], seq(6, 0.5)), (vec![3], seq(3, -1.0))],
        ),
        (
            "bn",
            "BatchNorm",
            vec![
                (vec![3], vec![1.0, 2.0, 0.7]),
                (vec![3], seq(3, 1.0)),
                (vec![1], vec![3.0]),
            ],
        ),
        (
            "head",
            "InnerProduct",
            vec![(vec![4, 2], seq(8, 10.0)), (vec![4], seq(4, 100.0))],
        ),
        ("extra", "InnerProduct", vec![(vec![5], seq(5, 0.0))]),
    ])
}

fn manifest(text: &str) -> Manifest {
    Manifest::from_json(text, "tiny.manifest.json").unwrap()
}

fn parse(text: &str) -> Result<Mapping, Error> {
    Mapping::from_str_in(text, "tiny.toml", std::path::Path::new("."))
}

fn plan_with(text: &str, manifest_text: &str) -> Plan {
    let mapping = parse(text).unwrap();
    Plan::new(&mapping, &Inventory::of(&model()), &manifest(manifest_text))
}

/// 1-based line of the first occurrence of `needle` in `text`.
fn line_of(text: &str, needle: &str) -> usize {
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in the test mapping"));
    text[..at].matches('\n').count() + 1
}

/// The single problem of `kind`, checked to name `rule` at `line`; returns its message.
fn only_problem(plan: &Plan, kind: ProblemKind, rule: Option<&str>, line: Option<usize>) -> String {
    assert_eq!(plan.problems.len(), 1, "{:#?}", plan.problems);
    let p = &plan.problems[0];
    assert_eq!(p.kind, kind, "{p}");
    assert_eq!(p.rule.as_deref(), rule, "{p}");
    assert_eq!(p.line, line, "{p}");
    // The rendered message carries both, as the CLI prints it.
    let shown = plan.check().unwrap_err().to_string();
    if let (Some(r), Some(l)) = (rule, line) {
        assert!(shown.contains(&format!("line {l}: rule `{r}`")), "{shown}");
    }
    p.message.clone()
}

#[test]
fn base_mapping_is_clean_and_writes_what_it_says() {
    let caffe = model();
    let mapping = parse(BASE).unwrap();
    let plan = Plan::new(&mapping, &Inventory::of(&caffe), &manifest(MANIFEST));
    assert!(plan.problems.is_empty(), "{:#?}", plan.problems);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tiny.safetensors");
    plan.write_safetensors(&mapping, &caffe, &out, &WriteOptions::default())
        .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    assert_eq!(f32s("conv.weight"), [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]);
    let sf = 1.0f32 / 3.0;
    assert_eq!(f32s("norm.running_mean"), [1.0 * sf, 2.0 * sf, 0.7 * sf]);
    assert_eq!(
        f32s("head.weight"),
        [12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 10.0, 11.0]
    );
    assert_eq!(f32s("head.bias"), [101.0, 102.0, 103.0, 100.0]);
    assert_eq!(
        st.tensor("norm.num_batches_tracked").unwrap().data(),
        0i64.to_le_bytes()
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers,
        ["tiny.safetensors"],
        "no temporary file is left behind"
    );
}

#[test]
fn unknown_transform_names_rule_and_line() {
    let text = BASE.replace(
        "{ move = { dim = 0, from = 0, to = -1 } }",
        "{ transpose = { dim = 0 } }",
    );
    let Err(Error::Mapping { line, message, .. }) = parse(&text) else {
        panic!("accepted an unknown transform")
    };
    assert_eq!(line, line_of(&text, "transpose"));
    assert!(
        message.contains("rule `head`") && message.contains("unknown transform `transpose`"),
        "{message}"
    );
}

#[test]
fn unknown_field_names_rule_and_line() {
    let text = BASE.replace(
        "to = \"conv.{param}\"",
        "to = \"conv.{param}\"\nform = \"x\"",
    );
    let Err(Error::Mapping { line, message, .. }) = parse(&text) else {
        panic!("accepted a typo")
    };
    assert_eq!(line, line_of(&text, "form ="));
    assert!(
        message.contains("rule `conv`") && message.contains("unknown field `form`"),
        "{message}"
    );
}

#[test]
fn missing_blob_in_from_names_rule_and_line() {
    let text = BASE.replace("from = \"conv[{param}]\"", "from = \"conv2[{param}]\"");
    let plan = plan_with(
        &text,
        &MANIFEST
            .replace("conv.weight", "gone")
            .replace("conv.bias", "gone2"),
    );
    // conv's blobs then go unused and the target keys unproduced: the rule problem comes first.
    let p = &plan.problems[0];
    assert_eq!(
        (p.kind, p.rule.as_deref(), p.line),
        (
            ProblemKind::NoMatch,
            Some("conv"),
            Some(line_of(&text, "[rule.conv]"))
        )
    );
    assert!(p.message.contains("conv2[{param}]"), "{p}");
}

#[test]
fn missing_blob_in_a_transform_names_rule_and_line() {
    let text = BASE.replace("bn_factor = \"bn[2]\"", "bn_factor = \"bn[3]\"");
    let plan = plan_with(&text, MANIFEST);
    let kinds: Vec<_> = plan.problems.iter().map(|p| p.kind).collect();
    // bn[2] is then read by no one, and running_mean is not produced.
    assert_eq!(
        kinds,
        [
            ProblemKind::MissingBlob,
            ProblemKind::Unused,
            ProblemKind::NotProduced
        ],
        "{:#?}",
        plan.problems
    );
    let p = &plan.problems[0];
    assert_eq!(
        (p.rule.as_deref(), p.line),
        (Some("norm_mean"), Some(line_of(&text, "bn_factor")))
    );
    assert!(p.message.contains("`bn[3]`, which does not exist"), "{p}");
}

#[test]
fn shape_mismatch_with_the_target_names_rule_and_line() {
    let m = MANIFEST.replace(
        r#""head.weight", "shape": [4, 2]"#,
        r#""head.weight", "shape": [2, 4]"#,
    );
    let plan = plan_with(BASE, &m);
    let msg = only_problem(
        &plan,
        ProblemKind::Shape,
        Some("head"),
        Some(line_of(BASE, "[rule.head]")),
    );
    assert!(msg.contains("[4, 2]") && msg.contains("[2, 4]"), "{msg}");
}

#[test]
fn transform_that_does_not_fit_names_rule_and_step_line() {
    let text = BASE.replace(
        "{ move = { dim = 0, from = 0, to = -1 } }",
        "{ slice = { dim = 1, start = 0, end = 3 } }",
    );
    let plan = plan_with(&text, MANIFEST);
    // head.bias [4] has no dim 1, head.weight [4, 2] no column 2: both are reported.
    assert!(plan
        .problems
        .iter()
        .all(|p| p.kind == ProblemKind::Shape || p.kind == ProblemKind::NotProduced));
    let p = plan
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::Shape)
        .unwrap();
    assert_eq!(
        (p.rule.as_deref(), p.line),
        (Some("head"), Some(line_of(&text, "{ slice")))
    );
}

#[test]
fn dtype_mismatch_names_rule_and_line() {
    let text = BASE.replace("dtype = \"int64\"\n", "");
    let plan = plan_with(&text, MANIFEST);
    let msg = only_problem(
        &plan,
        ProblemKind::Dtype,
        Some("counter"),
        Some(line_of(&text, "[rule.counter]")),
    );
    assert!(msg.contains("float32") && msg.contains("int64"), "{msg}");
}

#[test]
fn duplicate_target_names_both_rules() {
    let text = format!(
        "{BASE}\n[rule.twice]\nto = \"norm.num_batches_tracked\"\nconst = 1\ndtype = \"int64\"\n"
    );
    let plan = plan_with(&text, MANIFEST);
    let msg = only_problem(
        &plan,
        ProblemKind::Duplicate,
        Some("twice"),
        Some(line_of(&text, "[rule.twice]")),
    );
    assert!(
        msg.contains("rule `counter`")
            && msg.contains(&format!("line {}", line_of(&text, "[rule.counter]"))),
        "{msg}"
    );
}

#[test]
fn unused_blob_is_named() {
    let text = BASE.replace("extra = \"no counterpart in the target\"\n", "");
    let plan = plan_with(&text, MANIFEST);
    let msg = only_problem(&plan, ProblemKind::Unused, None, None);
    assert!(
        msg.contains("`extra[0]` [5]")
            && msg.contains("neither used by a rule nor listed in [ignore]"),
        "{msg}"
    );
}

#[test]
fn ignore_entries_must_match_and_must_not_cover_used_blobs() {
    let text = BASE.replace(
        "[ignore]\n",
        "[ignore]\nghost = \"left over\"\n\"conv[1]\" = \"oops\"\n",
    );
    let plan = plan_with(&text, MANIFEST);
    let kinds: Vec<_> = plan.problems.iter().map(|p| (p.kind, p.line)).collect();
    assert_eq!(
        kinds,
        [
            (ProblemKind::StaleIgnore, Some(line_of(&text, "ghost"))),
            (
                ProblemKind::UsedAndIgnored,
                Some(line_of(&text, "\"conv[1]\""))
            ),
        ]
    );
    assert!(
        plan.problems[1].message.contains("rule `conv`"),
        "{}",
        plan.problems[1]
    );
}

#[test]
fn keys_missing_from_either_side_are_reported() {
    let m = MANIFEST.replace(
        r#"{"name": "head.bias", "shape": [4], "dtype": "float32"}"#,
        r#"{"name": "head.scale", "shape": [4], "dtype": "float32"}"#,
    );
    let plan = plan_with(BASE, &m);
    let kinds: Vec<_> = plan
        .problems
        .iter()
        .map(|p| (p.kind, p.rule.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ProblemKind::NotProduced, None),
            (ProblemKind::NotInTarget, Some("head".to_string()))
        ]
    );
    assert_eq!(plan.missing.len(), 1);
}

#[test]
fn a_plan_with_problems_writes_nothing() {
    let caffe = model();
    let text = BASE.replace("extra = \"no counterpart in the target\"\n", "");
    let mapping = parse(&text).unwrap();
    let plan = Plan::new(&mapping, &Inventory::of(&caffe), &manifest(MANIFEST));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("keep.safetensors");
    std::fs::write(&out, b"previous").unwrap();
    let options = WriteOptions {
        float: FloatDtype::F32,
        metadata: vec![],
        ..WriteOptions::default()
    };
    let err = plan
        .write_safetensors(&mapping, &caffe, &out, &options)
        .unwrap_err();
    assert!(matches!(err, Error::Strict { .. }), "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"previous");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn syntax_and_reference_errors_carry_lines() {
    let cases = [
        (
            BASE.replace("to = \"head.{param}\"", "to = \"head.{parm}\""),
            "head.{parm}",
            "not captured",
        ),
        (
            BASE.replace("from = \"bn[0]\"", "from = \"bn[{idx}]\""),
            "bn[{idx}]",
            "not defined in [captures]",
        ),
        (
            BASE.replace("[rule.counter]", "[rule.counter]\nfrom = \"bn[2]\""),
            "const = 0",
            "either `from` or `const`",
        ),
        (BASE.replace("param = {", "param = {{"), "param = {{", ""),
    ];
    for (text, needle, message) in cases {
        let Err(Error::Mapping {
            line, message: got, ..
        }) = parse(&text)
        else {
            panic!("accepted: {needle}")
        };
        assert_eq!(line, line_of(&text, needle), "{got}");
        assert!(got.contains(message), "{got}");
    }
}

#[test]
fn the_digest_ignores_comments_and_layout_but_not_rules() {
    let dir = std::path::Path::new(".");
    let digest = |text: &str| {
        Mapping::from_str_in(text, "m.toml", dir)
            .unwrap()
            .digest()
            .to_string()
    };
    let base = digest(BASE);
    assert!(
        base.starts_with("fnv1a64:") && base.len() == "fnv1a64:".len() + 16,
        "{base}"
    );
    let commented = BASE.replace("[rule.conv]", "# a note\n\n[rule.conv]   # more");
    assert_eq!(digest(&commented), base);
    let described = format!("description = \"another text\"\n{BASE}");
    assert_eq!(digest(&described), base);
    let renamed = BASE.replace("to = \"conv.{param}\"", "to = \"conv2.{param}\"");
    assert_ne!(digest(&renamed), base);
}
