//! `butd export`: records → the files downstream models read (`docs/formats.md`
//! describes each as its consumer reads it). Reads every `*.safetensors` record of a
//! directory in file-name order, one at a time, and writes one output; records without
//! detections (Caffe's crash record, K = 0) are skipped with a warning.
//!
//! The image id comes from the record's own id (its file name, chosen by `butd extract`), never
//! from the image's file name. Before a writer sees a record it is checked
//! ([`Record::check_exportable`]: finite values, 2048 features, label ids in range, an id that
//! cannot leave the output), and two records giving one id stop the export.
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use butd_formats::{
    write_uniter_npz, ButdTsvWriter, FormatError, IdPolicy, LxmertTsvWriter, Record, UniterEntry,
    UniterLmdbWriter, UniterOptions, VqaHdf5Writer, VqaLayout,
};
use butd_record::{meta, record_state, RecordState};
use indicatif::{ProgressBar, ProgressStyle};

use super::ids::IdArgs;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// bottom-up-attention generate_tsv.py: image_id, image_w, image_h, num_boxes, boxes, features
    ButdTsv,
    /// LXMERT obj36 TSV: img_id, img_h, img_w, objects_id/conf, attrs_id/conf, num_boxes, boxes, features
    LxmertTsv,
    /// UNITER generate_npz.py: one <prefix><id>.npz per image (float16) in the directory OUT
    UniterNpz,
    /// UNITER convert_imgdir.py: the img_db LMDB OUT/<db_name> and OUT/nbb_*.json
    UniterLmdb,
    /// bottom-up-attention-vqa / ban-vqa HDF5 file OUT and OUT's <stem>_imgid2idx.pkl
    VqaHdf5,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Hdf5Layout {
    /// bottom-up-attention-vqa: (N, K, D) datasets, every image with the same K
    Fixed,
    /// ban-vqa: (total boxes, D) datasets plus pos_boxes (N, 2) int32
    Adaptive,
}

#[derive(clap::Args)]
pub struct Args {
    /// Directory of records (one <image>.safetensors per image), read in file-name order
    #[arg(long, value_name = "DIR")]
    records: PathBuf,
    #[arg(long, value_enum)]
    format: Format,
    /// Output file (TSV, HDF5) or directory (uniter-npz: the npz files; uniter-lmdb: the split
    /// directory that receives <db_name>/ and the nbb file)
    #[arg(short, long, value_name = "PATH")]
    output: PathBuf,
    #[command(flatten)]
    ids: IdArgs,
    /// TSV: append rows to OUT (generate_tsv.py's 'ab') instead of replacing it atomically;
    /// ids already in OUT are skipped, and a failed run leaves OUT as it was
    #[arg(long)]
    append: bool,
    /// UNITER: prefix of the npz names / LMDB keys (generate_npz.py uses "<dataset>_", e.g. nlvr2_)
    #[arg(long, value_name = "PREFIX", default_value = "")]
    name_prefix: String,
    /// UNITER: write entries without soft_labels when records carry none (`butd extract
    /// --soft-labels` stores them; UNITER's MRC-kl pre-training reads soft_labels, fine-tuning
    /// does not)
    #[arg(long)]
    without_soft_labels: bool,
    /// uniter-lmdb: convert_imgdir.py --conf_th (-1: fixed count, DB feat_numbb<num_bb>)
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    conf_th: f64,
    /// uniter-lmdb: convert_imgdir.py --max_bb
    #[arg(long, default_value_t = 100)]
    max_bb: usize,
    /// uniter-lmdb: convert_imgdir.py --min_bb
    #[arg(long, default_value_t = 10)]
    min_bb: usize,
    /// uniter-lmdb: convert_imgdir.py --num_bb (names the DB when --conf-th -1)
    #[arg(long, default_value_t = 100)]
    num_bb: usize,
    /// uniter-lmdb: convert_imgdir.py --keep_all (no truncation, DB `all`)
    #[arg(long)]
    keep_all: bool,
    /// uniter-lmdb: convert_imgdir.py --compress (npz values, DB name + _compressed)
    #[arg(long)]
    compress: bool,
    /// lxmert-tsv, vqa-hdf5 fixed: export records made with different box selections (the
    /// records' `select_mode`, `min_boxes`, `max_boxes`, `conf_thresh`) into one file
    #[arg(long)]
    allow_mixed_selections: bool,
    /// vqa-hdf5: which converter's layout
    #[arg(long, value_enum, default_value = "fixed")]
    hdf5_layout: Hdf5Layout,
}

