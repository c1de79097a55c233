//! Which images a run covers and the id (record file name) of each: folders walked
//! recursively, file lists, COCO-style JSON; the id policies; `--shard i/n`.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// File extensions taken when a folder is walked (case-insensitive). Files named one by one
/// are taken whatever their name.
const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// How an image's id, and so its record's name `<id>.safetensors`, is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IdPolicy {
    /// The file name without its extension (`COCO_val2014_000000000042`).
    Stem,
    /// The stem's trailing digits without leading zeros (`42`), as `butd verify --id-policy
    /// int-suffix` and integer-keyed formats (BUTD TSV, VQA HDF5) pair them.
    IntSuffix,
    /// The `id` of the image's entry in the `--coco` JSON.
    Coco,
}

/// One image of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub path: PathBuf,
    pub id: String,
}

/// An image path and, from a COCO JSON, its id.
struct Source {
    path: PathBuf,
    coco_id: Option<String>,
}

fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The images under `dir`, recursively, in name order (symbolic links followed). `visited`
/// holds the (device, inode) of every folder entered, so a link back to a folder already walked
/// (`ln -s . loop`) is skipped instead of walked forever.
fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut HashSet<(u64, u64)>,
) -> anyhow::Result<()> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read the folder {}", dir.display()))?;
    if !visited.insert((meta.dev(), meta.ino())) {
        eprintln!(
            "warning: {} is a folder already walked (a symbolic link loop); skipped",
            dir.display()
        );
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the folder {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot list the folder {}", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out, visited)?;
        } else if has_image_extension(&path) {
            // FIFOs, devices and sockets are taken too: decoding refuses them without opening
            // them for a blocking read (butd_preprocess::decode_file), so each gets a failure line.
            out.push(path);
        }
    }
    Ok(())
}

/// `path` relative to `root` unless it is absolute.
fn under(root: Option<&Path>, path: &str) -> PathBuf {
    match root {
        Some(root) if Path::new(path).is_relative() => root.join(path),
        _ => PathBuf::from(path),
    }
}

/// A file list: one path per line; blank lines and lines starting with `#` are skipped. `-`
/// reads the list from stdin (`find … | butd extract --list - …`).
fn read_list(list: &Path, root: Option<&Path>) -> anyhow::Result<Vec<Source>> {
    let text = if list == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read the file list from stdin")?
    } else {
        std::fs::read_to_string(list)
            .with_context(|| format!("cannot read the file list {}", list.display()))?
    };
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| Source {
            path: under(root, l),
            coco_id: None,
        })
        .collect())
}

/// COCO-style annotations: `{"images": [{"id": 42, "file_name": "…"}, …]}`.
fn read_coco(json: &Path, root: Option<&Path>) -> anyhow::Result<Vec<Source>> {
    let bytes = std::fs::read(json).with_context(|| format!("cannot read {}", json.display()))?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", json.display()))?;
    let images = value
        .get("images")
        .and_then(|v| v.as_array())
        .with_context(|| format!("{}: expected a top-level \"images\" array", json.display()))?;
    images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let field = |name: &str| {
                image
                    .get(name)
                    .with_context(|| format!("{}: images[{i}] has no \"{name}\"", json.display()))
            };
            let file_name = field("file_name")?.as_str().with_context(|| {
                format!("{}: images[{i}].file_name is not a string", json.display())
            })?;
            let id = match field("id")? {
                serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                other => bail!(
                    "{}: images[{i}].id is {other}, expected an integer or a string",
                    json.display()
                ),
            };
            Ok(Source {
                path: under(root, file_name),
                coco_id: Some(id),
            })
        })
        .collect()
}

/// Where the run's images come from (the command-line options).
pub struct Spec<'a> {
    /// Files and folders (walked recursively).
    pub paths: &'a [PathBuf],
    pub list: Option<&'a Path>,
    pub coco: Option<&'a Path>,
    /// Base of relative paths in `list` and `coco` (else the current folder).
    pub image_root: Option<&'a Path>,
    /// `None`: `coco` with `--coco`, else `stem`.
    pub id_policy: Option<IdPolicy>,
}

