//! `butd`: one command for the whole pipeline. Each subcommand lives in `cmd/<name>.rs` and
//! only parses arguments and prints; the work is done by the library crates.
//!
//! A library too, so that the Python package's `butd` command (crates/python) is this very
//! command line: `src/main.rs` and the Python console script both call [`run`].
//!
//! ```no_run
//! let code = butd_cli::run(["butd", "inspect", "model.caffemodel"]);
//! # let _ = code;
//! ```
use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;

#[derive(Parser)]
#[command(
    name = "butd",
    version,
    about = "Bottom-up-attention Faster R-CNN without Caffe"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the layers and blobs of a .caffemodel
    Inspect(cmd::inspect::Args),
    /// Convert a .caffemodel to safetensors through a TOML mapping
    Convert(cmd::convert::Args),
    /// Show what a mapping leaves unmapped on each side
    Diff(cmd::diff::Args),
    /// Run the reference network on images and write one record per image
    Extract(cmd::extract::Args),
    /// Compare candidate records against golden Caffe outputs
    Verify(cmd::verify::Args),
    /// Write records in the formats downstream models read (BUTD/LXMERT TSV, UNITER, HDF5)
    Export(cmd::export::Args),
    /// Combine the output folders of `butd extract` shards into one
    Merge(cmd::merge::Args),
    /// A record's detections with class names: a table, JSON, or drawn on the image (PNG)
    Show(cmd::show::Args),
    /// Write the synthetic BUTD caffemodel the golden outputs were computed from (golden/SYNTHETIC.md)
    Synth(cmd::synth::Args),
}

/// Parses `args` (the program name first, as `std::env::args_os()` gives it) and runs the
/// subcommand. Exit status: 0 success, 1 what the subcommand reports as a failure, 2 usage or
/// start-up errors (clap's own exit for `--help`/`--version` and bad arguments included).
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // Not `parse_from`, which exits the process: the Python package runs this in-process.
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    let result = match cli.command {
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Convert(a) => cmd::convert::run(a),
        Command::Diff(a) => cmd::diff::run(a),
        Command::Extract(a) => cmd::extract::run(a),
        Command::Verify(a) => cmd::verify::run(a),
        Command::Export(a) => cmd::export::run(a),
        Command::Merge(a) => cmd::merge::run(a),
        Command::Show(a) => cmd::show::run(a),
        Command::Synth(a) => cmd::synth::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", butd_exe::error_text(&e));
            ExitCode::from(2)
        }
    }
}
