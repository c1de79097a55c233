//! Pairing two sources by image id and comparing every pair on all cores ([`verify`]).
//!
//! A TSV is streamed, never loaded: its lines go to the workers as they are read, and the other
//! side is looked up by id (a directory or an LMDB is listed first; of two TSVs the smaller is
//! indexed by byte offsets). Memory holds a bounded queue of raw items, the id lists, and the
//! per-image reports, of which passing images beyond [`Options::detail`] keep only their status
//! and findings.
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;
use std::time::Instant;

use butd_formats::canonical::{add_uniter_view, NOMINAL_SIZE};
use butd_formats::source::{
    first_field, load, no_detections, Locator, Meta, Raw, Reader, Source, SourceSpec,
};
use butd_formats::tensors::Record;
use butd_formats::{Format, IdPolicy};
use butd_record::tensors as t;

use crate::compare::{compare_scoped, image_size, unreadable, Scope};
use crate::gate::Metric;
use crate::pairing::{index_by_key, Index, Keyer, Problem};
use crate::regions::FINAL_TENSORS;
use crate::report::{
    merge_histograms, Finding, HalfPrecision, HistogramBin, ImageReport, Kind, LayerSummary,
    RegionSet, Report, SampleInfo, Severity, SourceInfo, Sources, Status, Summary, SCHEMA,
};
use crate::thresholds::Thresholds;
use crate::VerifyError;

/// `--sample N`: N golden images chosen by a hash of their ids under `seed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub n: usize,
    pub seed: u64,
}

/// Where a run stands, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Image pairs compared so far.
    pub images: usize,
    /// Pairs to compare, when known before the end (listed sources).
    pub total: Option<usize>,
    /// `(read, size)` of a streamed TSV.
    pub bytes: Option<(u64, u64)>,
}

/// How [`verify`] runs.
pub struct Options<'a> {
    /// Worker threads.
    pub threads: usize,
    /// How image file stems become ids (stem-keyed sides only); `None`: the trailing digits
    /// when the other side has integer ids, else the stem itself.
    pub ids: Option<IdPolicy>,
    pub sample: Option<Sample>,
    /// Compare the images both sides have; golden images without a candidate are counted and
    /// skipped instead of failing (a COCO-sized golden file against a sample).
    pub common_only: bool,
    /// Passing images (in pairing order) reported in full; the others keep status and findings.
    pub detail: usize,
    /// Called after every compared image.
    pub progress: Option<&'a (dyn Fn(&Progress) + Sync)>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            ids: None,
            sample: None,
            common_only: false,
            detail: usize::MAX,
            progress: None,
        }
    }
}

/// Pairs the `*.safetensors` records of two directories by file stem and compares every pair,
/// on as many threads as the machine has cores.
pub fn compare_dirs(
    golden: &Path,
    candidate: &Path,
    th: &Thresholds,
) -> Result<Report, VerifyError> {
    verify(
        &SourceSpec::new(golden).with_format(Format::Records),
        &SourceSpec::new(candidate).with_format(Format::Records),
        th,
        &Options::default(),
    )
}

/// [`compare_dirs`] on `threads` threads.
pub fn compare_dirs_with(
    golden: &Path,
    candidate: &Path,
    th: &Thresholds,
    threads: usize,
) -> Result<Report, VerifyError> {
    verify(
        &SourceSpec::new(golden).with_format(Format::Records),
        &SourceSpec::new(candidate).with_format(Format::Records),
        th,
        &Options {
            threads,
            ..Options::default()
        },
    )
}

/// One image pair on its way to a worker.
struct Work {
    seq: usize,
    key: String,
    golden: Result<Raw, String>,
    candidate: Result<Raw, String>,
}

/// Which side is streamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Plan {
    /// Both sides listed; golden order.
    Listed,
    StreamGolden,
    StreamCandidate,
}

impl Plan {
    fn choose(g: &Reader, c: &Reader, gm: &Meta, cm: &Meta, sample: bool) -> Plan {
        match (gm.format.is_tsv(), cm.format.is_tsv()) {
            _ if sample => Plan::Listed,
            (true, true) if g.tsv_len() >= c.tsv_len() => Plan::StreamGolden,
            (true, true) => Plan::StreamCandidate,
            (true, false) => Plan::StreamGolden,
            (false, true) => Plan::StreamCandidate,
            (false, false) => Plan::Listed,
        }
    }