/// An id names a file in the output folder and a field of `failures.tsv` and of the exported
/// files: it must be a plain, visible file name without control characters (a tab or a line
/// break would split the TSV line that names the image).
fn check_id(id: &str, path: &Path) -> anyhow::Result<()> {
    if id.is_empty() || id.starts_with('.') || id.contains(['/', '\\']) {
        bail!(
            "{}: image id {id:?} cannot name a record file (empty, starting with '.', or \
             containing a path separator)",
            path.display()
        );
    }
    if id.chars().any(char::is_control) {
        bail!(
            "{}: image id {id:?} contains a control character (tab, line break, …), which \
             would break the TSV lines that name it; rename the file or choose another \
             --id-policy (e.g. int-suffix)",
            path.display()
        );
    }
    Ok(())
}

/// Every image of the run with its id, in input order. Two images with one id, or one image
/// given twice, are an error naming both, before anything runs.
pub fn collect(spec: &Spec) -> anyhow::Result<Vec<Input>> {
    let mut sources = Vec::new();
    for path in spec.paths {
        // A path typed on the command line that is not there is a usage error (exit 2,
        // nothing extracted); a missing file in a list or COCO JSON is that image's failure.
        if std::fs::symlink_metadata(path).is_err() {
            bail!("{}: no such file or folder", path.display());
        }
        if path.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found, &mut HashSet::new())?;
            if found.is_empty() {
                eprintln!(
                    "warning: the folder {} holds no *.jpg, *.jpeg or *.png file",
                    path.display()
                );
            }
            sources.extend(found.into_iter().map(|path| Source {
                path,
                coco_id: None,
            }));
        } else {
            sources.push(Source {
                path: path.clone(),
                coco_id: None,
            });
        }
    }
    if let Some(list) = spec.list {
        sources.extend(read_list(list, spec.image_root)?);
    }
    if let Some(coco) = spec.coco {
        sources.extend(read_coco(coco, spec.image_root)?);
    }
    let policy = spec.id_policy.unwrap_or(if spec.coco.is_some() {
        IdPolicy::Coco
    } else {
        IdPolicy::Stem
    });

    let mut inputs = Vec::with_capacity(sources.len());
    let mut by_id: HashMap<String, PathBuf> = HashMap::new();
    for source in sources {
        let stem = source
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .with_context(|| format!("{}: the path has no file name", source.path.display()))?;
        let id = match policy {
            IdPolicy::Stem => stem,
            IdPolicy::IntSuffix => butd_formats::IdPolicy::IntSuffix
                .image_id(&stem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", source.path.display()))?,
            IdPolicy::Coco => source.coco_id.with_context(|| {
                format!(
                    "{}: --id-policy coco, but the image is not from the --coco JSON",
                    source.path.display()
                )
            })?,
        };
        check_id(&id, &source.path)?;
        if let Some(first) = by_id.get(&id) {
            bail!(
                "{} and {} both have the image id {id:?} (record {id}.safetensors); \
                 rename one or choose another --id-policy",
                first.display(),
                source.path.display()
            );
        }
        by_id.insert(id.clone(), source.path.clone());
        inputs.push(Input {
            path: source.path,
            id,
        });
    }
    Ok(inputs)
}

/// `--shard i/n`: shard `i` (from 0) of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Shard, String> {
        let parsed = s
            .split_once('/')
            .and_then(|(i, n)| Some((i.parse::<u64>().ok()?, n.parse::<u64>().ok()?)));
        match parsed {
            Some((index, count)) if count > 0 && index < count => Ok(Shard { index, count }),
            _ => Err(format!(
                "`{s}`: expected i/n with 0 ≤ i < n (e.g. 0/4 … 3/4)"
            )),
        }
    }
}

