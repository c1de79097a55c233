//! The region-feature files that downstream models read, written from and read back into butd
//! records (`docs/formats.md` describes each format as its consumer reads it):
//!
//! | format | writer | reader | consumer |
//! |---|---|---|---|
//! | BUTD TSV | [`ButdTsvWriter`] | [`ButdTsvReader`] → [`Record`] | bottom-up-attention `read_tsv.py`, VQA converters |
//! | LXMERT obj36 TSV | [`LxmertTsvWriter`] | [`LxmertTsvReader`] → [`Record`] | LXMERT `load_obj_tsv` |
//! | UNITER npz | [`write_uniter_npz`] | [`read_uniter_npz`] → [`UniterEntry`] | UNITER `convert_imgdir.py` |
//! | UNITER img_db (LMDB) | [`UniterLmdbWriter`] | [`UniterLmdbReader`] → [`UniterEntry`] | UNITER/VILLA `DetectFeatLmdb` |
//! | VQA HDF5 (fixed 36 / adaptive) | [`VqaHdf5Writer`] | [`VqaHdf5`] → [`VqaImage`] | bottom-up-attention-vqa, ban-vqa |
//!
//! The TSVs hold everything a [`Record`] has, so their readers give records back. UNITER and the
//! VQA HDF5 drop information (image size, raw boxes, precision), so their readers give the
//! consumer's view ([`UniterEntry`], [`VqaImage`]) and the same type is built from a record
//! ([`UniterEntry::from_record`], [`VqaImage::from_record`]) for comparison.
//!
//! Every writer takes one record at a time and every reader streams, so a COCO-sized TSV
//! (~50 GB) is never held in memory.
//!
//! Any of these files, or a directory of records, also opens as records of named tensors
//! ([`tensors::Record`], values widened to f64): [`detect_format`] tells the [`Format`] by
//! content, [`source::Source`] lists and fetches its images, and [`canonical`] undoes each
//! format's conventions (label base, normalised or float16 boxes, image size). `butd verify`
//! compares such records; the Python bindings read them.
//!
//! ```
//! use butd_formats::source::{load, Source};
//! use butd_formats::{detect_format, Format, IdPolicy, LxmertTsvWriter, Record, SourceSpec};
//!
//! let dir = tempfile::tempdir()?;
//! let tsv = dir.path().join("obj36.tsv");
//! let record = Record {
//!     image_id: IdPolicy::IntSuffix.image_id("COCO_val2014_000000000042")?,
//!     image_h: 480,
//!     image_w: 640,
//!     boxes: vec![[0.0, 0.0, 10.0, 20.0]],
//!     features: vec![0.5; 2048],
//!     feature_dim: 2048,
//!     objects_id: Some(vec![3]),
//!     objects_conf: Some(vec![0.9]),
//!     attrs_id: Some(vec![1]),
//!     attrs_conf: Some(vec![0.4]),
//!     conf: None,
//!     soft_labels: None,
//! };
//! let mut writer = LxmertTsvWriter::create(&tsv, false)?;
//! writer.write(&record)?;
//! writer.finish()?.commit()?;
//!
//! // Read back as records of named tensors, the format told by the content.
//! assert_eq!(detect_format(&tsv)?.0, Format::LxmertTsv);
//! let Source { meta, mut reader } = Source::open(&SourceSpec::new(&tsv))?;
//! let mut images = Vec::new();
//! reader.list(&meta, |id, at, _| images.push((id.to_string(), at)))?;
//! assert_eq!(images[0].0, "42");
//! let tensors = load(&meta, reader.fetch(&meta, &images[0].1)?, None)?;
//! assert_eq!(tensors.get("boxes").map(|b| b.shape.clone()), Some(vec![1, 4]));
//! assert_eq!(tensors.metadata["orig_w"], "640");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! - Each format is written and read as its consumer reads it (`docs/formats.md`); every error
//!   names the file and the line, entry or tensor ([`FormatError`]).
//! - One reading of every feature file ([`source`], [`canonical`]) serves `butd verify` and
//!   the Python bindings (which detect, list and fetch through [`source`] too); one id-map
//!   reader and one id-policy choice ([`IdPolicy::load_map`], [`choose_id_policy`]) serve
//!   `butd export`, `butd verify` and Python.
//! - Outputs appear whole or not at all (temporary file + rename); no libtorch.
pub mod canonical;
mod error;
mod fs;
mod hdf5;
mod ids;
mod npy;
mod record;
pub mod resolution;
pub mod source;
pub mod tensors;
mod tsv;
mod uniter;
mod vqa;

pub use canonical::Format;
pub use error::FormatError;
pub use ids::{check_image_id, choose_id_policy, int_suffix, IdChoice, IdPolicy};
pub use npy::{npy_bytes, parse_npy, read_npz, write_npz, NdArray, NpyDtype};
pub use record::{Record, FEATURE_DIM, NUM_ATTRIBUTES, NUM_OBJECTS};
pub use source::{detect_format, SourceSpec};
pub use tsv::{
    ButdTsv, ButdTsvReader, ButdTsvWriter, LxmertTsv, LxmertTsvReader, LxmertTsvWriter, TsvFile,
    TsvFormat, TsvReader, TsvWriter, BUTD_FIELDS, LXMERT_FIELDS,
};
pub use uniter::{
    compute_nbb, python_float_str, read_uniter_npz, uniter_db_name, write_uniter_npz, UniterEntry,
    UniterLmdbReader, UniterLmdbWriter, UniterOptions,
};
pub use vqa::{imgid2idx_path, normalized_box, VqaHdf5, VqaHdf5Writer, VqaImage, VqaLayout};
