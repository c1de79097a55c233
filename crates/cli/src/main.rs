//! `butd`: one binary for the whole pipeline. Each subcommand lives in `cmd/<name>.rs` and
//! only parses arguments and prints; the work is done by the library crates.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod error_text;

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

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            eprintln!("error: {}", error_text::error_text(&e));
            ExitCode::from(2)
        }
    }
}