/// Where the records go.
enum Sink {
    ButdTsv(ButdTsvWriter),
    LxmertTsv(LxmertTsvWriter),
    UniterNpz {
        dir: PathBuf,
        prefix: String,
    },
    UniterLmdb {
        writer: UniterLmdbWriter,
        prefix: String,
    },
    VqaHdf5(VqaHdf5Writer),
}

impl Sink {
    fn open(args: &Args) -> anyhow::Result<Sink> {
        let out = &args.output;
        Ok(match args.format {
            Format::ButdTsv => Sink::ButdTsv(ButdTsvWriter::create(out, args.append)?),
            Format::LxmertTsv => Sink::LxmertTsv(LxmertTsvWriter::create(out, args.append)?),
            Format::UniterNpz => {
                std::fs::create_dir_all(out)
                    .with_context(|| format!("{}: cannot create the directory", out.display()))?;
                Sink::UniterNpz {
                    dir: out.clone(),
                    prefix: args.name_prefix.clone(),
                }
            }
            Format::UniterLmdb => {
                let options = UniterOptions {
                    conf_th: args.conf_th,
                    max_bb: args.max_bb,
                    min_bb: args.min_bb,
                    num_bb: args.num_bb,
                    keep_all: args.keep_all,
                    compress: args.compress,
                };
                Sink::UniterLmdb {
                    writer: UniterLmdbWriter::create(out, options)?,
                    prefix: args.name_prefix.clone(),
                }
            }
            Format::VqaHdf5 => Sink::VqaHdf5(VqaHdf5Writer::create(
                out,
                match args.hdf5_layout {
                    Hdf5Layout::Fixed => VqaLayout::Fixed,
                    Hdf5Layout::Adaptive => VqaLayout::Adaptive,
                },
            )?),
        })
    }

    fn write(&mut self, r: &Record, without_soft_labels: bool) -> anyhow::Result<()> {
        let uniter = |prefix: &str| -> anyhow::Result<UniterEntry> {
            if r.soft_labels.is_none() && !without_soft_labels {
                bail!(
                    "no soft labels for UNITER's soft_labels: extract with `butd extract \
                     --soft-labels` (the kept boxes' 1601 class scores as float16, ≈ 115 KB \
                     per 36-box image; --dump-activations has them too, with 20 MB of other \
                     activations), or pass --without-soft-labels to omit them"
                );
            }
            UniterEntry::from_record(r, prefix).map_err(anyhow::Error::msg)
        };
        match self {
            Sink::ButdTsv(w) => w.write(r)?,
            Sink::LxmertTsv(w) => w.write(r)?,
            Sink::UniterNpz { dir, prefix } => {
                write_uniter_npz(dir, &uniter(prefix)?)?;
            }
            Sink::UniterLmdb { writer, prefix } => writer.add(&uniter(prefix)?)?,
            Sink::VqaHdf5(w) => w.write(r)?,
        }
        Ok(())
    }

    /// The ids already in an appended TSV (skipped), and the bytes of a torn last row cut off.
    fn existing(&self) -> Option<(&HashSet<String>, u64)> {
        let file = match self {
            Sink::ButdTsv(w) => w.target(),
            Sink::LxmertTsv(w) => w.target(),
            _ => return None,
        };
        Some((file.existing_ids(), file.torn_bytes()))
    }

    /// Completes the output; returns the paths written.
    fn finish(self) -> anyhow::Result<Vec<PathBuf>> {
        Ok(match self {
            Sink::ButdTsv(w) => vec![w.finish()?.commit()?],
            Sink::LxmertTsv(w) => vec![w.finish()?.commit()?],
            Sink::UniterNpz { dir, .. } => vec![dir],
            Sink::UniterLmdb { writer, .. } => vec![writer.finish()?],
            Sink::VqaHdf5(w) => {
                let (h5, index) = w.finish()?;
                vec![h5, index]
            }
        })
    }
}

