//! The transforms a rule can apply (`do = [...]`), each with its shape rule (checked before any
//! data is read) and its arithmetic. Indices along a dimension may be negative, counting from
//! the end, as in NumPy.

use ndarray::{ArrayD, Axis, IxDyn, Slice};

/// One step of a rule's `do` list. The TOML spelling of each is in `mappings/README.md`.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `slice = { dim, start = 0, end = len }`: keep `start..end` along `dim`.
    Slice {
        dim: usize,
        start: i64,
        end: Option<i64>,
    },
    /// `sub_slices = { dim, take = [a, b], minus = [c, d] }`: `x[a..b] − x[c..d]` along `dim`.
    SubSlices {
        dim: usize,
        take: [i64; 2],
        minus: [i64; 2],
    },
    /// `select = { dim, index = [...], group = 1 }`: output group k = input group `index[k]`,
    /// where a group is `group` consecutive entries along `dim`.
    Select {
        dim: usize,
        index: Vec<i64>,
        group: usize,
    },
    /// `move = { dim, from, to }`: moves one entry along `dim`; the others keep their order.
    Move { dim: usize, from: i64, to: i64 },
    /// `mul = { dim, repeat = [...] }`: entry i along `dim` is multiplied by `repeat[i % len]`.
    Mul { dim: usize, repeat: Vec<f32> },
    /// `reshape = [...]` (row-major; one entry may be −1).
    Reshape { shape: Vec<i64> },
    /// `bn_factor = "layer[i]"`: multiply by Caffe's BatchNorm scale factor read from that
    /// one-element blob ([`caffe_bn_scale_factor`]).
    BnFactor { blob: String },
}

impl Step {
    /// The TOML name of the step, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Slice { .. } => "slice",
            Step::SubSlices { .. } => "sub_slices",
            Step::Select { .. } => "select",
            Step::Move { .. } => "move",
            Step::Mul { .. } => "mul",
            Step::Reshape { .. } => "reshape",
            Step::BnFactor { .. } => "bn_factor",
        }
    }

    pub const NAMES: [&'static str; 7] = [
        "slice",
        "sub_slices",
        "select",
        "move",
        "mul",
        "reshape",
        "bn_factor",
    ];

    /// The output shape for an input of shape `shape`, or why the step does not apply.
    /// `apply` relies on this having passed.
    pub fn out_shape(&self, shape: &[usize]) -> Result<Vec<usize>, String> {
        let mut out = shape.to_vec();
        let len_of = |dim: usize| {
            shape
                .get(dim)
                .copied()
                .ok_or_else(|| format!("dim {dim} does not exist in a tensor of shape {shape:?}"))
        };
        match self {
            Step::Slice { dim, start, end } => {
                let n = len_of(*dim)?;
                let r = range(n, *start, end.unwrap_or(n as i64))?;
                out[*dim] = r.1 - r.0;
            }
            Step::SubSlices { dim, take, minus } => {
                let n = len_of(*dim)?;
                let a = range(n, take[0], take[1])?;
                let b = range(n, minus[0], minus[1])?;
                if a.1 - a.0 != b.1 - b.0 {
                    return Err(format!(
                        "`take` {}..{} and `minus` {}..{} differ in length",
                        a.0, a.1, b.0, b.1
                    ));
                }
                out[*dim] = a.1 - a.0;
            }
            Step::Select { dim, index, group } => {
                let n = len_of(*dim)?;
                if *group == 0 || n % group != 0 {
                    return Err(format!(
                        "dim {dim} has {n} entries, not a multiple of group {group}"
                    ));
                }
                for &i in index {
                    position(n / group, i)?;
                }
                out[*dim] = index.len() * group;
            }
            Step::Move { dim, from, to } => {
                let n = len_of(*dim)?;
                position(n, *from)?;
                position(n, *to)?;
            }
            Step::Mul { dim, repeat } => {
                let n = len_of(*dim)?;
                if repeat.is_empty() || n % repeat.len() != 0 {
                    return Err(format!(
                        "dim {dim} has {n} entries, not a multiple of the {} repeated factors",
                        repeat.len()
                    ));
                }
            }
            Step::Reshape { shape: to } => out = reshaped(shape, to)?,
            Step::BnFactor { .. } => {}
        }
        Ok(out)
    }

    /// Applies the step. `factor` is the value of the referenced one-element blob (only
    /// `BnFactor` reads it). The input shape must have passed `out_shape`.
    pub fn apply(&self, x: ArrayD<f32>, factor: Option<f32>) -> ArrayD<f32> {
        match self {
            Step::Slice { dim, start, end } => {
                let n = x.len_of(Axis(*dim));
                let (a, b) =
                    range(n, *start, end.unwrap_or(n as i64)).expect("checked by out_shape");
                let mut x = x;
                x.slice_axis_inplace(Axis(*dim), Slice::from(a..b));
                x
            }
            Step::SubSlices { dim, take, minus } => {
                let n = x.len_of(Axis(*dim));
                let a = range(n, take[0], take[1]).expect("checked by out_shape");
                let b = range(n, minus[0], minus[1]).expect("checked by out_shape");
                let hi = x.slice_axis(Axis(*dim), Slice::from(a.0..a.1));
                let lo = x.slice_axis(Axis(*dim), Slice::from(b.0..b.1));
                &hi - &lo
            }
            Step::Select { dim, index, group } => {
                let n = x.len_of(Axis(*dim)) / group;
                let rows: Vec<usize> = index
                    .iter()
                    .flat_map(|&k| {
                        let k = position(n, k).expect("checked by out_shape");
                        (k * group)..(k * group + group)
                    })
                    .collect();
                x.select(Axis(*dim), &rows)
            }
            Step::Move { dim, from, to } => {
                let n = x.len_of(Axis(*dim));
                let rows = moved_order(
                    n,
                    position(n, *from).expect("checked by out_shape"),
                    position(n, *to).expect("checked by out_shape"),
                );
                x.select(Axis(*dim), &rows)
            }
            Step::Mul { dim, repeat } => {
                let mut x = x;
                for (i, mut lane) in x.axis_iter_mut(Axis(*dim)).enumerate() {
                    let f = repeat[i % repeat.len()];
                    lane.mapv_inplace(|v| v * f);
                }
                x
            }
            Step::Reshape { shape: to } => {
                let to = reshaped(x.shape(), to).expect("checked by out_shape");
                let x = x.as_standard_layout().into_owned();
                x.into_shape_with_order(IxDyn(&to))
                    .expect("same element count, standard layout")
            }
            Step::BnFactor { .. } => {
                let sf = caffe_bn_scale_factor(factor.expect("bn_factor reads its blob"));
                x.mapv_into(|v| v * sf)
            }
        }
    }
}