    fn describe(self, gm: &Meta, cm: &Meta) -> String {
        let listed = |m: &Meta| {
            if m.format.is_tsv() {
                "listed (TSV indexed by byte offsets)"
            } else {
                "listed"
            }
        };
        match self {
            Plan::Listed => format!(
                "golden {}, candidate {}; compared in golden order",
                listed(gm),
                listed(cm)
            ),
            Plan::StreamGolden => {
                format!(
                    "golden streamed; candidate {} and looked up by id",
                    listed(cm)
                )
            }
            Plan::StreamCandidate => {
                format!(
                    "candidate streamed; golden {} and looked up by id",
                    listed(gm)
                )
            }
        }
    }
}

/// FNV-1a of the id, mixed with the seed (splitmix64): the sample rank of an image. Stable
/// across platforms and runs.
fn sample_rank(seed: u64, id: &str) -> u64 {
    let h = butd_host::fnv1a64(id.as_bytes());
    let mut z = h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The `n` entries of lowest rank, in source order.
fn choose_sample(entries: &[(String, Locator)], s: Sample) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..entries.len()).collect();
    idx.sort_by_key(|&i| (sample_rank(s.seed, &entries[i].0), i));
    idx.truncate(s.n);
    idx.sort_unstable();
    idx
}

/// Findings about the inputs, collected by kind for the report's order.
#[derive(Default)]
struct Tally {
    missing: Vec<Finding>,
    extra: Vec<Finding>,
    other: Vec<Finding>,
    golden_images: usize,
    candidate_images: usize,
    /// `--common-only`: golden images without a candidate are counted here, not reported.
    common_only: bool,
    skipped_golden: usize,
}

fn finding(image: &str, severity: Severity, kind: Kind, message: String) -> Finding {
    Finding {
        image: image.to_string(),
        severity,
        kind,
        subject: String::new(),
        message,
        cause: None,
    }
}

impl Tally {
    fn missing(&mut self, key: &str, gm: &Meta, gloc: Option<&Locator>, cm: &Meta) {
        if self.common_only {
            self.skipped_golden += 1;
            return;
        }
        if cm.format != Format::Records {
            if let Some(why) = gloc.and_then(|l| no_detections(gm, l)) {
                self.missing.push(finding(
                    key,
                    Severity::Info,
                    Kind::MissingImage,
                    format!(
                        "the golden record has no detections ({why}); a {} source cannot hold \
                         such an image, so the candidate has none",
                        cm.format.name()
                    ),
                ));
                return;
            }
        }
        let message = if cm.format == Format::Records {
            format!("no {key}.safetensors in the candidate directory")
        } else {
            format!(
                "no image {key} in the candidate {} {}",
                cm.format.name(),
                cm.path.display()
            )
        };
        self.missing
            .push(finding(key, Severity::Fail, Kind::MissingImage, message));
    }

    fn extra(&mut self, key: &str, cm: &Meta, cloc: Option<&Locator>, gm: &Meta) {
        if gm.format != Format::Records {
            if let Some(why) = cloc.and_then(|l| no_detections(cm, l)) {
                self.extra.push(finding(
                    key,
                    Severity::Info,
                    Kind::ExtraImage,
                    format!(
                        "the candidate record has no detections ({why}); a {} source cannot \
                         hold such an image, so the golden has none",
                        gm.format.name()
                    ),
                ));
                return;
            }
        }
        let message = if cm.format == Format::Records {
            format!("{key}.safetensors has no golden counterpart, not compared")
        } else {
            format!("image {key} has no golden counterpart, not compared")
        };
        self.extra
            .push(finding(key, Severity::Warn, Kind::ExtraImage, message));
    }

    fn problem(&mut self, golden: bool, meta: &Meta, p: Problem) {
        let side = if golden { "golden" } else { "candidate" };
        match p {
            Problem::Unmapped { native, reason } => {
                let (severity, kind, list) = if golden {
                    (Severity::Fail, Kind::MissingImage, &mut self.missing)
                } else {
                    (Severity::Warn, Kind::ExtraImage, &mut self.extra)
                };
                list.push(finding(
                    &native,
                    severity,
                    kind,
                    format!("{side} image {native}: {reason}; it cannot be paired"),
                ));
            }
            Problem::Duplicate { key, at } => self.other.push(finding(
                &key,
                Severity::Fail,
                Kind::DuplicateImage,
                format!(
                    "image {key} appears again at {at} of the {side} {} {}; its first \
                     occurrence is compared",
                    meta.format.name(),
                    meta.path.display()
                ),
            )),
        }
    }

