//! Arithmetic modes of the network: `exact` (float32 everywhere, the default, what the golden
//! gate checks), `bf16` (res5 in bfloat16) and `tf32` (CUDA only: TF32 convolutions).
//!
//! ```
//! use butd_model::precision::Precision;
//! use butd_model::tch::Device;
//! let p: Precision = "bf16".parse()?;
//! assert_eq!(p.record_value(), "bf16");
//! assert!(Precision::Tf32.check_device(Device::Cpu).is_err());
//! # Ok::<(), String>(())
//! ```
//!
//! # Design
//! Only res5 changes in `bf16`: its convolutions are 92 % of the FLOPs (1757 of 1910 G for
//! 600×800 with 300 rois, [`crate::detector::Detector::flops`]). Its folded weights (BatchNorm
//! folded in f64, rounded to f32, then to bf16) and activations are bfloat16; oneDNN (AMX on
//! CPUs that have it) and cuDNN accumulate in f32 and round each layer's output to bf16; the
//! global average `pool5_flat` is taken in f32. Everything that decides *which* boxes come out
//! stays float32 or f64 as in exact mode: the trunk and the RPN (so the proposals, and `rois`,
//! are exact mode's, bit for bit), the classifier and attribute layers (2.8 GFLOP, 0.15 %),
//! the proposal layer, NMS and the selection.
//!
//! A bf16 trunk (res2–res4 in bf16, channels-last) was tried and rejected. The trunk is 7 % of
//! the FLOPs but, in f32 NCHW, about a fifth of exact mode's time, so it is what keeps bf16
//! from 3×: with it the golden set ran 2.77× exact's speed in the same run at load 9 (res5
//! alone: ≈ 2× at that load, 2.88× idle; docs/model.md, "Fast modes").
//! But it moved the proposals: rois matched at IoU ≥ 0.9 fell to 84.3 %, kept boxes matched to
//! 66.2 %, object labels on matched boxes to 97.4 % (load average 9; keeping the residual
//! stream in f32 between the bf16 convolutions gave 87.2 %, 71.8 %, 98.1 %). Near-tied RPN
//! scores (§7.1) turn bf16's 3 significant digits into other boxes.
//!
//! `tf32` lets cuDNN use TF32 for the convolutions (libtorch's default when
//! `NVIDIA_TF32_OVERRIDE` is not `0`); tch exposes no switch for cuBLAS's TF32 matmuls, so the
//! linear heads stay float32 there. The CPU has no TF32: asking for it is an error.

use std::fmt;
use std::str::FromStr;

use tch::{Device, Kind};

/// The record metadata key that states the mode ([`Precision::record_value`]).
pub const PRECISION_KEY: &str = butd_record::meta::PRECISION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// float32 everywhere, TF32 off: Caffe's arithmetic up to summation order.
    #[default]
    Exact,
    /// res5 in bfloat16 (f32 accumulation); everything else as `Exact`.
    Bf16,
    /// CUDA only: TF32 convolutions.
    Tf32,
}

impl Precision {
    pub const ALL: [Precision; 3] = [Precision::Exact, Precision::Bf16, Precision::Tf32];

    /// The name on the command line: `exact`, `bf16`, `tf32`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Exact => "exact",
            Precision::Bf16 => "bf16",
            Precision::Tf32 => "tf32",
        }
    }

    /// What a record's `precision` metadata says: the arithmetic, `fp32` for exact mode (the
    /// value records had before the fast modes existed).
    pub fn record_value(self) -> &'static str {
        match self {
            Precision::Exact => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Tf32 => "tf32",
        }
    }

    /// `Err` with a message when the device cannot run this mode (TF32 on the CPU).
    pub fn check_device(self, device: Device) -> Result<(), String> {
        match (self, device) {
            (Precision::Tf32, Device::Cpu) => Err(
                "precision tf32 needs a CUDA device (the CPU has no TF32); on the CPU use \
                 `--precision bf16` for speed or `exact`"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// Checks the device and sets `NVIDIA_TF32_OVERRIDE` for CUDA (before libtorch's first CUDA
    /// call, which reads it once): `0` except in `tf32`, so that an inherited environment cannot
    /// change what a record claims.
    pub fn configure(self, device: Device) -> Result<(), String> {
        self.check_device(device)?;
        if let Device::Cuda(_) = device {
            let value = if self == Precision::Tf32 { "1" } else { "0" };
            std::env::set_var("NVIDIA_TF32_OVERRIDE", value);
        }
        Ok(())
    }

    /// The tensor kind res5's weights and activations are kept in.
    pub fn res5_kind(self) -> Kind {
        match self {
            Precision::Bf16 => Kind::BFloat16,
            Precision::Exact | Precision::Tf32 => Kind::Float,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = String;

    /// `exact` (or `fp32`), `bf16`, `tf32`.
    fn from_str(s: &str) -> Result<Precision, String> {
        match s {
            "exact" | "fp32" => Ok(Precision::Exact),
            "bf16" => Ok(Precision::Bf16),
            "tf32" => Ok(Precision::Tf32),
            _ => Err(format!("precision `{s}`: expected exact, bf16 or tf32")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_fp32_means_exact() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>(), Ok(p));
        }
        assert_eq!("fp32".parse::<Precision>(), Ok(Precision::Exact));
        assert!("fp16"
            .parse::<Precision>()
            .unwrap_err()
            .contains("exact, bf16 or tf32"));
    }

    #[test]
    fn tf32_is_refused_on_the_cpu_and_the_others_are_not() {
        let e = Precision::Tf32.check_device(Device::Cpu).unwrap_err();
        assert!(e.contains("needs a CUDA device"), "{e}");
        assert!(Precision::Bf16.check_device(Device::Cpu).is_ok());
        assert!(Precision::Exact.check_device(Device::Cpu).is_ok());
        assert!(Precision::Tf32.check_device(Device::Cuda(0)).is_ok());
    }
}
