//! The res5 roi chunk (`--roi-chunk`, [`butd_model::throughput::roi_chunk_for`]) splits res5's
//! batch and must not change a value: on the CPU, every chunk size gives the same bits. (On CUDA
//! cuDNN may choose another algorithm per batch size; this test says nothing about that.)

use butd_testkit as support;

use butd_model::detector::{DetectOptions, Detection, Detector};
use butd_model::Precision;
use tch::Device;

fn run(detector: &Detector, image: &butd_preprocess::ImageBgr, chunk: usize) -> Detection {
    let opts = DetectOptions {
        roi_chunk: Some(chunk),
        dump_activations: true,
        ..DetectOptions::default()
    };
    detector.detect(image, &opts).unwrap()
}

fn bits(t: &tch::Tensor) -> Vec<u32> {
    Vec::<f32>::try_from(t.flatten(0, -1))
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

#[test]
fn every_roi_chunk_gives_the_same_bits_on_the_cpu_in_exact_and_bf16() {
    // chelsea_tiny: 80 rois, the smallest golden image with proposals.
    let path = support::golden_dir()
        .join("images")
        .join("chelsea_tiny.png");
    let image = butd_preprocess::decode_file(&path).unwrap();
    for precision in [Precision::Exact, Precision::Bf16] {
        let weights = support::synthetic_hf_weights();
        let detector = Detector::load_with_precision(&weights, Device::Cpu, precision).unwrap();
        let reference = run(&detector, &image, 80);
        let pool5 = bits(&reference.activations.as_ref().unwrap().pool5_flat);
        for chunk in [1, 7, 32] {
            let d = run(&detector, &image, chunk);
            let a = d.activations.as_ref().unwrap();
            assert!(
                bits(&a.pool5_flat) == pool5,
                "{precision}: pool5_flat, chunk {chunk}"
            );
            assert_eq!(
                d.objects_id, reference.objects_id,
                "{precision}: chunk {chunk}"
            );
            assert_eq!(d.selection.keep, reference.selection.keep);
        }
    }
}

#[test]
fn a_batch_of_images_gives_each_image_the_bits_it_gets_alone_on_the_cpu() {
    // 80 rois, none (chelsea_micro keeps its own error), 300 rois on a 64×1000 input: chunks
    // of 7 and 48 cross the boundaries between images.
    let names = ["chelsea_tiny.png", "chelsea_micro.png", "rocket_strip.png"];
    let images: Vec<_> = names
        .iter()
        .map(|n| {
            let path = support::golden_dir().join("images").join(n);
            let image = butd_preprocess::decode_file(&path).unwrap();
            let input = butd_preprocess::net_input(&image).unwrap();
            (image, input)
        })
        .collect();
    let items: Vec<_> = images.iter().map(|(i, n)| (i, n)).collect();
    for precision in [Precision::Exact, Precision::Bf16] {
        let weights = support::synthetic_hf_weights();
        let detector = Detector::load_with_precision(&weights, Device::Cpu, precision).unwrap();
        let opts = DetectOptions {
            dump_activations: true,
            ..DetectOptions::default()
        };
        let alone: Vec<_> = images
            .iter()
            .map(|(image, input)| detector.detect_prepared(image, input, &opts))
            .collect();
        for chunk in [7, 48] {
            let opts = DetectOptions {
                roi_chunk: Some(chunk),
                ..opts.clone()
            };
            let batch = detector.detect_batch(&items, &opts).unwrap();
            assert_eq!(batch.len(), names.len());
            for ((name, alone), got) in names.iter().zip(&alone).zip(batch) {
                match (alone, got) {
                    (Ok(alone), Ok(got)) => {
                        let (a, g) = (
                            alone.activations.as_ref().unwrap(),
                            got.activations.unwrap(),
                        );
                        assert!(
                            bits(&a.pool5_flat) == bits(&g.pool5_flat),
                            "{precision} {name} chunk {chunk}: pool5_flat"
                        );
                        assert!(bits(&a.cls_prob) == bits(&g.cls_prob), "{name}: cls_prob");
                        assert_eq!(alone.features, got.features, "{name}: features");
                        assert_eq!(alone.selection.keep, got.selection.keep, "{name}: keep");
                        assert_eq!(alone.attrs_id, got.attrs_id, "{name}: attrs_id");
                    }
                    (Err(a), Err(g)) => assert_eq!(a.to_string(), g.to_string(), "{name}"),
                    (a, g) => panic!(
                        "{name}: alone {:?}, batched {:?}",
                        a.as_ref().map(|d| d.rois.len()),
                        g.map(|d| d.rois.len())
                    ),
                }
            }
        }
    }
}