    fn problems(&mut self, golden: bool, meta: &Meta, index: &mut Index) {
        for p in std::mem::take(&mut index.problems) {
            self.problem(golden, meta, p);
        }
    }
}

/// One side while pairing: its shared description, its reader (this thread only), its keys.
struct Side<'a> {
    meta: &'a Meta,
    reader: Reader,
    keyer: Keyer,
}

/// Shared between the producer, the workers and the progress callback.
struct Shared<'a> {
    collected: Mutex<Collected>,
    total: Mutex<Option<usize>>,
    bytes: AtomicU64,
    stream_len: u64,
    progress: Option<&'a (dyn Fn(&Progress) + Sync)>,
}

/// Numbers the image pairs and hands them to the workers.
struct Dispatch<'a> {
    tx: &'a SyncSender<Work>,
    seq: usize,
    /// The golden path, which an error names.
    path: PathBuf,
}

impl Dispatch<'_> {
    fn send(
        &mut self,
        key: &str,
        golden: Result<Raw, String>,
        candidate: Result<Raw, String>,
    ) -> Result<(), VerifyError> {
        let work = Work {
            seq: self.seq,
            key: key.to_string(),
            golden,
            candidate,
        };
        self.seq += 1;
        self.tx.send(work).map_err(|_| VerifyError::Source {
            path: self.path.clone(),
            message: "internal: the comparison workers stopped".into(),
        })
    }
}

/// Reads both sides, pairs images by key and hands the pairs to the workers.
fn produce<'m>(
    g: &mut Side<'m>,
    c: &mut Side<'m>,
    plan: Plan,
    sample: Option<Sample>,
    common_only: bool,
    tx: &SyncSender<Work>,
    shared: &Shared,
) -> Result<Tally, VerifyError> {
    let mut t = Tally {
        common_only,
        ..Tally::default()
    };
    let mut out = Dispatch {
        tx,
        seq: 0,
        path: g.meta.path.clone(),
    };
    match plan {
        Plan::Listed => pair_listed(g, c, sample, &mut t, &mut out, shared)?,
        Plan::StreamGolden => pair_streamed(g, c, true, &mut t, &mut out, shared)?,
        Plan::StreamCandidate => pair_streamed(c, g, false, &mut t, &mut out, shared)?,
    }
    Ok(t)
}

/// Both sides listed: the golden images (or the sample of them) in golden order, each looked
/// up in the candidate; candidate images never visited are extra.
fn pair_listed(
    g: &mut Side<'_>,
    c: &mut Side<'_>,
    sample: Option<Sample>,
    t: &mut Tally,
    out: &mut Dispatch<'_>,
    shared: &Shared,
) -> Result<(), VerifyError> {
    let mut gi = index_by_key(&mut g.reader, g.meta, &g.keyer)?;
    let mut ci = index_by_key(&mut c.reader, c.meta, &c.keyer)?;
    t.problems(true, g.meta, &mut gi);
    t.problems(false, c.meta, &mut ci);
    let chosen: Vec<usize> = match sample {
        Some(s) => choose_sample(&gi.entries, s),
        None => (0..gi.entries.len()).collect(),
    };
    *shared.total.lock().unwrap_or_else(|e| e.into_inner()) = Some(chosen.len());
    let mut visited = vec![false; ci.entries.len()];
    for &i in &chosen {
        let (key, gloc) = &gi.entries[i];
        match ci.by_key.get(key) {
            None => t.missing(key, g.meta, Some(gloc), c.meta),
            Some(&j) => {
                visited[j] = true;
                let graw = g.reader.fetch(g.meta, gloc);
                let craw = c.reader.fetch(c.meta, &ci.entries[j].1);
                out.send(key, graw, craw)?;
            }
        }
    }
    if sample.is_none() {
        for (j, (key, loc)) in ci.entries.iter().enumerate() {
            if !visited[j] {
                t.extra(key, c.meta, Some(loc), g.meta);
            }
        }
    }
    t.golden_images = gi.entries.len();
    t.candidate_images = ci.entries.len();
    Ok(())
}