/// Caffe's BatchNorm scale factor (docs/semantics.md §2.2): `sf = 0` when the stored factor
/// `f` is 0, else the f32 reciprocal `1 ⊘ f`. The statistics are then *multiplied* by `sf`
/// (`mean_c = blobs[0][c] ⊗ sf`), which differs from dividing by `f` in the last bit for
/// factors that are not powers of two; multiplying here keeps `running_mean` and `running_var`
/// bit-identical to what Caffe's `BatchNormLayer::Forward_cpu` uses.
pub fn caffe_bn_scale_factor(f: f32) -> f32 {
    if f == 0.0 {
        0.0
    } else {
        1.0 / f
    }
}

/// A position along a dimension of length `n`, negative counting from the end.
fn position(n: usize, i: i64) -> Result<usize, String> {
    let p = if i < 0 { n as i64 + i } else { i };
    if (0..n as i64).contains(&p) {
        Ok(p as usize)
    } else {
        Err(format!("index {i} is outside 0..{n}"))
    }
}

/// A range `start..end` along a dimension of length `n`; negative bounds count from the end.
fn range(n: usize, start: i64, end: i64) -> Result<(usize, usize), String> {
    let fix = |i: i64| if i < 0 { n as i64 + i } else { i };
    let (a, b) = (fix(start), fix(end));
    if 0 <= a && a <= b && b <= n as i64 {
        Ok((a as usize, b as usize))
    } else {
        Err(format!("range {start}..{end} is not inside 0..{n}"))
    }
}

/// The source index of every output position after moving entry `from` to position `to`.
fn moved_order(n: usize, from: usize, to: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).filter(|&i| i != from).collect();
    order.insert(to, from);
    order
}