/// The `*.safetensors` files directly in `dir`, sorted by name.
fn record_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list the records", dir.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("{}: cannot list the records", dir.display()))?
            .path();
        if path.extension().is_some_and(|e| e == "safetensors") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("{}: no *.safetensors records", dir.display());
    }
    Ok(files)
}

fn id_policy(args: &Args) -> anyhow::Result<IdPolicy> {
    let needs_int = matches!(args.format, Format::ButdTsv | Format::VqaHdf5);
    Ok(args.ids.policy()?.unwrap_or(if needs_int {
        IdPolicy::IntSuffix
    } else {
        IdPolicy::Stem
    }))
}

/// The formats whose consumers assume one box selection (LXMERT's obj36 TSV, the fixed VQA
/// layout) get records of one selection: a folder holding adaptive and `--fixed 36` records
/// would give an "obj36" file with 13-box images. Records written before provenance state
/// none and are not compared.
fn check_one_selection<'a>(
    file: &'a Path,
    first: &mut Option<(String, &'a Path)>,
) -> anyhow::Result<()> {
    let RecordState::Complete { meta, .. } = record_state(file) else {
        return Ok(()); // Record::read_safetensors names what is wrong with it.
    };
    let Some(selection) = meta::selection_of(&meta) else {
        return Ok(());
    };
    match first {
        Some((s, path)) if *s != selection => bail!(
            "{} was made with the selection \"{selection}\", {} with \"{s}\": this format \
             holds one selection (--allow-mixed-selections exports them together anyway)",
            file.display(),
            path.display()
        ),
        Some(_) => {}
        None => *first = Some((selection, file)),
    }
    Ok(())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.append && !matches!(args.format, Format::ButdTsv | Format::LxmertTsv) {
        bail!("--append applies to the TSV formats only");
    }
    let files = record_files(&args.records)?;
    let policy = id_policy(&args)?;
    let mut sink = Sink::open(&args)?;
    let bar = ProgressBar::new(files.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} records, {elapsed} (eta {eta})")
            .expect("static progress template"),
    );
    let (mut written, mut skipped, mut present) = (0usize, 0usize, 0usize);
    let mut by_id: HashMap<String, PathBuf> = HashMap::new();
    let empty = HashSet::new();
    let (existing, torn) = sink.existing().unwrap_or((&empty, 0));
    let existing = existing.clone();
    if torn > 0 {
        eprintln!(
            "warning: {}: cut off a torn last row ({torn} bytes) left by an interrupted run",
            args.output.display()
        );
    }
    let one_selection = !args.allow_mixed_selections
        && (args.format == Format::LxmertTsv
            || (args.format == Format::VqaHdf5 && args.hdf5_layout == Hdf5Layout::Fixed));
    let mut first_selection: Option<(String, &Path)> = None;
    for file in &files {
        if one_selection {
            check_one_selection(file, &mut first_selection)?;
        }
        match Record::read_safetensors(file, &policy) {
            Ok(record) => {
                record
                    .check_exportable()
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                if let Some(first) = by_id.insert(record.image_id.clone(), file.clone()) {
                    bail!(
                        "{} and {} both give the image id {:?}; the output would hold one \
                         image's features under the other's id (choose another --id-policy or \
                         --id-map)",
                        first.display(),
                        file.display(),
                        record.image_id
                    );
                }
                if existing.contains(&record.image_id) {
                    present += 1;
                } else {
                    sink.write(&record, args.without_soft_labels)
                        .with_context(|| format!("{}", file.display()))?;
                    written += 1;
                }
            }
            Err(e @ FormatError::NoDetections { .. }) => {
                bar.suspend(|| eprintln!("warning: skipped {e}"));
                skipped += 1;
            }
            Err(e) => return Err(e.into()),
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    if written == 0 && present == 0 {
        bail!(
            "{}: no record with detections to export",
            args.records.display()
        );
    }
    let outputs = sink.finish()?;
    let outputs: Vec<String> = outputs.iter().map(|p| p.display().to_string()).collect();
    let mut notes = Vec::new();
    if skipped > 0 {
        notes.push(format!("{skipped} without detections skipped"));
    }
    if present > 0 {
        notes.push(format!("{present} already in the file skipped"));
    }
    eprintln!(
        "exported {written} image(s){} to {}",
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join(", "))
        },
        outputs.join(" and ")
    );
    Ok(ExitCode::SUCCESS)
}
