//! `butd merge`: the output folders of `butd extract` shards (or of separate runs) into one.
//! Records (`<id>.safetensors`) are hard-linked where the file system allows, else copied
//! (to a temporary name, then renamed, like extraction writes them); the `failures.tsv` lines
//! are concatenated (repeated lines once). The same id in two folders is an error unless both
//! files are byte-identical. Everything is checked before anything is written.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use butd_record::failures::{read_failures, write_failures, FAILURES_FILE};
use butd_record::file::is_record_file_name;

#[derive(clap::Args)]
pub struct Args {
    /// Output folders of `butd extract` (e.g. one per shard)
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// The merged folder (created; records already there count as one more input)
    #[arg(long, short)]
    out: PathBuf,
}

/// The records of `dir`: visible `*.safetensors` files (temporary record files are hidden),
/// by file name.
fn records(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_record_file_name(&name) && entry.path().is_file() {
            found.insert(name, entry.path());
        }
    }
    Ok(found)
}

/// The lines of `dir/failures.tsv` after its header (none without the file).
fn failure_lines(dir: &Path) -> anyhow::Result<Vec<String>> {
    let lines = read_failures(&dir.join(FAILURES_FILE))?;
    Ok(lines.into_iter().map(|f| f.line).collect())
}

fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    Ok(std::fs::metadata(a)?.len() == std::fs::metadata(b)?.len() && read(a)? == read(b)?)
}

/// Hard link `from` as `to`, else copy it under a temporary name and rename.
fn link_or_copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let name = to.file_name().unwrap_or_default().to_string_lossy();
    let tmp = to.with_file_name(format!(".{name}.merge.tmp"));
    std::fs::copy(from, &tmp)
        .with_context(|| format!("cannot copy {} to {}", from.display(), tmp.display()))?;
    std::fs::rename(&tmp, to)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), to.display()))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let existing = records(&args.out)?;
    // id file name → the first folder's file; later folders must agree with it.
    let mut chosen: BTreeMap<String, PathBuf> = existing.clone();
    let mut conflicts = Vec::new();
    let mut failures: Vec<String> = failure_lines(&args.out)?;
    for dir in &args.dirs {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        for (name, path) in records(dir)? {
            match chosen.get(&name) {
                Some(first) if !same_bytes(first, &path)? => {
                    conflicts.push(format!("{} and {} differ", first.display(), path.display()))
                }
                Some(_) => {}
                None => {
                    chosen.insert(name, path);
                }
            }
        }
        failures.extend(failure_lines(dir)?);
    }
    if !conflicts.is_empty() {
        bail!(
            "{} image id(s) have different records in two folders; nothing was merged:\n  {}",
            conflicts.len(),
            conflicts.join("\n  ")
        );
    }

    let mut added = 0usize;
    for (name, path) in &chosen {
        if !existing.contains_key(name) {
            link_or_copy(path, &args.out.join(name))?;
            added += 1;
        }
    }
    let (failures_path, failure_count) =
        write_failures(&args.out, failures.iter().map(String::as_str))?;
    eprintln!(
        "{} records in {} ({added} added from {} folder(s)); {failure_count} failure line(s) in {}",
        chosen.len(),
        args.out.display(),
        args.dirs.len(),
        failures_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn merges_records_and_failures_and_refuses_conflicts() {
        let dir = std::env::temp_dir().join(format!("butd-merge-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b, out) = (dir.join("a"), dir.join("b"), dir.join("out"));
        write(&a.join("1.safetensors"), "one");
        write(&a.join(".butd-record-x.tmp"), "half");
        write(
            &a.join("failures.tsv"),
            "image\tid\treason\nx.jpg\tx\tbad\n",
        );
        write(&b.join("2.safetensors"), "two");
        write(&b.join("1.safetensors"), "one");
        write(
            &b.join("failures.tsv"),
            "image\tid\treason\ny.jpg\ty\tbad\nx.jpg\tx\tbad\n",
        );
        let args = |dirs: Vec<PathBuf>| Args {
            dirs,
            out: out.clone(),
        };
        run(args(vec![a.clone(), b.clone()])).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["1.safetensors", "2.safetensors", "failures.tsv"]);
        assert_eq!(
            std::fs::read_to_string(out.join("failures.tsv")).unwrap(),
            "image\tid\treason\nx.jpg\tx\tbad\ny.jpg\ty\tbad\n"
        );

        let c = dir.join("c");
        write(&c.join("2.safetensors"), "TWO");
        write(&c.join("3.safetensors"), "three");
        let err = run(args(vec![c.clone()])).unwrap_err().to_string();
        assert!(
            err.contains("2.safetensors") && err.contains("differ"),
            "{err}"
        );
        assert!(
            !out.join("3.safetensors").exists(),
            "nothing merged on a conflict"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
