//! What the fuzz target and the mutation test do with each input: parse it and, when it
//! parses, read every blob and check the reader's invariants. Any panic is a bug.
use butd_caffe::CaffeModel;

/// Parses `bytes`; on success reads every blob; on failure checks the error's location.
/// Returns whether it parsed.
pub fn exercise(bytes: &[u8]) -> bool {
    let model = match CaffeModel::from_vec(bytes.to_vec()) {
        Ok(m) => m,
        Err(e) => {
            let location = e.location().expect("from_vec does no I/O");
            assert!(
                location.offset <= bytes.len() as u64,
                "{e}: offset past the input"
            );
            assert!(!e.to_string().is_empty());
            return false;
        }
    };
    assert_eq!(model.file_len(), bytes.len() as u64);
    for layer in model.layers() {
        assert_eq!(model.layer(&layer.name), Some(layer));
        assert!(layer.offset < model.file_len());
        for blob in &layer.blobs {
            let product = blob
                .shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
            assert_eq!(
                product,
                Some(blob.len() as u64),
                "length is the shape's product"
            );
            assert!(layer.offset < blob.offset && blob.offset < model.file_len());
            assert_eq!(model.to_vec_f32(blob).len(), blob.len());
            if let Some(raw) = model.data_bytes(blob) {
                assert_eq!(raw.len(), blob.len() * blob.dtype.width());
            }
        }
    }
    true
}
