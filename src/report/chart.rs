//! A small SVG chart layer for the report: line charts with a band, grouped bars, waterfalls,
//! horizontal bars and heatmaps. Every mark that shows a table value carries it in `data-*`
//! attributes (`Mark`), so that a test can read the values back from the page and compare them
//! with the tables.

use std::fmt::Write;

use super::html::esc;

/// Where a shown value comes from: table, column, the key columns of its row, and the value.
#[derive(Debug, Clone)]
pub struct Mark {
    pub table: &'static str,
    pub column: &'static str,
    /// (column, value as text) pairs that select the row.
    pub key: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Mark {
    pub fn new(
        table: &'static str,
        column: &'static str,
        key: Vec<(&'static str, String)>,
        value: f64,
    ) -> Mark {
        Mark {
            table,
            column,
            key,
            value,
        }
    }

    /// The `data-*` attributes of the mark. The value is written in Rust's shortest form that
    /// reads back as the same double.
    pub fn attrs(&self) -> String {
        let key = self
            .key
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("|");
        format!(
            " data-table=\"{}\" data-column=\"{}\" data-key=\"{}\" data-value=\"{}\"",
            self.table,
            self.column,
            esc(&key),
            self.value
        )
    }
}

/// A linear map from values to pixels.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Scale {
    pub fn new(lo: f64, hi: f64, from: f64, to: f64) -> Scale {
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, lo + 1.0)
        };
        Scale { lo, hi, from, to }
    }

    pub fn at(&self, v: f64) -> f64 {
        self.from + (v - self.lo) / (self.hi - self.lo) * (self.to - self.from)
    }

    /// About `n` round tick values inside the domain.
    pub fn ticks(&self, n: usize) -> Vec<f64> {
        let span = self.hi - self.lo;
        let raw = span / n.max(1) as f64;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag);
        let mut t = (self.lo / step).ceil() * step;
        let mut out = Vec::new();
        while t <= self.hi + step * 1e-9 && out.len() < 50 {
            out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
            t += step;
        }
        out
    }
}

