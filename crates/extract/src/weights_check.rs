//! A look at `--weights` before any image is read: a Caffe model (the file a newcomer has) or
//! anything else that is not safetensors is refused at once with the command that converts it,
//! not after the folders are walked with safetensors' bare "HeaderTooLarge".
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};

pub fn check(path: &Path) -> anyhow::Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("--weights {}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut head = [0u8; 8];
    let header_fits =
        file.read_exact(&mut head).is_ok() && u64::from_le_bytes(head).saturating_add(8) <= len;
    let caffe = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("caffemodel"));
    if caffe || !header_fits {
        bail!(
            "--weights {} is not a safetensors file{}; butd extract reads the Hugging Face layout \
             that `butd convert` writes: butd convert {} --map caffe-to-hf-frcnn -o weights.safetensors",
            path.display(),
            if caffe { " but a Caffe model" } else { "" },
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caffemodel_is_refused_with_the_convert_command() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.caffemodel");
        std::fs::write(&model, b"\x0a\x0aResNet-101").unwrap();
        let err = check(&model).unwrap_err().to_string();
        assert!(
            err.contains("butd convert") && err.contains("Caffe model"),
            "{err}"
        );
        let other = dir.path().join("w.bin");
        std::fs::write(&other, b"\xff\xff\xff\xff\xff\xff\xff\x7f").unwrap();
        assert!(check(&other)
            .unwrap_err()
            .to_string()
            .contains("not a safetensors file"));
        let st = dir.path().join("w.safetensors");
        std::fs::write(&st, b"\x02\x00\x00\x00\x00\x00\x00\x00{}").unwrap();
        assert!(check(&st).is_ok());
    }
}
