//! `butd show`: a record's kept boxes, readable: drawn on the image with "attribute object
//! score" labels (`-o PICTURE.png`, butd-show), or listed as a table (default) or JSON.
//! Class names come from the Visual Genome vocabulary shipped in `vocab/` (or `--vocab DIR`).
//! `--tensors` lists what the record holds instead: each tensor's dtype, shape and role (whose
//! rows are final regions, rois, or neither), as the record contract (butd-record) says.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use butd_formats::{IdPolicy, Record};
use butd_record::tensors::{role_of, PIPELINE_ORDER};
use butd_show::Detection;
use butd_vocab::Vocab;
use comfy_table::{presets, CellAlignment, Table};

#[derive(clap::Args)]
pub struct Args {
    /// A record (`<id>.safetensors`, from `butd extract` or a golden file)
    record: PathBuf,
    /// The image the record was extracted from (needed for -o)
    #[arg(long)]
    image: Option<PathBuf>,
    /// Draw the boxes and labels on the image into this PNG
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Print the detections as JSON (one object per kept box) instead of a table
    #[arg(long)]
    json: bool,
    /// List the record's tensors (name, dtype, shape, role: final, rois or dense) instead of
    /// its detections; with --json as JSON
    #[arg(long, conflicts_with_all = ["image", "out", "vocab"])]
    tensors: bool,
    /// A folder with the release's objects_vocab.txt (and attributes_vocab.txt) to name classes
    #[arg(long, value_name = "DIR")]
    vocab: Option<PathBuf>,
}

/// The kept boxes of `record` with their labels.
fn detections(record: &Record) -> anyhow::Result<Vec<Detection>> {
    let (Some(objects), Some(oconf), Some(attrs), Some(aconf)) = (
        &record.objects_id,
        &record.objects_conf,
        &record.attrs_id,
        &record.attrs_conf,
    ) else {
        bail!("the record has no objects_id/attrs_id labels to show");
    };
    Ok((0..record.boxes.len())
        .map(|i| Detection {
            bbox: record.boxes[i],
            object: objects[i],
            object_conf: oconf[i],
            attribute: attrs[i],
            attribute_conf: aconf[i],
        })
        .collect())
}

