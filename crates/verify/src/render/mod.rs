//! The report's renderers: [`Report::to_terminal`] (`text`, comfy-table) and
//! [`Report::to_html`] (`html`, one self-contained page). They read a finished [`Report`] and
//! nothing else (the vocabulary's words for label ids aside): every figure they show is in
//! `parity.json`, so the three outputs cannot disagree. What both renderers say the same way
//! is here.
use crate::report::Report;

mod html;
mod text;

/// `0`, `inf`, or three significant digits in scientific notation.
fn sci(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.is_infinite() {
        "inf".into()
    } else {
        format!("{v:.2e}")
    }
}

impl Report {
    /// What the two sides are, what their formats hold and how they were paired: shown when a
    /// side is not a record directory or the run is a sample.
    fn source_lines(&self) -> Vec<String> {
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

    /// One line per tensor compared with 16-bit values on a side: the bound it was given.
    fn half_precision_lines(&self) -> Vec<String> {
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
}
