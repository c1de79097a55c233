//! `butd inspect MODEL.caffemodel`: the layers with parameters, their blob shapes and counts,
//! and totals.
//!
//! `--json` prints one object whose keys are listed in [`JSON_HELP`] (also shown by
//! `butd inspect --help`).
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use butd_caffe::{BlobDtype, CaffeModel, Format, Layer};
use comfy_table::{presets, CellAlignment, Table};
use serde::Serialize;

/// The `--json` output's keys. They are stable: add keys, never rename or remove them.
pub const JSON_HELP: &str = "Print JSON for machines: one object with keys \
`file`, `file_bytes`, `format` (\"v2\" | \"v1\"), `net_name` (string or null); \
`layers`: the listed layers (those with blobs; all with --all) in file order, each with \
`index` (position among all layers), `name`, `type` (\"\" for a V1 layer without a type), \
`bottom`, `top`, `offset` (byte offset in the file), `parameters`, and `blobs`, each with \
`index`, `shape` ([] for a 0-dimensional blob), `dtype` (\"f32\" | \"f64\"), `count`, `offset`; \
`totals` over all layers: `layers`, `layers_with_parameters`, `blobs`, `parameters`, \
`unused_butd_layers`, `parameters_in_unused_butd_layers` (layers the BUTD test net does not \
use: heatmap_*, fc_rel1, fc_subject, fc_object, rel_merge, rel_score).";

#[derive(clap::Args)]
pub struct Args {
    /// The .caffemodel to list
    pub model: PathBuf,
    /// Also list the layers without blobs
    #[arg(long)]
    pub all: bool,
    /// Print JSON for machines (see --help for its keys)
    #[arg(long, long_help = JSON_HELP)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let model = CaffeModel::open(&args.model).context("reading the model")?;
    let report = Report::new(&model, &args.model, args.all);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Layers present in the released BUTD caffemodel that the BUTD test net
/// (`faster_rcnn_end2end_final/test.prototxt`) does not use: Caffe only logs "Ignoring source
/// layer" for them (golden/SYNTHETIC.md §1). Matched by name, since a model file
/// cannot say which net will load it.
pub fn unused_by_butd_test_net(name: &str) -> bool {
    butd_synth::UNUSED_BY_TEST_NET.contains(&name)
}

#[derive(Serialize)]
struct Report {
    file: PathBuf,
    file_bytes: u64,
    format: &'static str,
    net_name: Option<String>,
    layers: Vec<LayerRow>,
    totals: Totals,
}

#[derive(Serialize)]
struct LayerRow {
    index: usize,
    name: String,
    #[serde(rename = "type")]
    kind: String,
    bottom: Vec<String>,
    top: Vec<String>,
    offset: u64,
    parameters: u64,
    blobs: Vec<BlobRow>,
}

#[derive(Serialize)]
struct BlobRow {
    index: usize,
    shape: Vec<usize>,
    dtype: &'static str,
    count: usize,
    offset: u64,
}

#[derive(Serialize)]
struct Totals {
    layers: usize,
    layers_with_parameters: usize,
    blobs: usize,
    parameters: u64,
    unused_butd_layers: usize,
    parameters_in_unused_butd_layers: u64,
}

impl Report {
    fn new(model: &CaffeModel, file: &std::path::Path, all: bool) -> Report {
        let layers = model.layers();
        let unused: Vec<&Layer> = layers
            .iter()
            .filter(|l| unused_by_butd_test_net(&l.name))
            .collect();
        let totals = Totals {
            layers: layers.len(),
            layers_with_parameters: layers.iter().filter(|l| !l.blobs.is_empty()).count(),
            blobs: layers.iter().map(|l| l.blobs.len()).sum(),
            parameters: layers.iter().map(Layer::param_count).sum(),
            unused_butd_layers: unused.len(),
            parameters_in_unused_butd_layers: unused.iter().map(|l| l.param_count()).sum(),
        };
        let rows = layers
            .iter()
            .enumerate()
            .filter(|(_, l)| all || !l.blobs.is_empty())
            .map(|(index, l)| LayerRow {
                index,
                name: l.name.clone(),
                kind: l.kind.clone(),
                bottom: l.bottom.clone(),
                top: l.top.clone(),
                offset: l.offset,
                parameters: l.param_count(),
                blobs: l
                    .blobs
                    .iter()
                    .enumerate()
                    .map(|(j, b)| BlobRow {
                        index: j,
                        shape: b.shape.clone(),
                        dtype: match b.dtype {
                            BlobDtype::F32 => "f32",
                            BlobDtype::F64 => "f64",
                        },
                        count: b.len(),
                        offset: b.offset,
                    })
                    .collect(),
            })
            .collect();
        Report {
            file: file.to_path_buf(),
            file_bytes: model.file_len(),
            format: match model.format() {
                Format::V2 => "v2",
                Format::V1 => "v1",
            },
            net_name: model.net_name().map(str::to_owned),
            layers: rows,
            totals,
        }
    }
}

fn render_table(r: &Report) -> String {
    let kind = if r.format == "v1" {
        "legacy V1LayerParameter"
    } else {
        "LayerParameter"
    };
    let name = r.net_name.as_deref().unwrap_or("");
    let mut lines = vec![format!(
        "{}: {} bytes, format {} ({kind}), net {name:?}",
        r.file.display(),
        thousands(r.file_bytes),
        r.format
    )];
    let mut table = Table::new();
    table.load_preset(presets::UTF8_FULL_CONDENSED);
    table.set_header(["#", "layer", "type", "blobs (shape, dtype)", "parameters"]);
    for l in &r.layers {
        let shapes: Vec<String> = l
            .blobs
            .iter()
            .map(|b| format!("{} {}", shape_text(&b.shape), b.dtype))
            .collect();
        table.add_row([
            l.index.to_string(),
            l.name.clone(),
            l.kind.clone(),
            if shapes.is_empty() {
                "-".to_owned()
            } else {
                shapes.join(", ")
            },
            thousands(l.parameters),
        ]);
    }
    for col in [0, 4] {
        if let Some(c) = table.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    lines.push(table.to_string());
    let t = &r.totals;
    lines.push(format!(
        "layers: {} ({} with parameters)",
        thousands(t.layers as u64),
        thousands(t.layers_with_parameters as u64)
    ));
    lines.push(format!("blobs: {}", thousands(t.blobs as u64)));
    lines.push(format!("parameters: {}", thousands(t.parameters)));
    if t.unused_butd_layers > 0 {
        let unused = t.parameters_in_unused_butd_layers;
        lines.push(format!(
            "  in layers the BUTD test net uses: {}",
            thousands(t.parameters - unused)
        ));
        lines.push(format!(
            "  in {} layers the BUTD test net does not use (heatmap_*, fc_rel1, fc_subject, fc_object, rel_merge, rel_score): {}",
            t.unused_butd_layers,
            thousands(unused)
        ));
    }
    lines.join("\n") + "\n"
}

/// `[64, 3, 7, 7]` → "[64,3,7,7]"; a 0-dimensional blob → "[] (scalar)".
fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    if dims.is_empty() {
        "[] (scalar)".to_owned()
    } else {
        format!("[{}]", dims.join(","))
    }
}

/// 67644796 → "67,644,796".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_the_synthetic_model_as_synthetic_md_says() {
        let path = butd_synth::cached(butd_synth::Variant::V2_FLOAT).unwrap();
        let model = CaffeModel::open(&path).unwrap();
        let report = Report::new(&model, &path, false);
        let t = &report.totals;
        assert_eq!(
            (t.layers, t.layers_with_parameters, t.blobs),
            (478, 330, 658)
        );
        assert_eq!(
            (
                t.parameters,
                t.unused_butd_layers,
                t.parameters_in_unused_butd_layers
            ),
            (67_644_796, 10, 2_085_174)
        );
        assert_eq!(report.layers.len(), 330);
        let scale = report
            .layers
            .iter()
            .find(|l| l.name == "heatmap_scale")
            .unwrap();
        assert_eq!(
            (
                scale.blobs.len(),
                scale.blobs[0].shape.len(),
                scale.blobs[0].count
            ),
            (1, 0, 1)
        );
        let bn: Vec<_> = report
            .layers
            .iter()
            .filter(|l| l.kind == "BatchNorm")
            .collect();
        assert_eq!(bn.len(), 104);
        assert!(bn.iter().all(|l| l.blobs.len() == 3));

