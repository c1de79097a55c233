//! McNemar's test for paired binary outcomes, exact (binomial) form.

/// Exact two-sided McNemar test: the binomial test of `a_only` successes among the
/// `a_only + b_only` discordant pairs at p = ½, i.e. `min(1, 2 · P[X ≤ min(a_only, b_only)])`.
pub fn mcnemar_exact(a_only: usize, b_only: usize) -> f64 {
    let n = a_only + b_only;
    if n == 0 {
        return 1.0;
    }
    let k = a_only.min(b_only);
    // ln C(n, i) for i = 0..=k, summed in log space so large n neither overflows nor underflows.
    let mut ln_c = 0.0f64;
    let mut terms = Vec::with_capacity(k + 1);
    for i in 0..=k {
        if i > 0 {
            ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        terms.push(ln_c);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ln_sum = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (2.0 * (ln_sum - n as f64 * std::f64::consts::LN_2).exp()).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_p_value_matches_hand_computed_binomial_tails() {
        // n = 6, k = 1: 2 · (1 + 6) / 64.
        assert!((mcnemar_exact(1, 5) - 14.0 / 64.0).abs() < 1e-15);
        assert!((mcnemar_exact(5, 1) - 14.0 / 64.0).abs() < 1e-15);
        // n = 3, k = 0: 2 / 8.
        assert!((mcnemar_exact(0, 3) - 0.25).abs() < 1e-15);
        // n = 10, k = 0: 2 / 1024.
        assert!((mcnemar_exact(10, 0) - 2.0 / 1024.0).abs() < 1e-17);
        // Balanced discordance caps at 1.
        assert_eq!(mcnemar_exact(2, 2), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large n stays finite: 2 · Σ_{i≤400} C(1000, i) / 2^1000, summed exactly with Python
        // integers (fractions.Fraction): 2.7284641560660184e-10.
        let p = mcnemar_exact(400, 600);
        assert!((p / 2.728_464_156_066_018_4e-10 - 1.0).abs() < 1e-9, "{p}");
    }
}
