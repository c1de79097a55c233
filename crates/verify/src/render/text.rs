//! The terminal summary `butd verify` prints (comfy-table).
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};

use super::sci;
use crate::report::{Finding, ImageReport, Kind, RegionSet, Report, Severity, Status};

/// Images listed in the terminal table before it shows only the ones that did not pass.
const ALL_IMAGES_UP_TO: usize = 40;
/// Breach lines printed before pointing at parity.json.
const BREACH_LINES: usize = 40;

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

    /// The summary `butd verify` prints: per-layer errors, per-image results, breached lines.
    pub fn to_terminal(&self) -> String {
        let mut out = self.headline();
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
        out += &format!("{}\n", self.layers_table());
        for line in self.half_precision_lines() {
            out += &format!("{line}\n");
        }
        out += &self.images_text();
        out += &self.ties_text();
        out += &self.gate_text();
        out
    }

    /// Both sides, the image counts and the time taken, on one line.
    fn headline(&self) -> String {
        let s = &self.summary;
        format!(
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
        )
    }

    /// Per tensor: its gated figure over images, against the limit.
    fn layers_table(&self) -> Table {
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
        layers
    }

    /// One row per image (only the ones that did not pass beyond [`ALL_IMAGES_UP_TO`]), then
    /// how many were left out.
    fn images_text(&self) -> String {
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
            images.add_row(image_row(img));
        }
        let mut out = String::new();
        if hidden < self.images.len() {
            out += &format!("{images}\n");
        }
        if hidden > 0 {
            out += &format!("({hidden} passing images not listed)\n");
        }
        if self.summary.images_without_detail > 0 {
            out += &format!(
                "({} passing images kept in parity.json without per-tensor detail: --detail)\n",
                self.summary.images_without_detail
            );
        }
        out
    }

    /// The divergences a near-tie explains, with their causes.
    fn ties_text(&self) -> String {
        let ties: Vec<String> = self
            .all_findings()
            .filter(|f| f.severity == Severity::Tie)
            .map(|f| f.line())
            .collect();
        let mut out = String::new();
        if !ties.is_empty() {
            out += &format!("tie-explained divergences ({}):\n", ties.len());
            for l in ties.iter().take(BREACH_LINES) {
                out += &format!("  {l}\n");
            }
        }
        out
    }

    /// The verdict, with the breached lines when it failed.
    fn gate_text(&self) -> String {
        let s = &self.summary;
        if s.gate_passed {
            return "GATE PASSED\n".into();
        }
        let mut out = format!("GATE FAILED: {} breached line(s):\n", s.breaches.len());
        for l in s.breaches.iter().take(BREACH_LINES) {
            out += &format!("  {l}\n");
        }
        if s.breaches.len() > BREACH_LINES {
            out += &format!(
                "  … {} more in parity.json\n",
                s.breaches.len() - BREACH_LINES
            );
        }
        out
    }
}

/// One image's row: its status, matched counts per region set, worst cosine, label
/// disagreements and finding counts.
fn image_row(img: &ImageReport) -> Vec<Cell> {
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
    vec![
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
    ]
}
