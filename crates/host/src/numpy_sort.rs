//! NumPy 1.x `argsort(kind='quicksort')`: the scalar introsort that decides every tie order in
//! Caffe's Python layers (§7.2).
//!
//! Faster R-CNN sorts tied keys in four places (§7.1): the RPN scores, `cpu_nms`'s re-sort, the
//! per-class NMS of generate_tsv and its top-K on `max_conf`. The golden files were made with the
//! classic introsort (AVX-512 sort switched off), so this is a transcription of
//! `aquicksort_<type>` / `aheapsort_<type>` from `npysort/quicksort.c.src`, not a call to any
//! library sort: which of two equal keys comes first depends on the exact sequence of swaps.

/// A key NumPy's `argsort` can order: its `LT` macro (§7.2).
pub trait SortKey: Copy + PartialOrd {
    /// NumPy's `LT(a, b)`: `a < b`, with NaN sorted after every number.
    fn np_lt(self, other: Self) -> bool;
    fn is_nan(self) -> bool;
    /// An integer in the same order as the key, equal for keys that `LT` finds equal (−0 and +0);
    /// `None` for NaN.
    fn order_bits(self) -> Option<u64>;
    /// How many low bits `order_bits` uses.
    const ORDER_BITS: u32;
}

macro_rules! float_sort_key {
    ($t:ty, $bits:ty) => {
        impl SortKey for $t {
            const ORDER_BITS: u32 = <$bits>::BITS;
            #[inline]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline]
            fn np_lt(self, other: Self) -> bool {
                self < other || (other.is_nan() && !self.is_nan())
            }
            #[inline]
            fn order_bits(self) -> Option<u64> {
                if self.is_nan() {
                    return None;
                }
                let b = if self == 0.0 { 0 } else { self.to_bits() };
                let sign = 1 << (<$bits>::BITS - 1);
                // Negative numbers order by inverted magnitude, below every positive one.
                Some(if b & sign != 0 { !b } else { b | sign } as u64)
            }
        }
    };
}
float_sort_key!(f32, u32);
float_sort_key!(f64, u64);

/// Partitions of at most this many elements + 1 are finished by insertion sort
/// (`SMALL_QUICKSORT` = 15 compares `hi - lo`).
const SMALL_QUICKSORT: usize = 15;

/// NumPy's recursion budget: `2 · floor(log2(n))` (`npy_get_msb(n) * 2`), 0 for n ≤ 1.
fn introsort_depth_limit(n: usize) -> i64 {
    if n <= 1 {
        0
    } else {
        2 * i64::from(usize::BITS - 1 - n.leading_zeros())
    }
}

/// Ascending `argsort` exactly as NumPy 1.x's `aquicksort` (§7.2): unstable, with a reproducible
/// tie order. Callers that want descending order reverse it ([`argsort_numpy_desc`]).
///
/// Tie order is the only thing the exact algorithm decides: without ties every correct sort gives
/// the same permutation. So keys are first sorted by a fast library sort, and the introsort runs
/// only when that reveals a tie (or a NaN). This is what keeps generate_tsv's 1600 per-class
/// sorts cheap (§6.2): their columns rarely tie, while the partition loop's branches mispredict
/// on such random keys.
pub fn argsort_np1<T: SortKey>(v: &[T]) -> Vec<usize> {
    argsort_if_distinct(v)
        .unwrap_or_else(|| argsort_np1_with_depth(v, introsort_depth_limit(v.len())))
}

/// The ascending order of `v` if all its keys are distinct and none is NaN, else `None`.
fn argsort_if_distinct<T: SortKey>(v: &[T]) -> Option<Vec<usize>> {
    if T::ORDER_BITS <= 32 && u32::try_from(v.len()).is_ok() {
        // Key and index in one u64: a plain integer sort, about twice as fast as on pairs.
        let mut packed: Vec<u64> = v
            .iter()
            .enumerate()
            .map(|(k, x)| x.order_bits().map(|b| b << 32 | k as u64))
            .collect::<Option<_>>()?;
        packed.sort_unstable();
        if packed.windows(2).any(|w| w[0] >> 32 == w[1] >> 32) {
            return None;
        }
        return Some(
            packed
                .into_iter()
                .map(|p| (p & 0xFFFF_FFFF) as usize)
                .collect(),
        );
    }
    let mut keyed: Vec<(u64, usize)> = v
        .iter()
        .enumerate()
        .map(|(k, x)| x.order_bits().map(|b| (b, k)))
        .collect::<Option<_>>()?;
    keyed.sort_unstable();
    if keyed.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    Some(keyed.into_iter().map(|(_, k)| k).collect())
}