/// One side streamed line by line (a TSV), each line's image looked up in the other, listed
/// side; `golden_streams` says which side `streamed` is.
fn pair_streamed(
    streamed: &mut Side<'_>,
    listed: &mut Side<'_>,
    golden_streams: bool,
    t: &mut Tally,
    out: &mut Dispatch<'_>,
    shared: &Shared,
) -> Result<(), VerifyError> {
    let mut index = index_by_key(&mut listed.reader, listed.meta, &listed.keyer)?;
    t.problems(!golden_streams, listed.meta, &mut index);
    let mut visited = vec![false; index.entries.len()];
    let mut seen = HashSet::new();
    while let Some((line, bytes)) = streamed.reader.next_line()? {
        shared
            .bytes
            .store(streamed.reader.position(), Ordering::Relaxed);
        let Some(key) = streamed_key(streamed, golden_streams, line, &bytes, &mut seen, t) else {
            continue;
        };
        let Some(&j) = index.by_key.get(&key) else {
            if golden_streams {
                t.missing(&key, streamed.meta, None, listed.meta);
            } else {
                t.extra(&key, streamed.meta, None, listed.meta);
            }
            continue;
        };
        visited[j] = true;
        let mine = Ok(Raw::Line { bytes, line });
        let theirs = listed.reader.fetch(listed.meta, &index.entries[j].1);
        if golden_streams {
            out.send(&key, mine, theirs)?;
        } else {
            out.send(&key, theirs, mine)?;
        }
    }
    for (j, (key, loc)) in index.entries.iter().enumerate() {
        if !visited[j] {
            if golden_streams {
                t.extra(key, listed.meta, Some(loc), streamed.meta);
            } else {
                t.missing(key, listed.meta, Some(loc), streamed.meta);
            }
        }
    }
    let (streamed_n, listed_n) = (seen.len(), index.entries.len());
    (t.golden_images, t.candidate_images) = if golden_streams {
        (streamed_n, listed_n)
    } else {
        (listed_n, streamed_n)
    };
    Ok(())
}

/// The pairing key of a streamed line, first seen; `None` (and the problem tallied) when its id
/// cannot be keyed or was seen before.
fn streamed_key(
    streamed: &Side<'_>,
    golden_streams: bool,
    line: usize,
    bytes: &[u8],
    seen: &mut HashSet<String>,
    t: &mut Tally,
) -> Option<String> {
    let native = first_field(bytes);
    let problem = match streamed.keyer.key(&native) {
        Err(reason) => Problem::Unmapped { native, reason },
        Ok(key) if seen.insert(key.clone()) => return Some(key),
        Ok(key) => Problem::Duplicate {
            key,
            at: format!("line {line}"),
        },
    };
    t.problem(golden_streams, streamed.meta, problem);
    None
}

/// UNITER's img_db holds the first `nbb` rows of each image (`convert_imgdir.py`): the other
/// side is cut to the rows the converter would keep of it, computed from its `conf` under the
/// DB's options, else to the img_db's row count. Returns the note for the report.
fn cut_to_nbb(um: &Meta, u: &Record, other: &mut Record) -> Option<String> {
    if um.format != Format::UniterLmdb {
        return None;
    }
    let stored = u.get(t::BOXES)?.rows();
    let k = other.get(t::BOXES)?.rows();
    let options = um.uniter.as_ref();
    if k <= stored || options.is_some_and(|o| o.keep_all) {
        return None;
    }
    let conf: Option<Vec<half::f16>> = other
        .get(t::CONF)
        .map(|t| t.values.iter().map(|&v| half::f16::from_f64(v)).collect());
    let (n, why) = match (options, conf) {
        (Some(o), Some(conf)) => (
            o.nbb(&conf).unwrap_or(k),
            format!(
                "nbb = {} from its conf under conf_th {}, min_bb {}, max_bb {}",
                o.nbb(&conf).unwrap_or(k),
                o.conf_th,
                o.min_bb,
                o.max_bb
            ),
        ),
        _ => (
            stored,
            format!("the img_db's {stored} rows (its nbb cannot be recomputed here)"),
        ),
    };
    if n >= k {
        return None;
    }
    for name in FINAL_TENSORS {
        if let Some(t) = other.tensors.get_mut(name).filter(|t| t.rows() == k) {
            *t = t.first_rows(n);
        }
    }
    Some(format!(
        "UNITER's img_db keeps the first nbb rows: the other side's {k} regions cut to {n} ({why})"
    ))
}

