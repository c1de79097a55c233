//! Times the host-side Caffe layers on every golden image: the proposal layer (§3) and
//! generate_tsv's selection (§6.2–6.3), and checks each result against the golden tensors.
//!
//! For the selection it also times the naive per-class loop (one direct `cpu_nms` per class, as
//! generate_tsv does) to show what the shared suppression matrix saves.
//!
//! `cargo run --release -p butd-host --example bench_host_layers [-- ITERATIONS]`
//! (golden files from the repository's `golden/`).

#[path = "../tests/host_golden/mod.rs"]
mod host_golden;

use std::time::Instant;

use butd_host::anchors::NUM_ANCHORS;
use butd_host::nms::cpu_nms;
use butd_host::proposals::{proposal_layer, ProposalConfig};
use butd_host::select::{select_boxes, unscale_boxes, SelectConfig};

/// Median wall time of `iterations` runs, in milliseconds.
fn median_ms<T>(iterations: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut times = Vec::with_capacity(iterations);
    let mut last = None;
    for _ in 0..iterations {
        let start = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    (
        times[times.len() / 2],
        last.expect("at least one iteration"),
    )
}

/// generate_tsv's literal loop: one `cpu_nms` per class, overlaps recomputed every time.
fn naive_max_conf(boxes: &[[f32; 4]], cls_prob: &[f32], num_classes: usize) -> Vec<f64> {
    let mut best = vec![0.0f64; boxes.len()];
    for c in 1..num_classes {
        let column: Vec<f32> = (0..boxes.len())
            .map(|i| cls_prob[i * num_classes + c])
            .collect();
        for i in cpu_nms(boxes, &column, 0.3, usize::MAX) {
            best[i] = best[i].max(f64::from(column[i]));
        }
    }
    best
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .map_or(20, |a| a.parse().expect("ITERATIONS"));
    println!("host layers, median of {iterations} runs, single thread");
    println!(
        "{:<16} {:>7} {:>6} {:>11} {:>6} {:>12} {:>12} {:>7}",
        "image", "anchors", "rois", "proposal ms", "rois=", "select ms", "naive ms", "select="
    );
    for g in host_golden::all_golden() {
        let (shape, prob) = g.f32("rpn_cls_prob_reshape");
        let (h, w) = (shape[2], shape[3]);
        let (_, deltas) = g.f32("rpn_bbox_pred");
        let (_, info) = g.f32("im_info");
        let fg = &prob[NUM_ANCHORS * h * w..];
        let cfg = ProposalConfig::default();
        let (prop_ms, props) = median_ms(iterations, || {
            proposal_layer(fg, &deltas, h, w, [info[0], info[1], info[2]], &cfg)
        });
        let rois_equal = props.rois == g.rois();
        let select = g.has("cls_prob").then(|| {
            let scale: f64 = g.meta("im_scale").parse().expect("im_scale");
            let boxes = unscale_boxes(&g.rois(), scale);
            let (cshape, cls_prob) = g.f32("cls_prob");
            let (ms, sel) = median_ms(iterations, || {
                select_boxes(&boxes, &cls_prob, cshape[1], &SelectConfig::default())
            });
            let (naive_ms, naive) = median_ms(iterations.min(3), || {
                naive_max_conf(&boxes, &cls_prob, cshape[1])
            });
            let (_, keep) = g.i64("keep");
            let (_, max_conf) = g.f64("max_conf");
            let equal = sel.max_conf == max_conf
                && naive == max_conf
                && sel.keep.iter().map(|&k| k as i64).eq(keep.iter().copied());
            (ms, naive_ms, equal)
        });
        let yes_no = |b: bool| if b { "yes" } else { "NO" };
        let (sel_ms, naive_ms, sel_eq) = match select {
            Some((ms, naive, eq)) => (format!("{ms:.2}"), format!("{naive:.2}"), yes_no(eq)),
            None => ("-".into(), "-".into(), "-"),
        };
        println!(
            "{:<16} {:>7} {:>6} {:>11.2} {:>6} {:>12} {:>12} {:>7}",
            g.name,
            props.stats.num_anchors,
            props.rois.len(),
            prop_ms,
            yes_no(rois_equal),
            sel_ms,
            naive_ms,
            sel_eq
        );
    }
}