fn table(dets: &[Detection], vocab: &Vocab) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "#",
        "box (x1, y1, x2, y2)",
        "object",
        "score",
        "attribute",
        "score",
    ]);
    for (i, d) in dets.iter().enumerate() {
        let [x1, y1, x2, y2] = d.bbox;
        t.add_row([
            i.to_string(),
            format!("{x1:.1}, {y1:.1}, {x2:.1}, {y2:.1}"),
            format!("{} ({})", vocab.object(d.object), d.object),
            format!("{:.3}", d.object_conf),
            format!("{} ({})", vocab.attribute(d.attribute), d.attribute),
            format!("{:.3}", d.attribute_conf),
        ]);
    }
    for col in [0, 3, 5] {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

fn json(dets: &[Detection], vocab: &Vocab) -> serde_json::Value {
    dets.iter()
        .map(|d| {
            serde_json::json!({
                "box": d.bbox,
                "object_id": d.object,
                "object": vocab.object(d.object),
                "object_conf": d.object_conf,
                "attribute_id": d.attribute,
                "attribute": vocab.attribute(d.attribute),
                "attribute_conf": d.attribute_conf,
            })
        })
        .collect()
}

/// Each tensor of the record at `path`: name, dtype, shape and role, in pipeline order (names
/// the contract does not list last, by name).
fn tensor_list(path: &std::path::Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let record = butd_formats::tensors::Record::open(path)?;
    let position = |name: &str| PIPELINE_ORDER.iter().position(|n| *n == name);
    let mut names: Vec<&String> = record.tensors.keys().collect();
    names.sort_by_key(|n| (position(n).unwrap_or(usize::MAX), n.as_str()));
    Ok(names
        .into_iter()
        .map(|name| {
            let t = &record.tensors[name];
            serde_json::json!({
                "name": name,
                "dtype": butd_formats::tensors::dtype_name(t.dtype),
                "shape": t.shape,
                "role": role_of(name),
            })
        })
        .collect())
}

fn show_tensors(args: &Args) -> anyhow::Result<ExitCode> {
    let list = tensor_list(&args.record)?;
    if args.json {
        print(&serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(["tensor", "dtype", "shape", "role"]);
    for row in &list {
        let shape: Vec<String> = row["shape"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| d.to_string())
            .collect();
        t.add_row([
            row["name"].as_str().unwrap_or_default().to_string(),
            row["dtype"].as_str().unwrap_or_default().to_string(),
            shape.join("×"),
            row["role"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    print(&format!(
        "{}: {} tensors\n{t}",
        args.record.display(),
        list.len()
    ))?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.tensors {
        return show_tensors(&args);
    }
    let vocab = match &args.vocab {
        Some(dir) => Vocab::from_dir(dir).map_err(anyhow::Error::msg)?,
        None => Vocab::builtin(),
    };
    let record = Record::read_safetensors(&args.record, &IdPolicy::Stem)?;
    let dets = detections(&record).with_context(|| args.record.display().to_string())?;
    if let Some(out) = &args.out {
        let Some(image) = &args.image else {
            bail!("-o draws on the image: pass it with --image (the one the record was extracted from)");
        };
        let img = butd_preprocess::decode_file(image)?;
        if (img.width, img.height) != (record.image_w, record.image_h) {
            bail!(
                "{} is {}×{}, but the record was extracted from a {}×{} image",
                image.display(),
                img.width,
                img.height,
                record.image_w,
                record.image_h
            );
        }
        butd_show::draw(&img, &dets, &vocab)
            .write_png(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("{}: {} boxes drawn", out.display(), dets.len());
    } else if args.json {
        print(&serde_json::to_string_pretty(&json(&dets, &vocab))?)?;
    } else {
        let title = format!("{}: {} boxes", args.record.display(), dets.len());
        print(&format!("{title}\n{}", table(&dets, &vocab)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `text` and a newline on stdout; a reader that stopped early (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{text}") {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden(stem: &str) -> Record {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden");
        Record::read_safetensors(&dir.join(format!("{stem}.safetensors")), &IdPolicy::Stem).unwrap()
    }

    #[test]
    fn a_golden_records_detections_are_named_by_the_vocabulary() {
        let record = golden("coffee");
        let dets = detections(&record).unwrap();
        assert_eq!(dets.len(), 32);
        let rows = json(&dets, &Vocab::builtin());
        // coffee's first kept box is class 66 of the synthetic heads: "tea kettle" (line 67).
        assert_eq!(rows[0]["object_id"], 66);
        assert_eq!(rows[0]["object"], "tea kettle");
        let text = table(&dets, &Vocab::builtin()).to_string();
        assert!(text.contains("tea kettle (66)"), "{text}");
    }

    #[test]
    fn a_golden_records_tensors_are_listed_with_their_roles_in_pipeline_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../golden");
        let list = tensor_list(&dir.join("coffee.safetensors")).unwrap();
        let role = |name: &str| {
            let row = list.iter().find(|t| t["name"] == name).expect(name);
            row["role"].as_str().unwrap().to_string()
        };
        assert_eq!(role("features"), "final");
        assert_eq!(role("cls_prob"), "rois");
        assert_eq!(role("im_info"), "dense");
        let names: Vec<&str> = list.iter().map(|t| t["name"].as_str().unwrap()).collect();
        let rois = names.iter().position(|n| *n == "rois").unwrap();
        let boxes = names.iter().position(|n| *n == "boxes").unwrap();
        assert!(rois < boxes, "{names:?}");
        let features = list.iter().find(|t| t["name"] == "features").unwrap();
        assert_eq!(features["shape"][1], 2048);
        assert_eq!(features["dtype"], "F32");
    }
}