        let text = render_table(&report);
        for line in [
            "layers: 478 (330 with parameters)",
            "blobs: 658",
            "parameters: 67,644,796",
            "in layers the BUTD test net uses: 65,559,622",
            "in 10 layers the BUTD test net does not use",
            "): 2,085,174",
            "[] (scalar) f32",
        ] {
            assert!(text.contains(line), "table lacks {line:?}");
        }
        assert_eq!(Report::new(&model, &path, true).layers.len(), 478);
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        assert_eq!(json["totals"]["parameters"], 67_644_796);
        assert_eq!(
            json["layers"][0]["blobs"][0]["shape"],
            serde_json::json!([64, 3, 7, 7])
        );
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(67_644_796), "67,644,796");
    }

    #[test]
    fn unused_layers_are_the_ten_after_attr_prob_of_synthetic_md() {
        // The synthetic model has the released architecture (golden/SYNTHETIC.md §1).
        let layers = butd_synth::layers();
        let attr_prob = layers.iter().position(|l| l.name == "attr_prob").unwrap();
        let unused: Vec<usize> = (0..layers.len())
            .filter(|&i| unused_by_butd_test_net(&layers[i].name))
            .collect();
        assert_eq!(unused, (attr_prob + 1..attr_prob + 11).collect::<Vec<_>>());
        for name in ["conv1", "cls_score", "fc_attr", "rpn_conv/3x3"] {
            assert!(!unused_by_butd_test_net(name), "{name}");
        }
    }
}
