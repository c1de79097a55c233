//! The terminal summary (comfy-table).
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use crate::report::{Finding, Kind, RegionSet, Report, Severity, Status};

/// Images listed in the terminal table before it shows only the ones that did not pass.
const ALL_IMAGES_UP_TO: usize = 40;
/// Breach lines printed before pointing at parity.json.
const BREACH_LINES: usize = 40;

/// `0`, `inf`, or three significant digits in scientific notation.
pub(crate) fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v:.2e}")
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Tie => "tie",
        Status::Fail => "FAIL",
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header.iter().map(Cell::new));
    t
}

impl Report {
    /// What the two sides are, what their formats hold and how they were paired: shown when a
    /// side is not a record directory or the run is a sample.
    pub(crate) fn source_lines(&self) -> Vec<String> {
        let Some(src) = &self.sources else {
            return Vec::new();
        };
        if src.golden.format == "records"
            && src.candidate.format == "records"
            && src.sample.is_none()
            && src.golden.notes.is_empty()
            && src.candidate.notes.is_empty()
        {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (side, info) in [("golden", &src.golden), ("candidate", &src.candidate)] {
            out.push(format!(
                "{side}: {} {} (holds {})",
                info.format,
                info.path,
                info.carries.join(", ")
            ));
            out.extend(info.notes.iter().map(|n| format!("  · {n}")));
        }
        out.push(format!("pairing: {}", src.pairing));
        if let Some(s) = &src.sample {
            out.push(format!(
                "sample: {} of {} golden images (seed {})",
                s.n, s.of, s.seed
            ));
        }
        out
    }

    /// Why images went unpaired, with example ids of each side and how ids were derived: the
    /// usual cause is an id policy that names one image differently on the two sides.
    fn unpaired_line(&self) -> Option<String> {
        let s = &self.summary;
        if s.missing_images + s.extra_images == 0 {
            return None;
        }
        let examples = |kind: Kind| {
            let ids: Vec<&str> = self
                .findings
                .iter()
                .filter(|f| f.kind == kind && f.severity > Severity::Info)
                .map(|f| f.image.as_str())
                .take(3)
                .collect();
            if ids.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", ids.join(", "))
            }
        };
        let pairing = self.sources.as_ref().map_or(
            "golden and candidate ids by record file name".into(),
            |src| src.pairing.clone(),
        );
        Some(format!(
            "unpaired: {} golden image(s) without a candidate{}, {} candidate image(s) without \
             a golden{}; pairing: {pairing}. If both sides hold the same images under other \
             ids, choose --id-policy or --id-map; to compare only the images both have, \
             --common-only",
            s.missing_images,
            examples(Kind::MissingImage),
            s.extra_images,
            examples(Kind::ExtraImage),
        ))
    }

    /// One line per tensor compared with 16-bit values on a side: the bound it was given.
    pub(crate) fn half_precision_lines(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter_map(|l| {
                let h = l.half_precision.as_ref()?;
                Some(format!(
                    "{}: {} {} — a difference inside the values' {} rounding intervals counts \
                     as 0 (widest allowance {} in the tensor's unit; {} keeps a relative \
                     precision of {:.2e})",
                    l.name,
                    h.sides,
                    h.format.name(),
                    h.format.name(),
                    sci(h.max_allowance),
                    h.format.name(),
                    h.format.unit_roundoff()
                ))
            })
            .collect()
    }

    /// The summary `butd verify` prints: per-layer errors, per-image results, breached lines.
    pub fn to_terminal(&self) -> String {
        let s = &self.summary;
        let mut out = format!(
            "golden {} ({} images) vs candidate {} ({} images): {} compared — {} pass, {} \
             tie-explained, {} fail; {} missing, {} extra ({:.2} s)\n",
            self.golden_dir,
            s.golden_images,
            self.candidate_dir,
            s.candidate_images,
            s.compared,
            s.passed,
            s.tie_explained,
            s.failed,
            s.missing_images,
            s.extra_images,
            s.seconds
        );
        for line in self.source_lines() {
            out += &format!("{line}\n");
        }
        if let Some(line) = self.unpaired_line() {
            out += &format!("{line}\n");
        }
        let notes: Vec<String> = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Info)
            .map(Finding::line)
            .collect();
        for line in notes.iter().take(BREACH_LINES) {
            out += &format!("note: {line}\n");
        }