fn reshaped(shape: &[usize], to: &[i64]) -> Result<Vec<usize>, String> {
    let count: usize = shape.iter().product();
    let known: usize = to
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    let holes = to.iter().filter(|&&d| d == -1).count();
    let bad = || format!("cannot reshape {shape:?} ({count} elements) to {to:?}");
    if holes > 1 || to.iter().any(|&d| d < -1) {
        return Err(bad());
    }
    let fill = if holes == 1 {
        if count.checked_rem(known) != Some(0) {
            return Err(bad());
        }
        count / known
    } else if known == count {
        0
    } else {
        return Err(bad());
    };
    Ok(to
        .iter()
        .map(|&d| if d == -1 { fill } else { d as usize })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    fn rows(n: usize, cols: usize) -> ArrayD<f32> {
        Array::from_shape_fn(IxDyn(&[n, cols]), |i| (i[0] * 100 + i[1]) as f32)
    }

    #[test]
    fn bn_scale_factor_is_a_reciprocal_then_multiply() {
        assert_eq!(caffe_bn_scale_factor(0.0), 0.0);
        assert_eq!(caffe_bn_scale_factor(2.0), 0.5);
        // With f = 3 the two orders of rounding disagree for some x: Caffe multiplies.
        let f = 3.0f32;
        let sf = caffe_bn_scale_factor(f);
        let differs = (1..10_000)
            .map(|i| i as f32 * 0.37)
            .any(|x| x * sf != x / f);
        assert!(
            differs,
            "a divide would be indistinguishable, the test could not fail"
        );
        let step = Step::BnFactor {
            blob: "bn[2]".into(),
        };
        let x = ArrayD::from_shape_vec(IxDyn(&[2]), vec![7.0f32, -1.1]).unwrap();
        let y = step.apply(x, Some(f));
        assert_eq!(y.as_slice().unwrap(), &[7.0 * sf, -1.1 * sf]);
    }

    #[test]
    fn slice_and_difference_of_slices() {
        let x = rows(6, 2);
        let s = Step::Slice {
            dim: 0,
            start: 4,
            end: None,
        };
        assert_eq!(s.out_shape(&[6, 2]).unwrap(), vec![2, 2]);
        assert_eq!(
            s.apply(x.clone(), None).iter().copied().collect::<Vec<_>>(),
            [400., 401., 500., 501.]
        );
        let d = Step::SubSlices {
            dim: 0,
            take: [3, 6],
            minus: [0, 3],
        };
        let y = d.apply(x, None);
        assert!(y.iter().all(|&v| v == 300.0));
        assert!(Step::SubSlices {
            dim: 0,
            take: [3, 6],
            minus: [0, 2]
        }
        .out_shape(&[6, 2])
        .is_err());
        assert!(Step::Slice {
            dim: 2,
            start: 0,
            end: None
        }
        .out_shape(&[6, 2])
        .is_err());
        assert!(Step::Slice {
            dim: 0,
            start: 0,
            end: Some(7)
        }
        .out_shape(&[6, 2])
        .is_err());
    }

    #[test]
    fn select_in_groups_and_move() {
        let x = rows(6, 1);
        let s = Step::Select {
            dim: 0,
            index: vec![2, 0, 1],
            group: 2,
        };
        assert_eq!(s.out_shape(&[6, 1]).unwrap(), vec![6, 1]);
        let y: Vec<f32> = s.apply(x.clone(), None).iter().copied().collect();
        assert_eq!(y, [400., 500., 0., 100., 200., 300.]);
        let m = Step::Move {
            dim: 0,
            from: 0,
            to: -1,
        };
        let y: Vec<f32> = m.apply(x, None).iter().copied().collect();
        assert_eq!(y, [100., 200., 300., 400., 500., 0.]);
        assert!(Step::Select {
            dim: 0,
            index: vec![3],
            group: 2
        }
        .out_shape(&[6, 1])
        .is_err());
        assert!(Step::Select {
            dim: 0,
            index: vec![0],
            group: 4
        }
        .out_shape(&[6, 1])
        .is_err());
        assert!(Step::Move {
            dim: 0,
            from: 6,
            to: 0
        }
        .out_shape(&[6, 1])
        .is_err());
    }

    #[test]
    fn mul_repeats_and_reshape() {
        let x = rows(4, 1);
        let m = Step::Mul {
            dim: 0,
            repeat: vec![10.0, 5.0],
        };
        let y: Vec<f32> = m.apply(x, None).iter().copied().collect();
        assert_eq!(y, [0., 500., 2000., 1500.]);
        assert!(Step::Mul {
            dim: 0,
            repeat: vec![1.0; 3]
        }
        .out_shape(&[4, 1])
        .is_err());
        let r = Step::Reshape { shape: vec![2, -1] };
        assert_eq!(r.out_shape(&[4, 3]).unwrap(), vec![2, 6]);
        assert!(Step::Reshape { shape: vec![5, -1] }
            .out_shape(&[4, 3])
            .is_err());
        assert!(Step::Reshape {
            shape: vec![-1, -1]
        }
        .out_shape(&[4, 3])
        .is_err());
        assert_eq!(r.apply(rows(4, 3), None).shape(), &[2, 6]);
    }
}
