//! Extraction straight into a downstream file (`--format`), and the selection presets each
//! consumer expects (`--preset`).
//!
//! With `--format F`, `--out FILE` names what `butd export --format F -o FILE` writes, and the
//! records go to `FILE.records/` beside it: that folder is the resume state (rerun the same
//! command after any interruption, even kill -9), and the export reads every record in it once
//! the extraction is complete, writing FILE atomically (a temporary file, then a rename). So
//! the file holds every image exactly once, however often the run was interrupted.
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use butd_model::select::SelectConfig;

/// `butd export --format` values (the same names; `butd export --help` describes each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    ButdTsv,
    LxmertTsv,
    UniterNpz,
    UniterLmdb,
    VqaHdf5,
}

/// Selection settings by consumer (docs/semantics.md §6.3, §6.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// bottom-up-attention generate_tsv.py (and UNITER, VQA adaptive): 10–100 boxes with
    /// max_conf ≥ 0.2
    Butd,
    /// LXMERT obj36 (extract_*_image.py): exactly 36 boxes
    Lxmert,
}

impl Preset {
    pub fn select(self) -> SelectConfig {
        match self {
            Preset::Butd => SelectConfig::default(),
            Preset::Lxmert => SelectConfig::fixed(36),
        }
    }
}

/// Where the records of a `--format` run go: `FILE.records/` beside FILE.
pub fn records_dir(file: &Path) -> PathBuf {
    let mut name: OsString = file.file_name().unwrap_or_default().to_owned();
    name.push(".records");
    file.with_file_name(name)
}

/// After the extraction (exit status `extracted`): `butd export` of every record into `file`.
/// The run's status stays 1 when images failed (they are in `failures.tsv` and not in the
/// file); an export that fails makes it 2.
pub fn export(format: ExportFormat, records: &Path, file: &Path, extracted: ExitCode) -> ExitCode {
    let name = clap::ValueEnum::to_possible_value(&format)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default();
    let butd = butd_exe::sibling_executable("butd");
    let status = Command::new(&butd)
        .arg("export")
        .arg("--records")
        .arg(records)
        .args(["--format", &name])
        .arg("-o")
        .arg(file)
        .status();
    match status {
        Ok(s) if s.success() => extracted,
        Ok(s) => {
            eprintln!(
                "error: the export to {} failed ({s}); the records are in {}: fix the cause and \
                 rerun the same command, or run `butd export --records {} --format {name} -o {}`",
                file.display(),
                records.display(),
                records.display(),
                file.display()
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!(
                "error: cannot run {} for the export ({e}); the records are in {}",
                butd.display(),
                records.display()
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_of_a_format_run_sit_beside_its_file() {
        assert_eq!(
            records_dir(Path::new("out/feats.tsv")),
            Path::new("out/feats.tsv.records")
        );
        assert_eq!(
            records_dir(Path::new("feats.tsv")),
            Path::new("feats.tsv.records")
        );
    }

    #[test]
    fn the_presets_are_the_consumers_settings() {
        let lxmert = Preset::Lxmert.select();
        assert_eq!(
            (lxmert.min_boxes, lxmert.max_boxes, lxmert.conf_thresh),
            (36, 36, 0.2)
        );
        let butd = Preset::Butd.select();
        assert_eq!(
            (butd.min_boxes, butd.max_boxes, butd.conf_thresh),
            (10, 100, 0.2)
        );
    }
}
