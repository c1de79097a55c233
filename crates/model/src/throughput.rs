//! Keeping a device busy over many images: decoding and preprocessing on a CPU thread while the
//! device runs the previous image ([`prefetch`]), the res5 roi chunk sized to the device's free
//! memory ([`roi_chunk_for`]), and a CUDA out-of-memory retried with smaller chunks
//! ([`detect_with_oom_retry`]) instead of ending the run.
//!
//! ```
//! use butd_model::throughput::prefetch;
//! // Items are produced on a worker thread, at most 2 ahead, and come back in order.
//! let squares: Vec<(u32, u32)> = prefetch(vec![1, 2, 3], 2, |n| n * n).collect();
//! assert_eq!(squares, [(1, 1), (2, 4), (3, 9)]);
//! ```
//!
//! # Design
//! None of this changes a value: the queue only moves host work earlier, and the roi chunk
//! only splits res5's batch. On the CPU the chunk does not change the results bit for bit
//! (`tests/chunking.rs`); on CUDA cuDNN may pick another algorithm for another batch size, so
//! the chunk a run used is the one [`roi_chunk_for`] derives from the free memory, and a retry
//! after an out-of-memory error halves it.

use std::sync::mpsc::sync_channel;

use butd_preprocess::{net_input, ImageBgr, NetInput};
use tch::Device;

use crate::detector::{default_roi_chunk, DetectError, DetectOptions, Detection, Detector};
use crate::heads::RES5;
use crate::roi_pool::POOLED_SIZE;

/// Runs `work` on each item on a worker thread, at most `depth` results ahead of the consumer
/// (a bounded queue, so memory stays bounded however slow the device is), and yields
/// `(item, result)` in the items' order. The worker stops when the iterator is dropped.
pub fn prefetch<T, R, F>(items: Vec<T>, depth: usize, work: F) -> impl Iterator<Item = (T, R)>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(&T) -> R + Send + 'static,
{
    let (tx, rx) = sync_channel(depth.max(1));
    std::thread::spawn(move || {
        for item in items {
            let result = work(&item);
            if tx.send((item, result)).is_err() {
                return; // the consumer is gone
            }
        }
    });
    rx.into_iter()
}

/// An image decoded and made into the network's input on a [`prefetch`] worker.
pub struct Prepared {
    pub image: ImageBgr,
    pub input: NetInput,
}

/// Decodes `path` and makes the network input (§1): the host work [`prefetch`] moves off the
/// device's thread.
pub fn prepare(path: &std::path::Path) -> Result<Prepared, butd_preprocess::Error> {
    let image = butd_preprocess::decode_file(path)?;
    let input = net_input(&image)?;
    Ok(Prepared { image, input })
}

/// Free and total memory of the current CUDA device in bytes (`cudaMemGetInfo`, looked up in
/// the CUDA runtime that libtorch_cuda loaded); `None` without one. tch 0.24 exposes none of
/// PyTorch's allocator statistics.
pub fn cuda_memory() -> Option<(u64, u64)> {
    use std::ffi::{c_char, c_int, c_void};
    extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }
    // SAFETY: RTLD_DEFAULT (null on glibc) searches the loaded libraries; the symbol, when
    // found, is the CUDA runtime's `cudaError_t cudaMemGetInfo(size_t*, size_t*)`.
    unsafe {
        let f = dlsym(std::ptr::null_mut(), c"cudaMemGetInfo".as_ptr());
        if f.is_null() {
            return None;
        }
        let f: extern "C" fn(*mut usize, *mut usize) -> c_int = std::mem::transmute(f);
        let (mut free, mut total) = (0usize, 0usize);
        (f(&mut free, &mut total) == 0).then_some((free as u64, total as u64))
    }
}

/// Bytes res5 keeps alive per roi at its widest point, in f32: the block input (1024 or 2048
/// channels), the two 512-channel intermediates and the 2048-channel sum and shortcut, on the
/// 14×14 pooled grid.
pub fn res5_bytes_per_roi() -> u64 {
    let plane = (POOLED_SIZE * POOLED_SIZE) as u64;
    let channels = (RES5.out_channels * 2 + RES5.mid_channels * 2 + RES5.out_channels) as u64;
    channels * plane * 4
}

/// Largest roi chunk that keeps res5 within half of `free_bytes` (the rest for the trunk's
/// activations, the caching allocator's slack and cuDNN's workspaces), between 1 and 300 (the
/// most rois an image has).
pub fn roi_chunk_for_memory(free_bytes: u64) -> usize {
    ((free_bytes / 2) / res5_bytes_per_roi()).clamp(1, 300) as usize
}

/// The roi chunk for a run: the CPU's default, or on CUDA what the free memory allows.
pub fn roi_chunk_for(device: Device) -> usize {
    match (device, cuda_memory()) {
        (Device::Cuda(_), Some((free, _))) => roi_chunk_for_memory(free),
        _ => default_roi_chunk(device),
    }
}

