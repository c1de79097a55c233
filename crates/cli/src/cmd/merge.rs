//! `butd merge`: the output folders of `butd extract` shards (or of separate runs) into one.
//! Records (`<id>.safetensors`) are hard-linked where the file system allows, else copied
//! (to a temporary name, then renamed, like extraction writes them); the `failures.tsv` lines
//! are concatenated (repeated lines once). The same id in two folders is an error unless both
//! files are byte-identical. Every record is checked as a resumed `butd extract` checks it: a
//! damaged one (truncated, not a butd record) is refused, not linked, and so is a record made
//! with other settings or weights than the first one (`butd_record::meta::RUN_SETTINGS`)
//! unless `--allow-mixed`. Everything is checked before anything is written.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use butd_record::failures::{read_failures, write_failures, FAILURES_FILE};
use butd_record::file::is_record_file_name;
use butd_record::{meta, record_state, RecordState};

#[derive(clap::Args)]
pub struct Args {
    /// Output folders of `butd extract` (e.g. one per shard)
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// The merged folder (created; records already there count as one more input)
    #[arg(long, short)]
    out: PathBuf,
    /// Merge records made with other settings or weights (each states its own)
    #[arg(long)]
    allow_mixed: bool,
}

/// The settings that decide a record's values ([`meta::RUN_SETTINGS`]), as the record states
/// them (`None` where it does not).
type Settings = Vec<Option<String>>;

/// Why a record cannot be merged: damaged, or made with other settings than `first`.
fn check_record(
    path: &Path,
    first: &mut Option<(PathBuf, Settings)>,
    allow_mixed: bool,
) -> Option<String> {
    let meta = match record_state(path) {
        RecordState::Complete { meta, .. } => meta,
        RecordState::Damaged(why) => return Some(format!("{} is damaged ({why})", path.display())),
        RecordState::Absent => return Some(format!("{} vanished", path.display())),
    };
    let settings: Settings = meta::RUN_SETTINGS
        .iter()
        .map(|k| meta.get(*k).cloned())
        .collect();
    let (first_path, first_settings) =
        first.get_or_insert_with(|| (path.to_path_buf(), settings.clone()));
    if allow_mixed || *first_settings == settings {
        return None;
    }
    let (key, a, b) = meta::RUN_SETTINGS
        .iter()
        .zip(first_settings.iter().zip(&settings))
        .find(|(_, (a, b))| a != b)
        .map(|(k, (a, b))| (k, a, b))?;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(not stated)".into());
    Some(format!(
        "{} was made with other settings than {}: {key} = {} there, {} here (--allow-mixed \
         merges them anyway)",
        path.display(),
        first_path.display(),
        show(a),
        show(b)
    ))
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
    let mut first = None;
    for path in existing.values() {
        conflicts.extend(check_record(path, &mut first, args.allow_mixed));
    }
    let mut failures: Vec<String> = failure_lines(&args.out)?;
    for dir in &args.dirs {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
        for (name, path) in records(dir)? {
            if let Some(why) = check_record(&path, &mut first, args.allow_mixed) {
                conflicts.push(why);
                continue;
            }
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
            "{} record(s) cannot be merged; nothing was merged:\n  {}",
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

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// A complete record without tensors, made with `select_mode = mode`, `note` making its
    /// bytes distinct.
    fn record(mode: &str, note: &str) -> Vec<u8> {
        let header = format!(
            r#"{{"__metadata__":{{"format":"butd-record-v1","select_mode":"{mode}","note":"{note}"}}}}"#
        );
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes
    }

    #[test]
    fn merges_records_and_failures_and_refuses_conflicts() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let (a, b, out) = (dir.join("a"), dir.join("b"), dir.join("out"));
        write(&a.join("1.safetensors"), &record("adaptive", "one"));
        write(&a.join(".butd-record-x.tmp"), b"half");
        write(
            &a.join("failures.tsv"),
            b"image\tid\treason\nx.jpg\tx\tbad\n",
        );
        write(&b.join("2.safetensors"), &record("adaptive", "two"));
        write(&b.join("1.safetensors"), &record("adaptive", "one"));
        write(
            &b.join("failures.tsv"),
            b"image\tid\treason\ny.jpg\ty\tbad\nx.jpg\tx\tbad\n",
        );
        let args = |dirs: Vec<PathBuf>| Args {
            dirs,
            out: out.clone(),
            allow_mixed: false,
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
        write(&c.join("2.safetensors"), &record("adaptive", "TWO"));
        write(&c.join("3.safetensors"), &record("adaptive", "three"));
        let err = run(args(vec![c.clone()])).unwrap_err().to_string();
        assert!(
            err.contains("2.safetensors") && err.contains("differ"),
            "{err}"
        );
        assert!(
            !out.join("3.safetensors").exists(),
            "nothing merged on a conflict"
        );
    }

    #[test]
    fn a_truncated_record_is_refused_by_merge() {
        let tmp = tempfile::tempdir().unwrap();
        let (shard, out) = (tmp.path().join("shard"), tmp.path().join("out"));
        let whole = record("adaptive", "one");
        write(&shard.join("1.safetensors"), &whole);
        write(&shard.join("2.safetensors"), &whole[..whole.len() - 5]);
        let err = run(Args {
            dirs: vec![shard],
            out: out.clone(),
            allow_mixed: false,
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("2.safetensors is damaged"), "{err}");
        assert!(!out.join("1.safetensors").exists(), "nothing merged");
    }

    #[test]
    fn records_made_with_other_settings_are_refused_unless_allowed() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, out) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("out"),
        );
        write(&a.join("1.safetensors"), &record("adaptive", "one"));
        write(&b.join("2.safetensors"), &record("fixed", "two"));
        let args = |allow_mixed| Args {
            dirs: vec![a.clone(), b.clone()],
            out: out.clone(),
            allow_mixed,
        };
        let err = run(args(false)).unwrap_err().to_string();
        assert!(
            err.contains("select_mode = adaptive there, fixed here"),
            "{err}"
        );
        run(args(true)).unwrap();
        assert!(out.join("2.safetensors").exists());
    }
}
