//! `butd synth`: writes the synthetic BUTD caffemodel of `golden/SYNTHETIC.md` (the file the
//! golden Caffe outputs were computed from), bit for bit, with `butd-synth`.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use butd_synth::{Dtype, Encoding, Variant};

#[derive(clap::Args)]
pub struct Args {
    /// The file to write (atomically: a temporary file beside it, then a rename)
    #[arg(long, short)]
    out: PathBuf,
    /// The legacy V1 layout (`layers`, unpacked values, 4-D legacy shapes)
    #[arg(long)]
    v1: bool,
    /// Values as `double_data` (the same float32 values widened)
    #[arg(long)]
    double: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let variant = Variant {
        encoding: if args.v1 { Encoding::V1 } else { Encoding::V2 },
        dtype: if args.double {
            Dtype::Double
        } else {
            Dtype::Float
        },
    };
    butd_synth::write_file(&args.out, variant)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let (size, sha256) = variant.figures();
    println!("{}: {size} bytes, sha256 {sha256}", args.out.display());
    Ok(ExitCode::SUCCESS)
}