/// Decodes both sides of a pair and restricts them to what both formats can hold.
fn load_pair(
    (gm, graw): (&Meta, Raw),
    (cm, craw): (&Meta, Raw),
) -> Result<(Record, Record, Scope, Vec<String>), Vec<String>> {
    // UNITER boxes are de-normalised with the other side's image size: read that side first.
    let (g, c) = if gm.format.is_uniter() && !cm.format.is_uniter() {
        let c = load(cm, craw, None);
        let size = c.as_ref().ok().and_then(image_size);
        (load(gm, graw, size), c)
    } else {
        let g = load(gm, graw, None);
        let size = g.as_ref().ok().and_then(image_size);
        (g, load(cm, craw, size))
    };
    let (mut g, mut c) = match (g, c) {
        (Ok(g), Ok(c)) => (g, c),
        (g, c) => return Err([g.err(), c.err()].into_iter().flatten().collect()),
    };
    for (rec, other) in [(&mut g, cm.format), (&mut c, gm.format)] {
        if other.is_uniter() {
            add_uniter_view(rec);
        }
    }
    let mut notes = Vec::new();
    notes.extend(cut_to_nbb(gm, &g, &mut c));
    notes.extend(cut_to_nbb(cm, &c, &mut g));
    let mut scope = Scope::default();
    for (rec, other) in [(&g, cm.format), (&c, gm.format)] {
        for name in rec.tensors.keys() {
            if !other.holds(name) {
                scope.not_carried.insert(name.clone());
            }
        }
    }
    Ok((g, c, scope, notes))
}

fn compare_work(w: Work, gm: &Meta, cm: &Meta, th: &Thresholds) -> ImageReport {
    let (graw, craw) = match (w.golden, w.candidate) {
        (Ok(g), Ok(c)) => (g, c),
        (g, c) => return unreadable(&w.key, [g.err(), c.err()].into_iter().flatten()),
    };
    match load_pair((gm, graw), (cm, craw)) {
        Err(messages) => unreadable(&w.key, messages),
        Ok((g, c, scope, notes)) => {
            let mut r = compare_scoped(&w.key, &g, &c, th, &scope);
            for note in notes {
                r.findings.push(Finding {
                    image: w.key.clone(),
                    severity: Severity::Info,
                    kind: Kind::Truncated,
                    subject: RegionSet::Final.name().into(),
                    message: note,
                    cause: None,
                });
            }
            r
        }
    }
}

/// A tensor's gated figure over images.
#[derive(Default)]
struct LayerValues {
    /// `(value, image seq)`.
    values: Vec<(f64, usize)>,
    half: Option<HalfPrecision>,
}

/// Per-image reports as the workers finish them, reduced as they arrive.
struct Collected {
    detail: usize,
    images: Vec<(usize, ImageReport)>,
    layers: BTreeMap<String, LayerValues>,
    histograms: Vec<HistogramBin>,
    without_detail: usize,
    /// (min, max) final-region counts of the golden and the candidate side over the images.
    final_counts: Option<[(usize, usize); 2]>,
}

impl Collected {
    fn new(detail: usize) -> Self {
        Collected {
            detail,
            images: Vec::new(),
            layers: BTreeMap::new(),
            histograms: merge_histograms(std::iter::empty()),
            without_detail: 0,
            final_counts: None,
        }
    }

