//! The butd record contract: what one image's record file is, whoever writes or reads it.
//!
//! A record is one safetensors file per image (`<id>.safetensors`) holding the golden files'
//! tensors under their names ([`tensors`]) and string metadata ([`meta`]). `butd extract`
//! writes them (through `butd-model`, which owns the tch → bytes step), `butd merge` and
//! `butd extract --resume` check them, `butd verify` and `butd export` read them.
//!
//! ```
//! use butd_record::{failures, file, meta, tensors, Role};
//!
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join(file::record_file_name("COCO_1"));
//! assert_eq!(file::record_state(&path), file::RecordState::Absent);
//! file::write_atomically(&path, b"not a record")?;
//! assert!(matches!(file::record_state(&path), file::RecordState::Damaged(_)));
//!
//! assert_eq!(tensors::role_of(tensors::POOL5_FLAT), Role::Rois);
//! assert_eq!(meta::RECORD_FORMAT, "butd-record-v1");
//! let (tsv, lines) = failures::write_failures(dir.path(), ["x.jpg\tx\tcannot decode"])?;
//! assert_eq!((failures::read_failures(&tsv)?.len(), lines), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! - One fact in one place: the tensor lists, roles and metadata keys are named here once and
//!   the writer (`butd-model`), the readers (`butd-verify`, `butd-formats`) and the output-folder
//!   tools (`butd-extract`, `butd merge`) use them, instead of each carrying its own copy.
//! - No libtorch, no tensors: the contract is names, files and rules, so the `butd` binary can
//!   depend on it.
//! - A record is complete or absent ([`file::write_atomically`]); [`file::record_state`] decides
//!   which from the header alone, so resuming a run over 100k images reads no tensor.

pub mod failures;
pub mod file;
pub mod meta;
pub mod tensors;

pub use file::{is_temp_record_name, record_state, RecordState};
pub use meta::{RECORD_FORMAT, RESULT_DETECTIONS, RESULT_NO_PROPOSALS};
pub use tensors::{role_of, Role};
