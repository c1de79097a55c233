//! Minimum-cost assignment (Hungarian method, shortest augmenting paths with potentials,
//! O(n² m)) on an f64 cost matrix, so IoU costs need no integer scaling.

/// Optimal assignment for a `rows × cols` row-major `cost` matrix (finite entries): returns the
/// `min(rows, cols)` pairs `(row, col)`, sorted by row, that minimise the summed cost.
pub fn min_cost_assignment(cost: &[f64], rows: usize, cols: usize) -> Vec<(usize, usize)> {
    assert_eq!(cost.len(), rows * cols, "cost matrix size");
    if rows <= cols {
        assign(|i, j| cost[i * cols + j], rows, cols)
            .into_iter()
            .enumerate()
            .collect()
    } else {
        let mut pairs: Vec<(usize, usize)> = assign(|j, i| cost[i * cols + j], cols, rows)
            .into_iter()
            .enumerate()
            .map(|(col, row)| (row, col))
            .collect();
        pairs.sort_unstable();
        pairs
    }
}

/// Column of each row for `n ≤ m`: each row in turn is added by a Dijkstra-like search for the
/// cheapest augmenting path over reduced costs `a(i,j) − u[i] − v[j]` (kept ≥ 0).
/// Index 0 of `u`, `v`, `p`, `way` is a virtual row/column, as in the textbook formulation.
fn assign(a: impl Fn(usize, usize) -> f64, n: usize, m: usize) -> Vec<usize> {
    let mut u = vec![0.0f64; n + 1];
    let mut v = vec![0.0f64; m + 1];
    let mut p = vec![0usize; m + 1]; // p[j]: row (1-based) assigned to column j, 0 if free
    let mut way = vec![0usize; m + 1];
    let mut minv = vec![0.0f64; m + 1];
    let mut used = vec![false; m + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0;
        minv.fill(f64::INFINITY);
        used.fill(false);
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0;
            for j in 1..=m {
                if used[j] {
                    continue;
                }
                let cur = a(i0 - 1, j - 1) - u[i0] - v[j];
                if cur < minv[j] {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if minv[j] < delta {
                    delta = minv[j];
                    j1 = j;
                }
            }
            if j1 == 0 {
                // Only reachable with non-finite costs; callers pass finite ones.
                break;
            }
            for j in 0..=m {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        while j0 != 0 {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        }
    }
    let mut col_of_row = vec![0usize; n];
    for j in 1..=m {
        if p[j] != 0 {
            col_of_row[p[j] - 1] = j - 1;
        }
    }
    col_of_row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minimum over all injective maps of the smaller side into the larger.
    fn brute_force(cost: &[f64], rows: usize, cols: usize) -> f64 {
        fn rec(cost: &[f64], rows: usize, cols: usize, i: usize, used: &mut Vec<bool>) -> f64 {
            if i == rows {
                return 0.0;
            }
            let mut best = f64::INFINITY;
            for j in 0..cols {
                if !used[j] {
                    used[j] = true;
                    best = best.min(cost[i * cols + j] + rec(cost, rows, cols, i + 1, used));
                    used[j] = false;
                }
            }
            best
        }
        if rows <= cols {
            rec(cost, rows, cols, 0, &mut vec![false; cols])
        } else {
            let t: Vec<f64> = (0..cols * rows)
                .map(|k| cost[(k % rows) * cols + k / rows])
                .collect();
            rec(&t, cols, rows, 0, &mut vec![false; rows])
        }
    }

    /// xorshift64*: deterministic test inputs without a rand dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn matches_brute_force_on_random_matrices() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for trial in 0..400 {
            let rows = 1 + trial % 6;
            let cols = 1 + (trial / 6) % 6;
            // Every third matrix is coarsely quantised so that many costs tie.
            let cost: Vec<f64> = (0..rows * cols)
                .map(|_| {
                    let x = rng.next();
                    if trial % 3 == 0 {
                        (x * 4.0).floor() / 4.0
                    } else {
                        x
                    }
                })
                .collect();
            let pairs = min_cost_assignment(&cost, rows, cols);
            assert_eq!(pairs.len(), rows.min(cols));
            let mut seen_r = vec![false; rows];
            let mut seen_c = vec![false; cols];
            for &(r, c) in &pairs {
                assert!(!seen_r[r] && !seen_c[c], "not a matching: {pairs:?}");
                seen_r[r] = true;
                seen_c[c] = true;
            }
            let total: f64 = pairs.iter().map(|&(r, c)| cost[r * cols + c]).sum();
            let best = brute_force(&cost, rows, cols);
            assert!(
                (total - best).abs() < 1e-12,
                "{rows}x{cols} trial {trial}: {total} vs optimum {best}"
            );
        }
    }

    #[test]
    fn recovers_a_permutation() {
        let perm = [3usize, 0, 4, 1, 2];
        let n = perm.len();
        let cost: Vec<f64> = (0..n * n)
            .map(|k| if perm[k / n] == k % n { 0.0 } else { 1.0 })
            .collect();
        let pairs = min_cost_assignment(&cost, n, n);
        assert_eq!(pairs, perm.iter().copied().enumerate().collect::<Vec<_>>());
    }

    #[test]
    fn empty_sides() {
        assert!(min_cost_assignment(&[], 0, 3).is_empty());
        assert!(min_cost_assignment(&[], 4, 0).is_empty());
    }
}