    fn add(&mut self, seq: usize, mut img: ImageReport, th: &Thresholds) {
        for t in &img.tensors {
            if let Some(s) = t.gated_stats() {
                let metric = th.limit(&t.name).map_or(Metric::MaxRel, |l| l.0);
                let layer = self.layers.entry(t.name.clone()).or_default();
                layer.values.push((metric.of(s), seq));
                layer.half = HalfPrecision::merge(layer.half.take(), t.half_precision.clone());
            }
        }
        let finals = img
            .regions
            .iter()
            .filter(|r| r.set == RegionSet::Final)
            .map(|r| &r.cosine_histogram[..]);
        if let Some(r) = img.regions.iter().find(|r| r.set == RegionSet::Final) {
            let counts = [r.golden_count, r.candidate_count];
            let spans = self
                .final_counts
                .get_or_insert([(usize::MAX, 0), (usize::MAX, 0)]);
            for (span, n) in spans.iter_mut().zip(counts) {
                *span = (span.0.min(n), span.1.max(n));
            }
        }
        let merged = merge_histograms(std::iter::once(&self.histograms[..]).chain(finals));
        self.histograms = merged;
        if img.status == Status::Pass && seq >= self.detail {
            img.tensors = Vec::new();
            img.regions = Vec::new();
            self.without_detail += 1;
        }
        self.images.push((seq, img));
    }
}

/// When one side has the same number of final regions on every image and the other a
/// different or varying number, the two were made with different selections (`--fixed 36`
/// against generate_tsv's adaptive 10–100): the final regions cannot agree, whatever the
/// network. `spans`: (min, max) count per image of the golden and the candidate side.
fn selection_mismatch(spans: [(usize, usize); 2]) -> Option<String> {
    let describe = |(lo, hi): (usize, usize)| {
        if lo == hi {
            format!("exactly {lo} final regions on every image (a fixed selection)")
        } else {
            format!("{lo} to {hi} final regions per image (an adaptive selection)")
        }
    };
    let [g, c] = spans;
    let fixed = |(lo, hi): (usize, usize)| lo == hi;
    if (fixed(g) || fixed(c)) && g != c {
        Some(format!(
            "the two sides were made with different box selections: golden has {}, candidate \
             {}; their final regions cannot agree (extract both the same way, e.g. `butd \
             extract --fixed N` for a fixed golden)",
            describe(g),
            describe(c)
        ))
    } else {
        None
    }
}

/// Tensors in pipeline order for the per-layer summary (the record contract's order); others
/// follow alphabetically. Also the tensor names a thresholds file may gate
/// ([`crate::Thresholds::parse`]).
pub(crate) use butd_record::tensors::PIPELINE_ORDER as LAYER_ORDER;

fn layer_summaries(
    layers: BTreeMap<String, LayerValues>,
    names: &BTreeMap<usize, String>,
    th: &Thresholds,
) -> Vec<LayerSummary> {
    let mut out: Vec<LayerSummary> = layers
        .into_iter()
        .map(|(name, mut l)| {
            // Ties in value keep pairing order, as the report lists images.
            l.values
                .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let v = &l.values;
            let limit = th.limit(&name);
            let (max, worst) = v[v.len() - 1];
            LayerSummary {
                metric: limit.map_or(Metric::MaxRel, |l| l.0),
                limit: limit.map(|l| l.1),
                images: v.len(),
                min: v[0].0,
                median: v[v.len() / 2].0,
                max,
                worst_image: names.get(&worst).cloned().unwrap_or_default(),
                half_precision: l.half,
                name,
            }
        })
        .collect();
    let rank = |n: &str| {
        LAYER_ORDER
            .iter()
            .position(|&x| x == n)
            .unwrap_or(LAYER_ORDER.len())
    };
    out.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    out
}

fn source_info(meta: &Meta) -> SourceInfo {
    let mut notes = meta.format.notes();
    if meta.label_base != 0 {
        notes.push(format!(
            "object / attribute ids counted from {}: moved to 0-based",
            meta.label_base
        ));
    }
    if !meta.prefix.is_empty() && meta.format.is_uniter() {
        notes.push(format!(
            "entry names start with {:?}, taken off the ids",
            meta.prefix
        ));
    }
    if let (Format::UniterLmdb, None) = (meta.format, &meta.uniter) {
        notes.push("the DB name does not give convert_imgdir.py's options".into());
    }
    SourceInfo {
        path: meta.path.display().to_string(),
        format: meta.format.name().into(),
        carries: meta.format.carries().map_or_else(
            || vec!["*".to_string()],
            |c| c.iter().map(|s| s.to_string()).collect(),
        ),
        notes,
    }
}

