//! The values of the synthetic BUTD model recomputed independently of the reader, from the
//! recipe of `golden/SYNTHETIC.md` §3 and `synthetic_constants.json`.
use crate::model_file::shared_dir;

pub struct LayerSpec {
    pub name: String,
    pub kind: String,
    pub bottom: Vec<String>,
    pub top: Vec<String>,
    pub blobs: Vec<BlobSpec>,
}

pub struct BlobSpec {
    pub shape: Vec<usize>,
    pub a: f32,
    pub b: f32,
    /// `(index, f32 bits)` overrides.
    pub set: Vec<(usize, u32)>,
}

/// The `layers` table of `synthetic_constants.json`.
pub fn constants() -> Vec<LayerSpec> {
    let path = shared_dir().join("golden/synthetic_constants.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let bits = |v: &serde_json::Value| {
        u32::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    };
    json["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| LayerSpec {
            name: l["name"].as_str().unwrap().to_owned(),
            kind: l["type"].as_str().unwrap().to_owned(),
            bottom: strings(&l["bottom"]),
            top: strings(&l["top"]),
            blobs: l["blobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| BlobSpec {
                    shape: b["shape"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                    a: f32::from_bits(bits(&b["a"])),
                    b: f32::from_bits(bits(&b["b"])),
                    set: b
                        .get("set")
                        .map(|s| {
                            s.as_array()
                                .unwrap()
                                .iter()
                                .map(|p| (p[0].as_u64().unwrap() as usize, bits(&p[1])))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect(),
        })
        .collect()
}

pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn splitmix64(s: u64) -> u64 {
    let z = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of blob `j` of layer `layer`: FNV-1a-64 of `"{layer}/{j}"`.
pub fn blob_key(layer: &str, j: usize) -> u64 {
    fnv1a64(format!("{layer}/{j}").as_bytes())
}

/// `u_i`: the uniform in [-1, 1) of value `i` (exact in f32).
pub fn uniform(key: u64, i: u64) -> f32 {
    let x = splitmix64(key.wrapping_add(i));
    ((x >> 40) as i32 - 8_388_608) as f32 * (1.0 / 8_388_608.0)
}

/// Value `i` before overrides: `fl32(fl32(u * a) + b)`, two separately rounded f32 operations
/// (no FMA).
pub fn recipe_value(key: u64, i: u64, a: f32, b: f32) -> f32 {
    let v = uniform(key, i) * a;
    v + b
}

/// Every value of blob `j` of `layer`, overrides applied.
pub fn expected_values(layer: &str, j: usize, spec: &BlobSpec) -> Vec<f32> {
    let key = blob_key(layer, j);
    let count: usize = spec.shape.iter().product();
    let mut values: Vec<f32> = (0..count as u64)
        .map(|i| recipe_value(key, i, spec.a, spec.b))
        .collect();
    for &(index, bits) in &spec.set {
        values[index] = f32::from_bits(bits);
    }
    values
}
