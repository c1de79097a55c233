//! `cargo bench -p butd-preprocess --bench resize`: median time of `net_input` (mean subtraction +
//! resize + CHW blob) per resize path, next to `cv2_resize_f32` alone on the already
//! mean-subtracted float32 image (what `cv2.resize` does in the Python pipeline) and the brief's
//! budget of a few milliseconds for a 600×1000 input.

use std::hint::black_box;
use std::time::{Duration, Instant};

use butd_preprocess::{
    cv2_resize_f32, im_scale, net_input, subtract_mean_f64, ImageBgr, ImageF32, PIXEL_MEANS_BGR,
};

fn synthetic(height: usize, width: usize) -> ImageBgr {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data = (0..height * width * 3)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect();
    ImageBgr {
        height,
        width,
        data,
    }
}

/// Median of `runs` timings of `f`.
fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let cases = [
        (480, 640, "640×480 → 800×600 (×1.25, bilinear up)"),
        (400, 1100, "1100×400 → 1000×364 (×0.909, bilinear down)"),
        (
            1200,
            2000,
            "2000×1200 → 1000×600 (×0.5, INTER_AREA 2×2 path)",
        ),
        (30, 45, "45×30 → 900×600 (×20, bilinear up)"),
        (600, 1000, "1000×600 → 1000×600 (×1, copy)"),
    ];
    println!("{:<52} {:>12} {:>14}", "case", "net_input", "resize only");
    for (h, w, label) in cases {
        let img = synthetic(h, w);
        let net = median(21, || {
            black_box(net_input(black_box(&img)).unwrap());
        });
        let float = ImageF32 {
            height: h,
            width: w,
            data: img
                .data
                .iter()
                .enumerate()
                .map(|(i, &p)| subtract_mean_f64(p, PIXEL_MEANS_BGR[i % 3]))
                .collect(),
        };
        let scale = im_scale(h, w);
        let resize = median(21, || {
            black_box(cv2_resize_f32(black_box(&float), scale).unwrap());
        });
        println!("{label:<52} {:>9.2} ms {:>11.2} ms", ms(net), ms(resize));
    }
}
