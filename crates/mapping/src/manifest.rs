//! The target layout: tensor names in order, with shapes and dtypes. Read from a manifest JSON
//! (`{"keys": [{"name", "shape", "dtype"}, ...]}`, as `mappings/hf-frcnn.manifest.json`) or from
//! the header of a safetensors file (ordered by data offset).

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// A tensor dtype, spelled as safetensors spells it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dtype {
    F32,
    F16,
    I64,
    Other(String),
}

impl Dtype {
    /// Accepts the torch spelling (`float32`) and the safetensors one (`F32`).
    pub fn parse(s: &str) -> Self {
        match s {
            "float32" | "F32" | "torch.float32" => Dtype::F32,
            "float16" | "F16" | "torch.float16" => Dtype::F16,
            "int64" | "I64" | "torch.int64" => Dtype::I64,
            other => Dtype::Other(other.to_string()),
        }
    }

    pub fn safetensors_name(&self) -> &str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::I64 => "I64",
            Dtype::Other(s) => s,
        }
    }

    /// Bytes per element, for the dtypes this crate writes.
    pub fn size(&self) -> Option<usize> {
        match self {
            Dtype::F32 => Some(4),
            Dtype::F16 => Some(2),
            Dtype::I64 => Some(8),
            Dtype::Other(_) => None,
        }
    }

    /// Whether a tensor produced as `self` satisfies a target entry of dtype `target`:
    /// the same dtype, or a float target for a float tensor (`--dtype f16` narrows on writing).
    pub fn fits(&self, target: &Dtype) -> bool {
        self == target || (self == &Dtype::F32 && target == &Dtype::F16)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dtype::F32 => "float32",
            Dtype::F16 => "float16",
            Dtype::I64 => "int64",
            Dtype::Other(s) => s,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: Dtype,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it came from, for messages.
    pub origin: String,
    pub entries: Vec<Entry>,
}

impl Manifest {
    /// A manifest JSON file, or the header of a safetensors file (anything not ending in `.json`).
    pub fn load(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(path).map_err(io)?;
            Self::from_json(&text, &path.display().to_string())
        } else {
            let mut file = std::fs::File::open(path).map_err(io)?;
            Self::from_safetensors_header(&mut file, &path.display().to_string())
        }
    }

    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let bad = |message: String| Error::Manifest {
            origin: origin.to_string(),
            message,
        };
        let doc: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("expected an object with a `keys` array".into()))?;
        let entries = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let name = k.get("name").and_then(Value::as_str);
                let dtype = k.get("dtype").and_then(Value::as_str);
                let shape = k.get("shape").and_then(shape_of);
                match (name, shape, dtype) {
                    (Some(n), Some(s), Some(d)) => Ok(Entry {
                        name: n.to_string(),
                        shape: s,
                        dtype: Dtype::parse(d),
                    }),
                    _ => Err(bad(format!(
                        "keys[{i}]: expected `name`, `shape` and `dtype`"
                    ))),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            origin: origin.to_string(),
            entries,
        })
    }

    /// Reads only the header: 8-byte little-endian length, then that much JSON.
    pub fn from_safetensors_header(reader: &mut impl Read, origin: &str) -> Result<Self> {
        let bad = |message: String| Error::Manifest {
            origin: origin.to_string(),
            message,
        };
        let mut len = [0u8; 8];
        reader
            .read_exact(&mut len)
            .map_err(|e| bad(format!("no safetensors header: {e}")))?;
        let len = u64::from_le_bytes(len);
        if len > 100 << 20 {
            return Err(bad(format!(
                "header length {len} is implausible for safetensors"
            )));
        }
        let mut header = vec![0u8; len as usize];
        reader
            .read_exact(&mut header)
            .map_err(|e| bad(format!("truncated header: {e}")))?;
        let doc: Value =
            serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
        let map = doc
            .as_object()
            .ok_or_else(|| bad("header is not a JSON object".into()))?;
        let mut entries = Vec::with_capacity(map.len());
        for (name, info) in map.iter().filter(|(n, _)| *n != "__metadata__") {
            let dtype = info.get("dtype").and_then(Value::as_str);
            let shape = info.get("shape").and_then(shape_of);
            let start = info
                .get("data_offsets")
                .and_then(|o| o.get(0))
                .and_then(Value::as_u64);
            match (shape, dtype, start) {
                (Some(s), Some(d), Some(o)) => entries.push((
                    o,
                    Entry {
                        name: name.clone(),
                        shape: s,
                        dtype: Dtype::parse(d),
                    },
                )),
                _ => {
                    return Err(bad(format!(
                        "`{name}`: expected `dtype`, `shape`, `data_offsets`"
                    )))
                }
            }
        }
        entries.sort_by_key(|(o, _)| *o);
        Ok(Self {
            origin: origin.to_string(),
            entries: entries.into_iter().map(|(_, e)| e).collect(),
        })
    }
}

fn shape_of(v: &Value) -> Option<Vec<usize>> {
    v.as_array()?
        .iter()
        .map(|d| d.as_u64().map(|d| d as usize))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_json_and_rejects_incomplete_entries() {
        let m = Manifest::from_json(
            r#"{"keys":[{"name":"a","shape":[2,3],"dtype":"float32"},{"name":"n","shape":[],"dtype":"int64"}]}"#,
            "t",
        )
        .unwrap();
        assert_eq!(
            m.entries[1],
            Entry {
                name: "n".into(),
                shape: vec![],
                dtype: Dtype::I64
            }
        );
        assert!(Manifest::from_json(r#"{"keys":[{"name":"a"}]}"#, "t").is_err());
    }

    #[test]
    fn safetensors_header_is_ordered_by_offset() {
        let h = br#"{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"__metadata__":{"x":"y"},"a":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}"#;
        let mut bytes = (h.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(h);
        let m = Manifest::from_safetensors_header(&mut bytes.as_slice(), "t").unwrap();
        let names: Vec<_> = m.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }
}