impl Shard {
    /// Whether the image `id` belongs to this shard: FNV-1a (64 bit) of the id, modulo `n`.
    /// It depends on the id alone, so an image stays in its shard when images are added or
    /// the inputs are listed in another order, and shard outputs never overlap.
    pub fn owns(&self, id: &str) -> bool {
        butd_host::fnv1a64(id.as_bytes()) % self.count == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_the_ids() {
        let ids: Vec<String> = (0..1000).map(|i| format!("COCO_{i:012}")).collect();
        let shards: Vec<Shard> = (0..4).map(|i| format!("{i}/4").parse().unwrap()).collect();
        let mut sizes = [0usize; 4];
        for id in &ids {
            let owners: Vec<usize> = (0..4).filter(|&i| shards[i].owns(id)).collect();
            assert_eq!(owners.len(), 1, "{id}: exactly one shard");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 200), "balanced enough: {sizes:?}");
        for bad in ["4/4", "1/0", "x/2", "1", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn folders_lists_coco_and_id_policies() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        for name in ["a/x_001.jpg", "a/b/y_002.PNG", "a/notes.txt", "z_010.jpeg"] {
            std::fs::write(d.join(name), b"").unwrap();
        }
        let paths = [d.to_path_buf()];
        let spec = |policy| Spec {
            paths: &paths,
            list: None,
            coco: None,
            image_root: None,
            id_policy: policy,
        };
        let ids = |inputs: Vec<Input>| inputs.into_iter().map(|i| i.id).collect::<Vec<_>>();
        assert_eq!(
            ids(collect(&spec(None)).unwrap()),
            ["y_002", "x_001", "z_010"]
        );
        assert_eq!(
            ids(collect(&spec(Some(IdPolicy::IntSuffix))).unwrap()),
            ["2", "1", "10"]
        );
        assert!(collect(&spec(Some(IdPolicy::Coco))).is_err());

        std::fs::write(d.join("list.txt"), "# images\na/x_001.jpg\n\nz_010.jpeg\n").unwrap();
        let list = d.join("list.txt");
        let inputs = collect(&Spec {
            paths: &[],
            list: Some(&list),
            coco: None,
            image_root: Some(d),
            id_policy: None,
        })
        .unwrap();
        assert_eq!(inputs[0].path, d.join("a/x_001.jpg"));
        assert_eq!(ids(inputs), ["x_001", "z_010"]);

        let coco = d.join("instances.json");
        std::fs::write(
            &coco,
            r#"{"images": [{"id": 7, "file_name": "a/x_001.jpg"}, {"id": 9, "file_name": "z_010.jpeg"}]}"#,
        )
        .unwrap();
        let coco_spec = |policy| Spec {
            paths: &[],
            list: None,
            coco: Some(&coco),
            image_root: Some(d),
            id_policy: policy,
        };
        assert_eq!(ids(collect(&coco_spec(None)).unwrap()), ["7", "9"]);
        assert_eq!(
            ids(collect(&coco_spec(Some(IdPolicy::Stem))).unwrap()),
            ["x_001", "z_010"]
        );
    }

    #[test]
    fn duplicate_ids_are_refused_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::create_dir_all(d.join("b")).unwrap();
        std::fs::write(d.join("a/cat_1.jpg"), b"").unwrap();
        std::fs::write(d.join("b/cat_1.png"), b"").unwrap();
        let paths = [d.to_path_buf()];
        let err = collect(&Spec {
            paths: &paths,
            list: None,
            coco: None,
            image_root: None,
            id_policy: None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("a/cat_1.jpg") && err.contains("b/cat_1.png"),
            "{err}"
        );
        assert!(err.contains("\"cat_1\""), "{err}");
        // The same file twice is a duplicate too.
        let twice = [d.join("a/cat_1.jpg"), d.join("a/cat_1.jpg")];
        assert!(collect(&Spec {
            paths: &twice,
            list: None,
            coco: None,
            image_root: None,
            id_policy: None,
        })
        .is_err());
    }

    fn stem_spec(paths: &[PathBuf]) -> Spec<'_> {
        Spec {
            paths,
            list: None,
            coco: None,
            image_root: None,
            id_policy: None,
        }
    }

    #[test]
    fn symbolic_link_loops_are_walked_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a_1.jpg"), b"").unwrap();
        std::os::unix::fs::symlink(".", d.join("l1")).unwrap();
        std::os::unix::fs::symlink(".", d.join("l2")).unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        std::os::unix::fs::symlink("..", d.join("sub/up")).unwrap();
        let paths = [d.to_path_buf()];
        let inputs = collect(&stem_spec(&paths)).unwrap();
        assert_eq!(inputs.len(), 1, "{inputs:?}");
        assert_eq!(inputs[0].path, d.join("a_1.jpg"));
    }

    #[test]
    fn ids_with_a_tab_or_a_line_break_are_refused_before_the_run() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a\tb.jpg", "a\nb.jpg", "a\rb.jpg"] {
            let path = dir.path().join(name);
            std::fs::write(&path, b"").unwrap();
            let err = collect(&stem_spec(std::slice::from_ref(&path)))
                .unwrap_err()
                .to_string();
            assert!(err.contains("control character"), "{err}");
        }
    }
}
