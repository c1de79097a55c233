//! Declarative mappings from Caffe blobs to named tensors, and conversion to safetensors.
//!
//! A mapping is a TOML file (grammar and rationale in `mappings/README.md`): capture tables
//! that translate Caffe names (`res4b13` → `backbone.res4.13`), rules that route blobs to
//! target keys through a few transforms (slices, row moves, permutations, scaling, Caffe's
//! BatchNorm factor), literal constants, and an `[ignore]` list with reasons. It is strict:
//! [`Plan::new`] checks, before any value is read, that every Caffe blob is used or ignored,
//! that every target key of the manifest is produced exactly once with its shape and dtype,
//! and that every referenced blob exists; each problem names the rule and its TOML line.
//!
//! ```no_run
//! use butd_mapping::{Inventory, Mapping, Plan, WriteOptions};
//! let model = butd_caffe::CaffeModel::open("model.caffemodel")?;
//! let mapping = Mapping::load("caffe-to-hf-frcnn")?; // a path, or a built-in name
//! let target = mapping.target_manifest()?;
//! let plan = Plan::new(&mapping, &Inventory::of(&model), &target);
//! plan.check()?; // every problem at once
//! plan.write_safetensors(&mapping, &model, "out.safetensors".as_ref(), &WriteOptions::default())?;
//! # Ok::<(), butd_mapping::Error>(())
//! ```

pub mod builtin;
mod error;
mod manifest;
mod pattern;
mod plan;
mod spec;
mod transform;
mod write;

pub use error::{Error, Problem, ProblemKind, Result};
pub use manifest::{Dtype, Entry, Manifest};
pub use plan::{
    caffe_v1_blob_shape, BlobId, BlobStatus, BlobUse, Inventory, Op, Output, Plan, Source, Summary,
};
pub use spec::{Ignore, Mapping, Rule};
pub use transform::{caffe_bn_scale_factor, Step};
pub use write::{
    FloatDtype, Tensor, WriteOptions, Written, METADATA_MAPPING, METADATA_MAPPING_DIGEST,
};