        let mut layers = table(&[
            "tensor",
            "images",
            "metric",
            "min",
            "median",
            "max",
            "limit",
            "worst image",
        ]);
        for l in &self.layers {
            let over = l.over_limit();
            layers.add_row(vec![
                Cell::new(&l.name),
                Cell::new(l.images).set_alignment(CellAlignment::Right),
                Cell::new(l.metric.label()),
                Cell::new(sci(l.min)),
                Cell::new(sci(l.median)),
                Cell::new(format!("{}{}", sci(l.max), if over { " ✗" } else { "" })),
                Cell::new(l.limit.map_or("—".into(), sci)),
                Cell::new(if l.max == 0.0 { "—" } else { &l.worst_image }),
            ]);
        }
        out += &format!("{layers}\n");
        for line in self.half_precision_lines() {
            out += &format!("{line}\n");
        }

        let mut images = table(&[
            "image",
            "status",
            "rois matched",
            "final matched",
            "min cos",
            "labels ≠",
            "fail/tie/warn",
        ]);
        let show_all = self.images.len() <= ALL_IMAGES_UP_TO;
        let mut hidden = 0;
        for img in &self.images {
            if !show_all && img.status == Status::Pass {
                hidden += 1;
                continue;
            }
            let set = |which: RegionSet| {
                img.regions
                    .iter()
                    .find(|r| r.set == which)
                    .map_or("—".to_string(), |r| {
                        format!(
                            "{}/{} ({} cand.)",
                            r.matched, r.golden_count, r.candidate_count
                        )
                    })
            };
            let fin = img.regions.iter().find(|r| r.set == RegionSet::Final);
            let count = |sev: Severity| img.findings.iter().filter(|f| f.severity == sev).count();
            images.add_row(vec![
                Cell::new(&img.image),
                Cell::new(status_name(img.status)),
                Cell::new(set(RegionSet::Rois)),
                Cell::new(set(RegionSet::Final)),
                Cell::new(
                    fin.and_then(|r| r.min_feature_cosine)
                        .map_or("—".into(), |c| format!("{c:.9}")),
                ),
                Cell::new(fin.map_or(0, |r| r.label_disagreements.len())),
                Cell::new(format!(
                    "{}/{}/{}",
                    count(Severity::Fail),
                    count(Severity::Tie),
                    count(Severity::Warn)
                )),
            ]);
        }
        if hidden < self.images.len() {
            out += &format!("{images}\n");
        }
        if hidden > 0 {
            out += &format!("({hidden} passing images not listed)\n");
        }
        if s.images_without_detail > 0 {
            out += &format!(
                "({} passing images kept in parity.json without per-tensor detail: --detail)\n",
                s.images_without_detail
            );
        }

        let ties: Vec<String> = self
            .all_findings()
            .filter(|f| f.severity == Severity::Tie)
            .map(|f| f.line())
            .collect();
        if !ties.is_empty() {
            out += &format!("tie-explained divergences ({}):\n", ties.len());
            for l in ties.iter().take(BREACH_LINES) {
                out += &format!("  {l}\n");
            }
        }
        if s.gate_passed {
            out += "GATE PASSED\n";
        } else {
            out += &format!("GATE FAILED: {} breached line(s):\n", s.breaches.len());
            for l in s.breaches.iter().take(BREACH_LINES) {
                out += &format!("  {l}\n");
            }
            if s.breaches.len() > BREACH_LINES {
                out += &format!(
                    "  … {} more in parity.json\n",
                    s.breaches.len() - BREACH_LINES
                );
            }
        }
        out
    }
}