/// Whether a libtorch error message is an allocation failure (CUDA's caching allocator says
/// "CUDA out of memory"; the CPU allocator "DefaultCPUAllocator: not enough memory").
pub fn is_out_of_memory(message: &str) -> bool {
    message.contains("out of memory") || message.contains("not enough memory")
}

/// [`Detector::detect_prepared`] that survives running out of device memory: an attempt that
/// fails with an out-of-memory error (libtorch's exception, which `detect` turns into
/// [`DetectError::Internal`]) is retried with half the roi chunk, down to 1, then reported as
/// [`DetectError::OutOfMemory`]: the run writes it to `failures.tsv` and goes on.
pub fn detect_with_oom_retry(
    detector: &Detector,
    image: &ImageBgr,
    input: &NetInput,
    opts: &DetectOptions,
) -> Result<Detection, DetectError> {
    let first = opts
        .roi_chunk
        .unwrap_or_else(|| roi_chunk_for(detector.device()));
    retry_halving(first, |chunk| {
        let opts = DetectOptions {
            roi_chunk: Some(chunk),
            ..opts.clone()
        };
        detector.detect_prepared(image, input, &opts)
    })
}

/// [`Detector::detect_batch`], and where its shared part fails (out of memory, or another
/// libtorch exception), each image again on its own with [`detect_with_oom_retry`], so that
/// every image gets its own result and one image cannot take the others down with it.
pub fn detect_batch_with_fallback(
    detector: &Detector,
    items: &[(&ImageBgr, &NetInput)],
    opts: &DetectOptions,
) -> Vec<Result<Detection, DetectError>> {
    detector.detect_batch(items, opts).unwrap_or_else(|_| {
        items
            .iter()
            .map(|(image, input)| detect_with_oom_retry(detector, image, input, opts))
            .collect()
    })
}

/// Calls `attempt(chunk)`, halving `chunk` after each out-of-memory failure.
pub fn retry_halving<T>(
    mut chunk: usize,
    mut attempt: impl FnMut(usize) -> Result<T, DetectError>,
) -> Result<T, DetectError> {
    chunk = chunk.max(1);
    loop {
        let message = match attempt(chunk) {
            Err(DetectError::Internal(m)) if is_out_of_memory(&m) => m,
            Err(DetectError::Torch(e)) if is_out_of_memory(&e.to_string()) => e.to_string(),
            result => return result,
        };
        if chunk == 1 {
            return Err(DetectError::OutOfMemory { chunk, message });
        }
        chunk /= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_keeps_the_order_and_stops_when_dropped() {
        let out: Vec<(usize, usize)> = prefetch((0..50).collect(), 3, |n| n + 1).collect();
        assert_eq!(out, (0..50).map(|n| (n, n + 1)).collect::<Vec<_>>());
        let mut it = prefetch((0..1000).collect::<Vec<usize>>(), 2, |n| *n);
        assert_eq!(it.next(), Some((0, 0)));
        drop(it); // the worker ends on its next send
    }

    #[test]
    fn the_chunk_follows_free_memory_within_1_and_300() {
        let per_roi = res5_bytes_per_roi();
        assert_eq!(per_roi, (2048 * 3 + 512 * 2) * 196 * 4);
        assert_eq!(roi_chunk_for_memory(80_000_000_000), 300);
        assert_eq!(roi_chunk_for_memory(2 * 64 * per_roi), 64);
        assert_eq!(roi_chunk_for_memory(0), 1);
        assert_eq!(roi_chunk_for(Device::Cpu), 32);
    }

    fn oom() -> DetectError {
        DetectError::Internal("CUDA out of memory. Tried to allocate 2.00 GiB".into())
    }

    #[test]
    fn an_out_of_memory_error_is_retried_with_half_the_chunk() {
        let mut tried = Vec::new();
        let got = retry_halving(300, |chunk| {
            tried.push(chunk);
            if chunk > 40 {
                return Err(oom());
            }
            Ok(chunk)
        });
        assert_eq!(got.unwrap(), 37);
        assert_eq!(tried, [300, 150, 75, 37]);
    }

    #[test]
    fn an_image_that_never_fits_becomes_an_error_not_a_crash() {
        match retry_halving(4, |_| -> Result<(), DetectError> { Err(oom()) }) {
            Err(e @ DetectError::OutOfMemory { chunk: 1, .. }) => {
                assert!(e.to_string().contains("out of memory"), "{e}")
            }
            other => panic!("expected OutOfMemory, got {:?}", other.err()),
        }
    }

    #[test]
    fn other_errors_are_not_retried() {
        let mut calls = 0;
        let got = retry_halving(8, |_| -> Result<(), DetectError> {
            calls += 1;
            Err(DetectError::Internal("index out of range".into()))
        });
        assert!(matches!(got, Err(DetectError::Internal(_))) && calls == 1);
    }
}