/// `argsort(v)[::-1]`: the descending order every caller in Faster R-CNN uses (§3 steps 5 and 7,
/// §6.2, §6.3). Ties come out in *reversed* introsort order, not by index.
pub fn argsort_numpy_desc<T: SortKey>(v: &[T]) -> Vec<usize> {
    let mut order = argsort_np1(v);
    order.reverse();
    order
}

/// One slot of the sort: the key travels with its index, so that every comparison reads adjacent
/// memory. NumPy permutes the index array and looks the key up each time; since the algorithm
/// only ever compares keys, carrying them along performs the same swaps and gives the same order.
type Slot<T> = (T, usize);

/// The introsort with an explicit initial depth, so that tests can force the heapsort fallback.
fn argsort_np1_with_depth<T: SortKey>(v: &[T], initial_depth: i64) -> Vec<usize> {
    let n = v.len();
    let mut a: Vec<Slot<T>> = v.iter().copied().zip(0..n).collect();
    if v.iter().any(|x| x.is_nan()) {
        introsort(&mut a, initial_depth, T::np_lt);
    } else if n > 1 {
        // Without NaN, `LT` is `<`; the plain comparison keeps the partition loops tight.
        introsort(&mut a, initial_depth, |x: T, y: T| x < y);
    }
    a.into_iter().map(|(_, k)| k).collect()
}

/// `aquicksort`'s loop (§7.2) on `a`, which has at least 2 slots.
fn introsort<T: SortKey>(a: &mut [Slot<T>], initial_depth: i64, lt: impl Fn(T, T) -> bool + Copy) {
    let mut stack: Vec<(usize, usize, i64)> = Vec::new();
    let (mut lo, mut hi, mut depth) = (0usize, a.len() - 1, initial_depth);
    loop {
        if depth < 0 {
            heapsort_slots(&mut a[lo..=hi], lt);
        } else {
            while hi - lo > SMALL_QUICKSORT {
                let mid = lo + (hi - lo) / 2;
                if lt(a[mid].0, a[lo].0) {
                    a.swap(mid, lo);
                }
                if lt(a[hi].0, a[mid].0) {
                    a.swap(hi, mid);
                }
                if lt(a[mid].0, a[lo].0) {
                    a.swap(mid, lo);
                }
                let pivot = a[mid].0;
                a.swap(mid, hi - 1);
                let (mut i, mut j) = (lo, hi - 1);
                loop {
                    i += 1;
                    while lt(a[i].0, pivot) {
                        i += 1;
                    }
                    j -= 1;
                    while lt(pivot, a[j].0) {
                        j -= 1;
                    }
                    if i >= j {
                        break;
                    }
                    a.swap(i, j);
                }
                a.swap(i, hi - 1);
                depth -= 1;
                // Push the larger side, go on with the smaller one; both carry the new depth.
                if i - lo < hi - i {
                    stack.push((i + 1, hi, depth));
                    hi = i - 1;
                } else {
                    stack.push((lo, i - 1, depth));
                    lo = i + 1;
                }
            }
            insertion_sort_slots(&mut a[lo..=hi], lt);
        }
        match stack.pop() {
            Some(range) => (lo, hi, depth) = range,
            None => return,
        }
    }
}

/// Straight insertion sort of a small range (stable within it).
fn insertion_sort_slots<T: SortKey>(a: &mut [Slot<T>], lt: impl Fn(T, T) -> bool) {
    for p in 1..a.len() {
        let x = a[p];
        let mut q = p;
        while q > 0 && lt(x.0, a[q - 1].0) {
            a[q] = a[q - 1];
            q -= 1;
        }
        a[q] = x;
    }
}