/// Compares `golden` with `candidate`: each a directory of records or a downstream feature file
/// (docs/verify.md, "Feature files"), paired by image id.
pub fn verify(
    golden: &SourceSpec,
    candidate: &SourceSpec,
    th: &Thresholds,
    opts: &Options,
) -> Result<Report, VerifyError> {
    let start = Instant::now();
    let Source {
        meta: gm,
        reader: gr,
    } = Source::open(golden)?;
    let Source {
        meta: cm,
        reader: cr,
    } = Source::open(candidate)?;
    let policy = match &opts.ids {
        Some(p) => Some(p.clone()),
        None if gm.format.integer_ids() != cm.format.integer_ids() => Some(IdPolicy::IntSuffix),
        None => None,
    };
    let plan = Plan::choose(&gr, &cr, &gm, &cm, opts.sample.is_some());
    let side = |meta, reader, policy| Side {
        meta,
        reader,
        keyer: Keyer {
            policy,
            format: meta.format,
        },
    };
    let mut g = side(&gm, gr, policy.clone());
    let mut c = side(&cm, cr, policy);
    let (tally, col) = compare_all(&mut g, &mut c, plan, th, opts)?;

    let mut images = col.images;
    images.sort_by_key(|(seq, _)| *seq);
    let names: BTreeMap<usize, String> = images
        .iter()
        .map(|(seq, img)| (*seq, img.image.clone()))
        .collect();
    let layers = layer_summaries(col.layers, &names, th);
    let images: Vec<ImageReport> = images.into_iter().map(|(_, img)| img).collect();
    let findings: Vec<Finding> = [
        tally.missing.clone(),
        tally.extra.clone(),
        tally.other.clone(),
    ]
    .concat();
    let breaches = gate_breaches(&findings, &images, col.final_counts, &tally, th);
    let mut summary = summarize(&tally, &images, &findings, breaches);
    summary.seconds = start.elapsed().as_secs_f64();
    summary.images_without_detail = col.without_detail;
    Ok(Report {
        schema: SCHEMA.to_string(),
        golden_dir: golden.path.display().to_string(),
        candidate_dir: candidate.path.display().to_string(),
        thresholds: th.clone(),
        layers,
        summary,
        cosine_histogram: col.histograms,
        findings,
        images,
        sources: Some(sources_of(&g, &c, plan, &tally, opts)),
    })
}

/// Runs the comparison: `opts.threads` workers compare the pairs the producer (this thread)
/// reads and pairs.
fn compare_all<'m>(
    g: &mut Side<'m>,
    c: &mut Side<'m>,
    plan: Plan,
    th: &Thresholds,
    opts: &Options,
) -> Result<(Tally, Collected), VerifyError> {
    let (gm, cm) = (g.meta, c.meta);
    let stream_len = match plan {
        Plan::StreamGolden => g.reader.tsv_len(),
        Plan::StreamCandidate => c.reader.tsv_len(),
        Plan::Listed => 0,
    };
    let shared = Shared {
        collected: Mutex::new(Collected::new(opts.detail)),
        total: Mutex::new(None),
        bytes: AtomicU64::new(0),
        stream_len,
        progress: opts.progress,
    };
    let threads = opts.threads.max(1);
    let (tx, rx) = sync_channel::<Work>(2 * threads);
    let rx = Mutex::new(rx);
    let worker = || loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(w) = next else { break };
        let (seq, key) = (w.seq, w.key.clone());
        // A bug must not hang the producer on a full queue: it fails this image instead.
        let report =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compare_work(w, gm, cm, th)))
                .unwrap_or_else(|_| {
                    unreadable(&key, ["internal error: the comparison panicked".into()])
                });
        let mut col = shared.collected.lock().unwrap_or_else(|e| e.into_inner());
        col.add(seq, report, th);
        if let Some(progress) = shared.progress {
            let total = *shared.total.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = (shared.stream_len > 0)
                .then(|| (shared.bytes.load(Ordering::Relaxed), shared.stream_len));
            progress(&Progress {
                images: col.images.len(),
                total,
                bytes,
            });
        }
    };
    let tally = std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(worker);
        }
        // The producer stays on this thread: it owns the readers (an LMDB read transaction
        // cannot move between threads).
        let tally = produce(g, c, plan, opts.sample, opts.common_only, &tx, &shared);
        drop(tx);
        tally
    })?;
    let col = shared
        .collected
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok((tally, col))
}

