//! `parity.html`: one self-contained page (inline CSS and SVG, no scripts, no external files).
use std::fmt::Write;

use super::sci;
use crate::boxes::format_box;
use crate::report::{HistogramBin, LayerSummary, Report, Severity, Status};

/// Table rows shown per section; the rest are in parity.json.
const MAX_ROWS: usize = 300;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1150px; color: #1d232b; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #dde1e6; padding-bottom: 4px; }
.sub { color: #5b6570; margin-bottom: 12px; word-break: break-all; }
.badge { display: inline-block; padding: 3px 10px; border-radius: 4px; font-weight: 600; color: #fff; }
.pass { background: #1f8a4c; } .fail { background: #c62828; } .tie { background: #b7791f; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border: 1px solid #dde1e6; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.s-fail td:first-child { border-left: 4px solid #c62828; } tr.s-tie td:first-child { border-left: 4px solid #b7791f; }
.cards { display: flex; gap: 10px; flex-wrap: wrap; } .card { border: 1px solid #dde1e6; border-radius: 6px; padding: 8px 14px; min-width: 110px; }
.card b { display: block; font-size: 20px; } .muted { color: #6b7580; } code { font-size: 12px; }
ul.breach li { color: #8e1c1c; font-family: ui-monospace, monospace; font-size: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: #1d232b; }
"#;

impl Report {
    /// The report as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        let s = &self.summary;
        let mut h = String::new();
        let (badge, label) = if s.gate_passed {
            ("pass", "GATE PASSED")
        } else {
            ("fail", "GATE FAILED")
        };
        let _ = write!(
            h,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>butd parity report</title>\
             <style>{STYLE}</style></head><body><h1>butd verify: parity report <span class=\"badge {badge}\">{label}</span></h1>\
             <div class=\"sub\">golden <code>{}</code> · candidate <code>{}</code> · schema <code>{}</code> · {:.2} s</div>",
            esc(&self.golden_dir),
            esc(&self.candidate_dir),
            esc(&self.schema),
            s.seconds
        );
        let sources = self.source_lines();
        if !sources.is_empty() {
            h += "<pre class=\"muted\">";
            for line in &sources {
                let _ = writeln!(h, "{}", esc(line));
            }
            h += "</pre>";
        }
        h += "<div class=\"cards\">";
        for (name, v) in [
            ("golden images", s.golden_images),
            ("compared", s.compared),
            ("pass", s.passed),
            ("tie-explained", s.tie_explained),
            ("fail", s.failed),
            ("missing", s.missing_images),
            ("extra", s.extra_images),
        ] {
            let _ = write!(h, "<div class=\"card\"><b>{v}</b>{name}</div>");
        }
        h += "</div>";

        if !s.breaches.is_empty() {
            let _ = write!(
                h,
                "<h2>Breached lines ({})</h2><ul class=\"breach\">",
                s.breaches.len()
            );
            for b in s.breaches.iter().take(MAX_ROWS) {
                let _ = write!(h, "<li>{}</li>", esc(b));
            }
            h += "</ul>";
        }

        h += "<h2>Per-layer error</h2><p class=\"muted\">Per tensor, the gated figure over images \
              (max|Δ|/max|golden|, or max|Δ| where parity.toml bounds the absolute error; region \
              tensors on matched rows): bar from the best to the worst image, dot at the median, \
              red tick at the parity.toml limit. Log scale; exact zeros sit in the column marked 0.</p>";
        h += &layer_svg(&self.layers);
        h += &layer_table(&self.layers);
        for line in self.half_precision_lines() {
            let _ = write!(h, "<p class=\"muted\">{}</p>", esc(&line));
        }

        h += "<h2>Matched-feature cosine</h2><p class=\"muted\">Cosine between golden and candidate \
              <code>features</code> of every matched final region, binned by 1 − cosine.</p>";
        h += &histogram_svg(&self.cosine_histogram);

        h += &self.label_table();
        h += &self.unmatched_table();
        h += &self.images_table();
        h += &self.findings_table();
        h += "</body></html>\n";
        h
    }

    fn label_table(&self) -> String {
        let rows: Vec<String> = self
            .images
            .iter()
            .flat_map(|img| {
                img.regions.iter().flat_map(move |r| {
                    r.label_disagreements.iter().map(move |d| {
                        format!(
                            "<tr class=\"s-{}\"><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">#{} → #{}</td>\
                             <td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                            if d.cause.is_some() { "tie" } else { "fail" },
                            esc(&img.image),
                            r.set.name(),
                            esc(&d.label),
                            d.golden_index,
                            d.candidate_index,
                            esc(&crate::names::named(&d.label, d.golden)),
                            esc(&crate::names::named(&d.label, d.candidate)),
                            format_box(&d.bbox),
                            d.cause.as_deref().map_or("—".into(), esc)
                        )
                    })
                })
            })
            .collect();
        section(
            "Label disagreements",
            "On matched regions. Final records: the gated <code>[labels] exact</code> ids and \
             <code>keep</code>; rois: the argmax of <code>cls_prob</code> / <code>attr_prob</code> \
             over columns 1… (reported, not gated).",
            &[
                "image",
                "set",
                "label",
                "golden → candidate",
                "golden",
                "candidate",
                "golden box",
                "near-tie",
            ],
            &rows,
        )
    }

    fn unmatched_table(&self) -> String {
        let mut rows = Vec::new();
        for img in &self.images {
            for r in &img.regions {
                for (side, list) in [
                    ("golden", &r.unmatched_golden),
                    ("candidate", &r.unmatched_candidate),
                ] {
                    for u in list {
                        rows.push(format!(
                            "<tr class=\"s-{}\"><td>{}</td><td>{}</td><td>{side}</td><td class=\"num\">#{}</td>\
                             <td>{}</td><td class=\"num\">{:.3}</td><td>{}</td></tr>",
                            if u.cause.is_some() { "tie" } else { "fail" },
                            esc(&img.image),
                            r.set.name(),
                            u.index,
                            format_box(&u.bbox),
                            u.best_iou,
                            u.cause.as_deref().map_or("—".into(), esc)
                        ));
                    }
                }
            }
        }
        section(
            "Unmatched regions",
            "Regions without a partner (IoU below [matching] min_iou after optimal assignment).",
            &[
                "image", "set", "side", "index", "box", "best IoU", "near-tie",
            ],
            &rows,
        )
    }

    fn images_table(&self) -> String {
        let rows: Vec<String> = self
            .images
            .iter()
            .map(|img| {
                let regions: Vec<String> = img
                    .regions
                    .iter()
                    .map(|r| {
                        format!(
                            "{}: {}/{} matched ({} cand.){}{}",
                            r.set.name(),
                            r.matched,
                            r.golden_count,
                            r.candidate_count,
                            if r.inversions == 0 { "" } else { ", order differs" },
                            r.min_feature_cosine
                                .map_or(String::new(), |c| format!(", min cos {c:.9}"))
                        )
                    })
                    .collect();
                let status = match img.status {
                    Status::Pass => "pass",
                    Status::Tie => "tie",
                    Status::Fail => "fail",
                };
                format!(
                    "<tr class=\"s-{status}\"><td>{}</td><td><span class=\"badge {status}\">{status}</span></td><td>{}</td><td class=\"num\">{}</td></tr>",
                    esc(&img.image),
                    esc(&regions.join("; ")),
                    img.findings.iter().filter(|f| f.severity >= Severity::Warn).count()
                )
            })
            .collect();
        section(
            "Images",
            "",
            &["image", "status", "regions", "findings"],
            &rows,
        )
    }

    fn findings_table(&self) -> String {
        let rows: Vec<String> = self
            .all_findings()
            .filter(|f| f.severity >= Severity::Warn)
            .map(|f| {
                let sev = match f.severity {
                    Severity::Fail => "fail",
                    Severity::Tie => "tie",
                    _ => "warn",
                };
                format!(
                    "<tr class=\"s-{sev}\"><td>{}</td><td>{sev}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&f.image),
                    serde_json::to_value(f.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default(),
                    esc(&f.subject),
                    esc(&f.message),
                    f.cause.as_deref().map_or("—".into(), esc)
                )
            })
            .collect();
        section(
            "Findings",
            "Failures, tie-explained divergences and warnings (info lines are in parity.json).",
            &[
                "image", "severity", "kind", "subject", "message", "near-tie",
            ],
            &rows,
        )
    }
}

fn section(title: &str, note: &str, header: &[&str], rows: &[String]) -> String {
    let mut h = format!("<h2>{title} ({})</h2>", rows.len());
    if !note.is_empty() {
        let _ = write!(h, "<p class=\"muted\">{note}</p>");
    }
    if rows.is_empty() {
        h += "<p class=\"muted\">None.</p>";
        return h;
    }
    h += "<table><tr>";
    for c in header {
        let _ = write!(h, "<th>{c}</th>");
    }
    h += "</tr>";
    for r in rows.iter().take(MAX_ROWS) {
        h += r;
    }
    h += "</table>";
    if rows.len() > MAX_ROWS {
        let _ = write!(
            h,
            "<p class=\"muted\">… {} more rows in parity.json</p>",
            rows.len() - MAX_ROWS
        );
    }
    h
}

fn layer_table(layers: &[LayerSummary]) -> String {
    let rows: Vec<String> = layers
        .iter()
        .map(|l| {
            let over = l.over_limit();
            format!(
                "<tr class=\"s-{}\"><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
                if over { "fail" } else { "pass" },
                esc(&l.name),
                l.metric.label(),
                l.images,
                sci(l.min),
                sci(l.median),
                sci(l.max),
                l.limit.map_or("—".into(), sci),
                if l.max == 0.0 { "—".into() } else { esc(&l.worst_image) }
            )
        })
        .collect();
    let mut h = String::from("<table><tr>");
    for c in [
        "tensor",
        "metric",
        "images",
        "min",
        "median",
        "max",
        "limit",
        "worst image",
    ] {
        let _ = write!(h, "<th>{c}</th>");
    }
    h += "</tr>";
    for r in rows {
        h += &r;
    }
    h + "</table>"
}

fn layer_svg(layers: &[LayerSummary]) -> String {
    if layers.is_empty() {
        return "<p class=\"muted\">No tensor compared.</p>".into();
    }
    let positive: Vec<f64> = layers
        .iter()
        .flat_map(|l| [l.min, l.median, l.max].into_iter().chain(l.limit))
        .filter(|v| *v > 0.0 && v.is_finite())
        .collect();
    let lo_v = positive.iter().copied().fold(f64::INFINITY, f64::min);
    let hi_v = positive.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (mut lo, mut hi) = if positive.is_empty() {
        (-8, 0)
    } else {
        (lo_v.log10().floor() as i32, hi_v.log10().ceil() as i32)
    };
    lo = (lo - 1).max(-16);
    hi = hi.max(lo + 3);
    // Exact zeros get their own column left of the log axis.
    let (zero_x, left, right, row_h, top) = (190.0, 230.0, 110.0, 24.0, 26.0);
    let width = 1100.0;
    let plot_w = width - left - right;
    let height = top + row_h * layers.len() as f64 + 10.0;
    let x = |v: f64| -> f64 {
        if v.is_nan() || v <= 0.0 {
            return zero_x;
        }
        if v.is_infinite() {
            return left + plot_w;
        }
        let t = (v.log10() - f64::from(lo)) / f64::from(hi - lo);
        left + plot_w * t.clamp(0.0, 1.0)
    };
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"per-layer error\">"
    );
    let _ = write!(
        s,
        "<text x=\"{zero_x:.1}\" y=\"14\" text-anchor=\"middle\">0</text>\
         <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c4c9cf\" stroke-dasharray=\"2 3\"/>",
        (zero_x + left) / 2.0,
        top - 6.0,
        (zero_x + left) / 2.0,
        height - 6.0
    );
    for e in lo..=hi {
        let xe = x(10f64.powi(e));
        let _ = write!(
            s,
            "<line x1=\"{xe:.1}\" y1=\"{:.1}\" x2=\"{xe:.1}\" y2=\"{:.1}\" stroke=\"#e3e6ea\"/>\
             <text x=\"{xe:.1}\" y=\"14\" text-anchor=\"middle\">1e{e}</text>",
            top - 6.0,
            height - 6.0
        );
    }
    for (k, l) in layers.iter().enumerate() {
        let y = top + row_h * (k as f64 + 0.5);
        let over = l.over_limit();
        let color = if over { "#c62828" } else { "#2b6cb0" };
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{color}\" stroke-width=\"3\" stroke-linecap=\"round\"/>\
             <line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{color}\" stroke-width=\"2\"/>\
             <circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#fff\" stroke=\"{color}\" stroke-width=\"2\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}{}</text>",
            zero_x - 12.0,
            y + 4.0,
            esc(&l.name),
            x(l.min),
            x(l.max),
            x(l.max),
            y - 7.0,
            x(l.max),
            y + 7.0,
            x(l.median),
            width - right + 8.0,
            y + 4.0,
            sci(l.max),
            if over { " ✗" } else { "" }
        );
        if let Some(lim) = l.limit {
            let xl = x(lim);
            let _ = write!(
                s,
                "<line x1=\"{xl:.1}\" y1=\"{:.1}\" x2=\"{xl:.1}\" y2=\"{:.1}\" stroke=\"#c62828\" stroke-width=\"2\" stroke-dasharray=\"3 2\"/>",
                y - 10.0,
                y + 10.0
            );
        }
    }
    s + "</svg>"
}

fn histogram_svg(bins: &[HistogramBin]) -> String {
    let total: usize = bins.iter().map(|b| b.count).sum();
    if total == 0 {
        return "<p class=\"muted\">No matched final features.</p>".into();
    }
    let max = bins.iter().map(|b| b.count).max().unwrap_or(1).max(1) as f64;
    let (width, height, left, bottom, top) = (900.0, 250.0, 40.0, 40.0, 24.0);
    let bw = (width - left - 10.0) / bins.len() as f64;
    let plot_h = height - bottom - top;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100%\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"cosine histogram\">\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#8a939c\"/>",
        height - bottom,
        width - 10.0,
        height - bottom
    );
    for (k, b) in bins.iter().enumerate() {
        // Non-empty bins stay visible next to a dominant one.
        let h = if b.count > 0 {
            (plot_h * b.count as f64 / max).max(2.0)
        } else {
            0.0
        };
        let x0 = left + bw * k as f64;
        let color = if b.hi <= 1e-6 { "#2b6cb0" } else { "#c62828" };
        let pct = 100.0 * b.count as f64 / total as f64;
        let _ = write!(
            s,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\" opacity=\"0.85\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} ({pct:.1}%)</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            x0 + 6.0,
            height - bottom - h,
            bw - 12.0,
            x0 + bw / 2.0,
            height - bottom - h - 6.0,
            b.count,
            x0 + bw / 2.0,
            height - bottom + 16.0,
            esc(&b.label)
        );
    }
    s + "</svg>"
}