/// NumPy's `aheapsort` on one range (the introsort fallback when the depth budget is spent).
/// Written 1-based like the original: slot k of the heap is `a[k - 1]`.
fn heapsort_slots<T: SortKey>(a: &mut [Slot<T>], lt: impl Fn(T, T) -> bool) {
    let sift_down = |a: &mut [Slot<T>], mut i: usize, m: usize, tmp: Slot<T>| {
        let mut j = 2 * i;
        while j <= m {
            if j < m && lt(a[j - 1].0, a[j].0) {
                j += 1;
            }
            if lt(tmp.0, a[j - 1].0) {
                a[i - 1] = a[j - 1];
                i = j;
                j *= 2;
            } else {
                break;
            }
        }
        a[i - 1] = tmp;
    };
    let mut m = a.len();
    for l in (1..=m / 2).rev() {
        let tmp = a[l - 1];
        sift_down(a, l, m, tmp);
    }
    while m > 1 {
        let tmp = a[m - 1];
        a[m - 1] = a[0];
        m -= 1;
        sift_down(a, 1, m, tmp);
    }
}

/// How many keys share their exact value with another key, and how many distinct values are
/// shared: the golden `stats` tie figures (`rpn_top6000_tied`, `max_conf_tied`, …), which say
/// where the tie order of [`argsort_np1`] can matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TieCounts {
    pub tied: usize,
    pub tie_values: usize,
}