/// The lines that fail the gate, the selection mismatch that explains them first.
fn gate_breaches(
    findings: &[Finding],
    images: &[ImageReport],
    final_counts: Option<[(usize, usize); 2]>,
    tally: &Tally,
    th: &Thresholds,
) -> Vec<String> {
    let mut breaches: Vec<String> = findings
        .iter()
        .chain(images.iter().flat_map(|i| &i.findings))
        .filter(|f| f.breaches(th))
        .map(Finding::line)
        .collect();
    if let Some(why) = final_counts
        .filter(|_| images.len() >= 2)
        .and_then(selection_mismatch)
    {
        // Before the per-image lines: it explains their unmatched and swapped regions.
        breaches.insert(0, why);
    }
    if images.is_empty() {
        // A check that looked at nothing must not pass a CI gate (`--sample 0`, an empty
        // golden file, no id in common).
        breaches.push(format!(
            "0 images compared (golden: {} image(s), candidate: {}); nothing was verified",
            tally.golden_images, tally.candidate_images
        ));
    }
    breaches
}

/// The report's counts (its time and detail figures are the caller's).
fn summarize(
    tally: &Tally,
    images: &[ImageReport],
    findings: &[Finding],
    breaches: Vec<String>,
) -> Summary {
    let count = |s: Status| images.iter().filter(|i| i.status == s).count();
    let counted = |kind: Kind| {
        findings
            .iter()
            .filter(|f| f.kind == kind && f.severity > Severity::Info)
            .count()
    };
    Summary {
        golden_images: tally.golden_images,
        candidate_images: tally.candidate_images,
        compared: images.len(),
        passed: count(Status::Pass),
        tie_explained: count(Status::Tie),
        failed: count(Status::Fail),
        missing_images: counted(Kind::MissingImage),
        extra_images: counted(Kind::ExtraImage),
        gate_passed: breaches.is_empty(),
        breaches,
        seconds: 0.0,
        images_without_detail: 0,
    }
}

/// What the report says about the two sources and how they were paired.
fn sources_of(g: &Side, c: &Side, plan: Plan, tally: &Tally, opts: &Options) -> Sources {
    let (gm, cm) = (g.meta, c.meta);
    let mut golden_info = source_info(gm);
    if tally.skipped_golden > 0 {
        golden_info.notes.push(format!(
            "--common-only: {} golden image(s) without a candidate skipped",
            tally.skipped_golden
        ));
    }
    if gm.format.is_uniter() && cm.format.is_uniter() {
        golden_info.notes.push(format!(
            "neither side states the image size: boxes compared in 1/{NOMINAL}ths of the image",
            NOMINAL = NOMINAL_SIZE
        ));
    }
    Sources {
        golden: golden_info,
        candidate: source_info(cm),
        pairing: format!(
            "golden id: {}; candidate id: {}; {}",
            g.keyer.describe(),
            c.keyer.describe(),
            plan.describe(gm, cm)
        ),
        sample: opts.sample.map(|s| SampleInfo {
            n: s.n.min(tally.golden_images),
            seed: s.seed,
            of: tally.golden_images,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(ids: &[&str]) -> Vec<(String, Locator)> {
        ids.iter()
            .map(|s| (s.to_string(), Locator::VqaIndex(0)))
            .collect()
    }

    #[test]
    fn samples_are_reproducible_and_in_source_order() {
        let ids: Vec<String> = (0..200).map(|i| format!("COCO_{i:06}")).collect();
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let e = entries(&refs);
        let a = choose_sample(&e, Sample { n: 20, seed: 7 });
        assert_eq!(a, choose_sample(&e, Sample { n: 20, seed: 7 }));
        assert_eq!(a.len(), 20);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert_ne!(a, choose_sample(&e, Sample { n: 20, seed: 8 }));
        // The sample is the 20 ids of lowest rank.
        let mut ranked: Vec<(u64, usize)> =
            (0..200).map(|i| (sample_rank(7, &ids[i]), i)).collect();
        ranked.sort_unstable();
        let mut lowest: Vec<usize> = ranked[..20].iter().map(|r| r.1).collect();
        lowest.sort_unstable();
        assert_eq!(a, lowest);
        assert_eq!(choose_sample(&e, Sample { n: 500, seed: 1 }).len(), 200);
    }
}