/// The low and high ends of a value axis that shows every value and zero.
pub fn domain(values: impl Iterator<Item = f64>, with_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if with_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if hi == lo {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    (if lo < 0.0 { lo - pad } else { lo }, hi + pad)
}

/// Short text of a number for axes and labels.
pub fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One line of a line chart: a point per x position (None for no value), each with its mark.
pub struct Series {
    pub name: String,
    pub color: String,
    pub points: Vec<Option<(f64, Mark)>>,
    /// Points drawn hollow (incomplete periods).
    pub hollow: Vec<bool>,
    /// The band's low and high ends per point, when the series has one.
    pub band: Option<Vec<Option<(Mark, Mark)>>>,
}

pub struct Frame {
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    pub fn new(width: f64, height: f64) -> Frame {
        Frame {
            width,
            height,
            left: 52.0,
            right: 12.0,
            top: 12.0,
            bottom: 34.0,
        }
    }

    pub fn small(width: f64, height: f64) -> Frame {
        Frame {
            width,
            height,
            left: 34.0,
            right: 6.0,
            top: 6.0,
            bottom: 18.0,
        }
    }

    fn open(&self, svg: &mut String, label: &str) {
        let _ = write!(
            svg,
            "<svg class=\"chart\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{l}\">",
            w = self.width,
            h = self.height,
            l = esc(label)
        );
    }

    fn y_axis(&self, svg: &mut String, y: &Scale, ticks: usize, format: &dyn Fn(f64) -> String) {
        self.y_axis_in(svg, y, ticks, 1.0, format)
    }

    /// Ticks at round multiples of `unit` (e.g. hours for durations in seconds).
    fn y_axis_in(
        &self,
        svg: &mut String,
        y: &Scale,
        ticks: usize,
        unit: f64,
        format: &dyn Fn(f64) -> String,
    ) {
        let in_unit = Scale::new(y.lo / unit, y.hi / unit, 0.0, 1.0);
        for t in in_unit.ticks(ticks).into_iter().map(|t| t * unit) {
            let py = y.at(t);
            let _ = write!(
                svg,
                "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{py:.1}\" y2=\"{py:.1}\"/>\
                 <text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.left,
                self.width - self.right,
                self.left - 4.0,
                py + 3.5,
                esc(&format(t))
            );
        }
    }

    /// Category labels under the plot, thinned to at most `max` labels.
    fn x_labels(&self, svg: &mut String, xs: &[f64], labels: &[String], max: usize) {
        let n = labels.len();
        let every = n.div_ceil(max.max(1)).max(1);
        let small = self.width < 400.0;
        for (i, (x, l)) in xs.iter().zip(labels).enumerate() {
            let last = i + 1 == n;
            // The last label too, unless it would overlap the one before it.
            let shown = i % every == 0 || (last && (i % every) as f64 >= every as f64 * 0.6);
            if !shown {
                continue;
            }
            // In a small chart the end labels are aligned to the plot's edges, not cut off.
            let (x, anchor) = match (small, i == 0, last) {
                (true, true, _) => (self.left, "start"),
                (true, _, true) => (self.width - self.right, "end"),
                _ => (*x, "middle"),
            };
            let _ = write!(
                svg,
                "<text class=\"tick\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                self.height - self.bottom + 13.0,
                esc(l)
            );
        }
    }

    /// Opens a chart of categories: the value axis (ticks at multiples of `tick_unit`), the
    /// category labels (each about `label_width` pixels), and the categories' centres and
    /// slot width.
    #[allow(clippy::too_many_arguments)]
    fn categories(
        &self,
        svg: &mut String,
        label: &str,
        labels: &[String],
        y: &Scale,
        tick_unit: f64,
        y_format: &dyn Fn(f64) -> String,
        label_width: f64,
    ) -> (Vec<f64>, f64) {
        let xs = self.positions(labels.len());
        self.open(svg, label);
        self.y_axis_in(svg, y, 5, tick_unit, y_format);
        self.x_labels(
            svg,
            &xs,
            labels,
            ((self.width - self.left) / label_width) as usize,
        );
        let slot = (self.width - self.left - self.right) / labels.len().max(1) as f64;
        (xs, slot)
    }

    fn positions(&self, n: usize) -> Vec<f64> {
        let w = self.width - self.left - self.right;
        (0..n)
            .map(|i| self.left + (i as f64 + 0.5) * w / n.max(1) as f64)
            .collect()
    }
}

/// A line chart over categorical x positions, with optional bands and hollow points.
pub fn lines(
    frame: &Frame,
    label: &str,
    x_labels: &[String],
    series: &[Series],
    y_format: &dyn Fn(f64) -> String,
    with_zero: bool,
) -> String {
    let mut values: Vec<f64> = Vec::new();
    for s in series {
        values.extend(s.points.iter().flatten().map(|p| p.0));
        if let Some(band) = &s.band {
            for (lo, hi) in band.iter().flatten() {
                values.push(lo.value);
                values.push(hi.value);
            }
        }
    }
    let (lo, hi) = domain(values.into_iter(), with_zero);
    let y = Scale::new(lo, hi, frame.height - frame.bottom, frame.top);
    let xs = frame.positions(x_labels.len());
    let mut svg = String::new();
    frame.open(&mut svg, label);
    frame.y_axis(
        &mut svg,
        &y,
        if frame.height < 150.0 { 3 } else { 5 },
        y_format,
    );
    frame.x_labels(
        &mut svg,
        &xs,
        x_labels,
        ((frame.width - frame.left) / 70.0) as usize,
    );
    let radius = if frame.height < 150.0 { 2.0 } else { 3.0 };
    for s in series {
        if let Some(band) = &s.band {
            // One polygon per run of points that have both ends.
            let mut run: Vec<(f64, f64, f64)> = Vec::new();
            let flush = |run: &mut Vec<(f64, f64, f64)>, svg: &mut String| {
                if run.len() > 1 {
                    let upper: Vec<String> = run
                        .iter()
                        .map(|(x, _, h)| format!("{x:.1},{:.1}", y.at(*h)))
                        .collect();
                    let lower: Vec<String> = run
                        .iter()
                        .rev()
                        .map(|(x, l, _)| format!("{x:.1},{:.1}", y.at(*l)))
                        .collect();
                    let _ = write!(
                        svg,
                        "<polygon class=\"band\" fill=\"{}\" points=\"{} {}\"/>",
                        s.color,
                        upper.join(" "),
                        lower.join(" ")
                    );
                }
                run.clear();
            };
            for (i, b) in band.iter().enumerate() {
                match b {
                    Some((l, h)) => run.push((xs[i], l.value, h.value)),
                    None => flush(&mut run, &mut svg),
                }
            }
            flush(&mut run, &mut svg);
            // The band's ends as invisible marks, so that their values can be read.
            for (i, b) in band.iter().enumerate() {
                if let Some((l, h)) = b {
                    for m in [l, h] {
                        let _ = write!(
                            svg,
                            "<circle class=\"band-end\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"0\"{}/>",
                            xs[i],
                            y.at(m.value),
                            m.attrs()
                        );
                    }
                }
            }
        }
        let mut path = String::new();
        let mut pen_down = false;
        for (i, p) in s.points.iter().enumerate() {
            match p {
                Some((v, _)) => {
                    let _ = write!(
                        path,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        xs[i],
                        y.at(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = write!(
            svg,
            "<path class=\"line\" stroke=\"{}\" d=\"{}\"><title>{}</title></path>",
            s.color,
            path.trim_end(),
            esc(&s.name)
        );
        for (i, p) in s.points.iter().enumerate() {
            if let Some((v, m)) = p {
                let hollow = s.hollow.get(i).copied().unwrap_or(false);
                let _ = write!(
                    svg,
                    "<circle class=\"point{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{radius}\" stroke=\"{c}\" fill=\"{}\"{}><title>{}: {}</title></circle>",
                    if hollow { " incomplete" } else { "" },
                    xs[i],
                    y.at(*v),
                    if hollow { "white" } else { s.color.as_str() },
                    m.attrs(),
                    esc(&x_labels[i]),
                    esc(&y_format(*v)),
                    c = s.color,
                );
            }
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One bar: its value's mark and color.
pub struct Bar {
    pub mark: Mark,
    pub color: String,
}

/// Grouped vertical bars: one group per label, the same bars in each.
pub fn grouped_bars(
    frame: &Frame,
    label: &str,
    groups: &[(String, Vec<Option<Bar>>)],
    y_format: &dyn Fn(f64) -> String,
    tick_unit: f64,
) -> String {
    let values = groups
        .iter()
        .flat_map(|(_, bars)| bars.iter().flatten().map(|b| b.mark.value));
    let (lo, hi) = domain(values, true);
    let y = Scale::new(lo, hi, frame.height - frame.bottom, frame.top);
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    let mut svg = String::new();
    let (xs, slot) = frame.categories(&mut svg, label, &labels, &y, tick_unit, y_format, 60.0);
    for ((name, bars), x) in groups.iter().zip(&xs) {
        let n = bars.len().max(1) as f64;
        let w = slot * 0.8 / n;
        for (j, b) in bars.iter().enumerate() {
            let Some(b) = b else { continue };
            let v = b.mark.value;
            let (y0, y1) = (y.at(0.0), y.at(v));
            let _ = write!(
                svg,
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"{}><title>{}: {}</title></rect>",
                x - slot * 0.4 + j as f64 * w,
                y0.min(y1),
                (w - 1.0).max(1.0),
                (y0 - y1).abs().max(0.5),
                b.color,
                b.mark.attrs(),
                esc(name),
                esc(&y_format(v))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// One step of a waterfall: its mark, and whether it moves the running total down (`-1`), up
/// (`1`) or is a total bar (`0`).
pub struct Step {
    pub label: &'static str,
    pub mark: Mark,
    pub direction: i8,
}

/// Waterfalls side by side, one per group (a period): totals from zero, changes floating from
/// the running total.
pub fn waterfalls(frame: &Frame, label: &str, groups: &[(String, Vec<Step>)]) -> String {
    let mut values = vec![0.0];
    for (_, steps) in groups {
        let mut running = 0.0;
        for s in steps {
            running = match s.direction {
                0 => s.mark.value,
                d => running + d as f64 * s.mark.value,
            };
            values.push(running);
        }
    }
    let (lo, hi) = domain(values.into_iter(), true);
    let y = Scale::new(lo, hi, frame.height - frame.bottom, frame.top);
    let labels: Vec<String> = groups.iter().map(|g| g.0.clone()).collect();
    let mut svg = String::new();
    let (xs, slot) = frame.categories(&mut svg, label, &labels, &y, 1.0, &short, 70.0);
    for ((name, steps), x) in groups.iter().zip(&xs) {
        let w = slot * 0.84 / steps.len().max(1) as f64;
        let mut running = 0.0;
        for (j, s) in steps.iter().enumerate() {
            let v = s.mark.value;
            let (from, to) = match s.direction {
                0 => {
                    running = v;
                    (0.0, v)
                }
                -1 => {
                    let from = running;
                    running -= v;
                    (from, running)
                }
                _ => {
                    let from = running;
                    running += v;
                    (from, running)
                }
            };
            let class = s.label;
            let (a, b) = (y.at(from), y.at(to));
            let _ = write!(
                svg,
                "<rect class=\"step {class}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"{}><title>{} {}: {}{}</title></rect>",
                x - slot * 0.42 + j as f64 * w,
                a.min(b),
                (w - 0.5).max(0.5),
                (a - b).abs().max(0.5),
                s.mark.attrs(),
                esc(name),
                s.label,
                match s.direction {
                    -1 => "−",
                    1 => "+",
                    _ => "",
                },
                v
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars around zero, one per row, each with a label and a note (customer counts).
/// `higher_is_worse` colors the bars above zero as bad (red).
pub fn hbars(
    width: f64,
    label: &str,
    rows: &[(String, Mark, String)],
    x_format: &dyn Fn(f64) -> String,
    higher_is_worse: bool,
) -> String {
    let row_h = 22.0;
    let (left, right) = (150.0, 170.0);
    let height = rows.len() as f64 * row_h + 24.0;
    let (lo, hi) = domain(rows.iter().map(|r| r.1.value), true);
    let x = Scale::new(lo, hi, left, width - right);
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">",
        esc(label)
    );
    for t in x.ticks(4) {
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"4\" y2=\"{:.1}\"/><text class=\"tick\" x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            height - 18.0,
            height - 6.0,
            esc(&x_format(t)),
            px = x.at(t)
        );
    }
    for (i, (name, mark, note)) in rows.iter().enumerate() {
        let cy = 4.0 + i as f64 * row_h;
        let (a, b) = (x.at(0.0), x.at(mark.value));
        let _ = write!(
            svg,
            "<text class=\"label\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar {}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"{}><title>{}: {}</title></rect>\
             <text class=\"note\" x=\"{:.1}\" y=\"{:.1}\">{} {}</text>",
            left - 6.0,
            cy + 14.0,
            esc(name),
            if (mark.value < 0.0) != higher_is_worse {
                "worse"
            } else {
                "better"
            },
            a.min(b),
            cy + 3.0,
            (a - b).abs().max(0.5),
            row_h - 6.0,
            mark.attrs(),
            esc(name),
            esc(&x_format(mark.value)),
            width - right + 6.0,
            cy + 14.0,
            esc(&x_format(mark.value)),
            esc(note)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One heatmap cell: its mark (None: no value), the text shown, and whether it is incomplete.
pub struct Cell {
    pub mark: Option<Mark>,
    pub text: String,
    pub incomplete: bool,
}

/// A heatmap of rows × columns, shaded by the value between `lo` and `hi`.
pub fn heatmap(
    label: &str,
    row_labels: &[String],
    column_labels: &[String],
    cells: &[Vec<Option<Cell>>],
    (lo, hi): (f64, f64),
) -> String {
    let (left, top, cw, ch) = (80.0, 22.0, 42.0, 20.0);
    let width = left + column_labels.len() as f64 * cw + 4.0;
    let height = top + row_labels.len() as f64 * ch + 4.0;
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"chart heatmap\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"{}\">\
         <defs><pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
         <line x1=\"0\" y1=\"0\" x2=\"0\" y2=\"6\" stroke=\"#777\" stroke-width=\"1.5\"/></pattern></defs>",
        esc(label)
    );
    for (j, c) in column_labels.iter().enumerate() {
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{:.1}\" y=\"14\" text-anchor=\"middle\">{}</text>",
            left + (j as f64 + 0.5) * cw,
            esc(c)
        );
    }
    for (i, r) in row_labels.iter().enumerate() {
        let y = top + i as f64 * ch;
        let _ = write!(
            svg,
            "<text class=\"tick\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            y + 14.0,
            esc(r)
        );
        for (j, cell) in cells[i].iter().enumerate() {
            let Some(cell) = cell else { continue };
            let x = left + j as f64 * cw;
            let shade = cell
                .mark
                .as_ref()
                .map(|m| ((m.value - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0))
                .unwrap_or(0.0);
            let fill = if cell.mark.is_some() {
                blend(shade)
            } else {
                "#eeeeee".to_string()
            };
            let attrs = cell.mark.as_ref().map(|m| m.attrs()).unwrap_or_default();
            let _ = write!(
                svg,
                "<g class=\"cell{}\"><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"{attrs}><title>{} · {}: {}{}</title></rect>",
                if cell.incomplete { " incomplete" } else { "" },
                cw - 1.0,
                ch - 1.0,
                esc(r),
                esc(&column_labels[j]),
                esc(&cell.text),
                if cell.incomplete { " (incomplete)" } else { "" }
            );
            if cell.incomplete {
                let _ = write!(
                    svg,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"url(#hatch)\" opacity=\"0.45\"/>",
                    cw - 1.0,
                    ch - 1.0
                );
            }
            let _ = write!(
                svg,
                "<text class=\"cell-text{}\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text></g>",
                if shade > 0.6 { " dark" } else { "" },
                x + cw / 2.0,
                y + 14.0,
                esc(&cell.text)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// From pale to deep blue.
fn blend(t: f64) -> String {
    let (a, b) = ([239.0, 246.0, 255.0], [29.0, 78.0, 216.0]);
    let c: Vec<u8> = (0..3)
        .map(|i| (a[i] + (b[i] - a[i]) * t).round() as u8)
        .collect();
    format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2])
}

/// Distinct colors for series, cycling.
pub fn color(i: usize) -> String {
    const PALETTE: [&str; 10] = [
        "#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f",
        "#7c2d12", "#475569",
    ];
    PALETTE[i % PALETTE.len()].to_string()
}

/// A color along a gradient for the i-th of n ordered series (older cohorts paler).
pub fn ramp(i: usize, n: usize) -> String {
    let t = if n <= 1 {
        1.0
    } else {
        i as f64 / (n - 1) as f64
    };
    blend(0.25 + 0.75 * t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_and_ticks() {
        let s = Scale::new(0.0, 100.0, 200.0, 0.0);
        assert_eq!(s.at(0.0), 200.0);
        assert_eq!(s.at(50.0), 100.0);
        assert_eq!(s.ticks(5), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let s = Scale::new(-0.3, 0.7, 0.0, 1.0);
        assert_eq!(s.ticks(4), vec![-0.25, 0.0, 0.25, 0.5]);
    }

    #[test]
    fn a_mark_keeps_the_exact_value() {
        let m = Mark::new("t", "c", vec![("k", "a<b".into())], 0.1 + 0.2);
        let attrs = m.attrs();
        assert!(
            attrs.contains("data-value=\"0.30000000000000004\""),
            "{attrs}"
        );
        assert!(attrs.contains("data-key=\"k=a&lt;b\""), "{attrs}");
    }
}