/// Counts the ties of `v` (equality as NumPy's sort sees it: neither key is less).
pub fn tie_counts<T: SortKey>(v: &[T]) -> TieCounts {
    let order = argsort_np1(v);
    let mut counts = TieCounts::default();
    let mut run = 1usize;
    for w in 0..order.len() {
        let ends_run = w + 1 == order.len() || v[order[w]].np_lt(v[order[w + 1]]);
        if ends_run {
            if run > 1 {
                counts.tied += run;
                counts.tie_values += 1;
            }
            run = 1;
        } else {
            run += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream (xorshift), so the tests need no dependency.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    fn is_sorted_by_key<T: SortKey>(v: &[T], order: &[usize]) -> bool {
        order.windows(2).all(|w| !v[w[1]].np_lt(v[w[0]]))
    }

    fn is_permutation(order: &[usize]) -> bool {
        let mut seen = vec![false; order.len()];
        order
            .iter()
            .all(|&k| k < seen.len() && !std::mem::replace(&mut seen[k], true))
    }

    #[test]
    fn depth_limit_is_twice_floor_log2() {
        assert_eq!(introsort_depth_limit(0), 0);
        assert_eq!(introsort_depth_limit(1), 0);
        assert_eq!(introsort_depth_limit(2), 2);
        assert_eq!(introsort_depth_limit(3), 2);
        assert_eq!(introsort_depth_limit(16), 8);
        assert_eq!(introsort_depth_limit(6000), 24);
    }

    /// §7.2 test vector: 20 equal keys.
    #[test]
    fn twenty_equal_keys_match_numpy_1x() {
        let v = [0.5f32; 20];
        let mut expected = vec![0usize];
        expected.extend((1..=17).rev());
        expected.extend([18, 19]);
        assert_eq!(argsort_np1(&v), expected);
        let mut desc = vec![19usize, 18];
        desc.extend(1..=17);
        desc.push(0);
        assert_eq!(argsort_numpy_desc(&v), desc);
        assert_eq!(argsort_numpy_desc(&[0.5f64; 20]), desc);
    }

    /// §7.2: up to 16 keys are insertion-sorted, hence stable; reversed, ties come out highest
    /// index first.
    #[test]
    fn sixteen_or_fewer_keys_sort_stably() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for n in 0..=16 {
            let v: Vec<f32> = (0..n).map(|_| (xorshift(&mut state) % 4) as f32).collect();
            let mut stable: Vec<usize> = (0..n).collect();
            stable.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap());
            assert_eq!(argsort_np1(&v), stable, "n = {n}, v = {v:?}");
            let desc = argsort_numpy_desc(&v);
            for w in desc.windows(2) {
                if v[w[0]] == v[w[1]] {
                    assert!(
                        w[0] > w[1],
                        "ties must come out highest index first: {desc:?}"
                    );
                }
            }
        }
    }

    /// With the initial depth forced below zero the whole range goes through `aheapsort`; 17
    /// equal keys through the heap give a tie order neither insertion sort nor the partition
    /// loop would give (worked by hand from the heapsort pseudo-code of §7.2).
    #[test]
    fn forced_depth_uses_the_heapsort_fallback() {
        let v = [1.0f32; 4];
        // Build: no moves (nothing is less). Pops: [0,1,2,3] → tmp=3, a[4]=0 → sift 3 to top;
        // [3,1,2 | 0] → tmp=2, a[3]=3 → [2,1 | 3,0] → tmp=1, a[2]=2 → [1 | 2,3,0].
        assert_eq!(argsort_np1_with_depth(&v, -1), vec![1, 2, 3, 0]);
        assert_eq!(argsort_np1_with_depth(&v, 0), vec![0, 1, 2, 3]);
        let heap = argsort_np1_with_depth(&[2.0f32, 1.0, 3.0, 0.0, 1.0], -1);
        assert_eq!(heap, vec![3, 4, 1, 0, 2]);
    }

    /// Every depth, forced or natural, gives a sorted permutation on tie-heavy and adversarial
    /// inputs (the partition loop, the fallback and the mixed paths all sort).
    #[test]
    fn every_path_sorts() {
        let mut state = 0x1234_5678_9ABC_DEF1u64;
        for &n in &[17usize, 18, 31, 64, 100, 257, 1000, 6000] {
            for modulus in [2u64, 7, 1 << 20] {
                let v: Vec<f64> = (0..n)
                    .map(|_| (xorshift(&mut state) % modulus) as f64)
                    .collect();
                for depth in [-1, 0, 1, 2, introsort_depth_limit(n)] {
                    let order = argsort_np1_with_depth(&v, depth);
                    assert!(is_permutation(&order));
                    assert!(
                        is_sorted_by_key(&v, &order),
                        "n={n} mod={modulus} depth={depth}"
                    );
                }
            }
            let ascending: Vec<f32> = (0..n).map(|k| k as f32).collect();
            assert_eq!(argsort_np1(&ascending), (0..n).collect::<Vec<_>>());
            let descending: Vec<f32> = (0..n).rev().map(|k| k as f32).collect();
            assert_eq!(argsort_np1(&descending), (0..n).rev().collect::<Vec<_>>());
        }
    }

    /// Distinct random keys of both types, both signs and a wide range of magnitudes.
    fn distinct_keys(n: usize, state: &mut u64) -> Vec<f32> {
        let mut seen = std::collections::HashSet::new();
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let x = f32::from_bits(0x2000_0000 + (xorshift(state) as u32 % 0x3F00_0000));
            let x = if xorshift(state) & 1 == 0 { x } else { -x };
            if seen.insert(x.to_bits()) {
                v.push(x);
            }
        }
        v
    }

    /// The fast path for distinct keys gives the introsort's order, and declines ties, ±0 and NaN.
    #[test]
    fn distinct_keys_fast_path_equals_introsort() {
        let mut state = 0x0BAD_CAFE_u64;
        for n in [2usize, 17, 300, 6000] {
            let v = distinct_keys(n, &mut state);
            let exact = argsort_np1_with_depth(&v, introsort_depth_limit(n));
            assert_eq!(
                argsort_if_distinct(&v).expect("distinct"),
                exact,
                "f32, n = {n}"
            );
            let w: Vec<f64> = v.iter().map(|&x| f64::from(x) * -3.0).collect();
            let exact = argsort_np1_with_depth(&w, introsort_depth_limit(n));
            assert_eq!(
                argsort_if_distinct(&w).expect("distinct"),
                exact,
                "f64, n = {n}"
            );
        }
        assert!(argsort_if_distinct(&[1.0f32, 2.0, 1.0]).is_none());
        assert!(argsort_if_distinct(&[1.0f64, 2.0, 1.0]).is_none());
        assert!(argsort_if_distinct(&[0.0f32, -0.0]).is_none());
        assert!(argsort_if_distinct(&[f64::NAN, 1.0]).is_none());
        let signs = [-1.0f32, -2.0, 0.0, 1e-45, -1e-45];
        assert_eq!(argsort_if_distinct(&signs), Some(vec![1, 0, 4, 2, 3]));
    }

    #[test]
    fn nan_sorts_last() {
        let v = [f32::NAN, 1.0, f32::NAN, 0.0];
        let order = argsort_np1(&v);
        assert_eq!(&order[..2], &[3, 1]);
        assert!(v[order[2]].is_nan() && v[order[3]].is_nan());
    }

    #[test]
    fn tie_counts_count_members_and_values() {
        let v = [3.0f32, 1.0, 3.0, 2.0, 1.0, 3.0, 0.0];
        assert_eq!(
            tie_counts(&v),
            TieCounts {
                tied: 5,
                tie_values: 2
            }
        );
        assert_eq!(tie_counts::<f64>(&[]), TieCounts::default());
        assert_eq!(tie_counts(&[1.0f64, 2.0]), TieCounts::default());
    }
}
