//! HTML text: escaping, number formats, and the page around the sections (styles inline, no
//! script, no font or image from anywhere else).

use std::fmt::Write;

/// Text escaped for an element's content or a double-quoted attribute.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with `decimals` places and thousands separators.
pub fn num(v: f64, decimals: usize) -> String {
    if !v.is_finite() {
        return "–".into();
    }
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (text.clone(), None),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "−"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A share (0 to 1) as a percentage.
pub fn pct(v: f64) -> String {
    format!("{}%", num(v * 100.0, 1))
}

/// A duration in seconds as minutes or hours.
pub fn duration(s: f64) -> String {
    if !s.is_finite() {
        "–".into()
    } else if s.abs() < 120.0 {
        format!("{}s", num(s, 0))
    } else if s.abs() < 7200.0 {
        format!("{}m", num(s / 60.0, 1))
    } else {
        format!("{}h", num(s / 3600.0, 1))
    }
}

/// One section of the page.
pub struct Section {
    pub id: &'static str,
    pub title: &'static str,
    pub body: String,
}

/// A table of text cells (already escaped, marks allowed) with a header row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><thead><tr>");
    for h in header {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr></thead><tbody>");
    for r in rows {
        t.push_str("<tr>");
        for c in r {
            let _ = write!(t, "<td>{c}</td>");
        }
        t.push_str("</tr>");
    }
    t.push_str("</tbody></table>");
    t
}

/// The whole page: a title, a contents line, then the sections.
pub fn page(title: &str, subtitle: &str, sections: &[Section]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><header><h1>{}</h1><p class=\"sub\">{}</p><nav>",
        esc(title),
        esc(title),
        esc(subtitle)
    );
    for s in sections {
        let _ = write!(html, "<a href=\"#{}\">{}</a>", s.id, esc(s.title));
    }
    html.push_str("</nav></header><main>");
    for s in sections {
        let _ = write!(
            html,
            "<section id=\"{}\"><h2>{}</h2>{}</section>",
            s.id,
            esc(s.title),
            s.body
        );
    }
    html.push_str("</main></body></html>\n");
    html
}

const STYLE: &str = "\
:root{--ink:#1f2937;--muted:#6b7280;--line:#e5e7eb;--up:#16a34a;--down:#dc2626;--total:#64748b}\
*{box-sizing:border-box}\
body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:var(--ink);background:#fff}\
header{padding:20px 28px 8px;border-bottom:1px solid var(--line)}\
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0 0 10px}h3{font-size:14px;margin:14px 0 6px}\
.sub{color:var(--muted);margin:0 0 8px}\
nav a{margin-right:12px;color:#2563eb;text-decoration:none;font-size:13px}\
main{padding:8px 28px 28px;max-width:1280px}\
section{padding:14px 0;border-bottom:1px solid var(--line);break-inside:avoid-page}\
.note-text{color:var(--muted);font-size:12px;margin:4px 0}\
.cards{display:flex;flex-wrap:wrap;gap:12px}\
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;min-width:200px}\
.card .big{font-size:26px;font-weight:600}\
.card .small{color:var(--muted);font-size:12px}\
.multiples{display:flex;flex-wrap:wrap;gap:8px}\
.multiple{border:1px solid var(--line);border-radius:6px;padding:4px}\
.multiple .name{font-size:11px;color:var(--muted);margin:0 0 2px 4px}\
.scroll{overflow-x:auto}\
table{border-collapse:collapse;margin:6px 0;font-size:12.5px}\
th,td{border-bottom:1px solid var(--line);padding:3px 10px;text-align:right}\
th:first-child,td:first-child{text-align:left}\
th{color:var(--muted);font-weight:600}\
svg.chart{max-width:100%;height:auto;display:block}\
svg .grid{stroke:var(--line);stroke-width:1}\
svg .tick{font-size:10px;fill:var(--muted)}\
svg .label{font-size:11px;fill:var(--ink)}\
svg .note{font-size:10.5px;fill:var(--muted)}\
svg .line{fill:none;stroke-width:2}\
svg .band{opacity:.15}\
svg .point.incomplete{stroke-width:1.5}\
svg .bar.better{fill:#2563eb}svg .bar.worse{fill:#dc2626}\
svg .step.start,svg .step.end{fill:var(--total)}svg .step.churned{fill:var(--down)}\
svg .step.new{fill:var(--up)}svg .step.reactivated{fill:#0d9488}\
svg .cell-text{font-size:9.5px;fill:var(--ink)}svg .cell-text.dark{fill:#fff}\
.legend{font-size:12px;color:var(--muted);margin:4px 0}\
.legend span{display:inline-block;margin-right:12px}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px;vertical-align:-1px}\
.rfm td{text-align:center;font-size:11px;padding:6px 4px;min-width:96px;border:1px solid #fff}\
@media print{nav{display:none}main{padding:0 12px}section{break-inside:avoid}body{font-size:12px}}\
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_escapes() {
        assert_eq!(num(1234567.891, 2), "1,234,567.89");
        assert_eq!(num(-0.004, 2), "0.00");
        assert_eq!(num(-12.5, 1), "−12.5");
        assert_eq!(pct(0.2054), "20.5%");
        assert_eq!(duration(90.0), "90s");
        assert_eq!(duration(1800.0), "30.0m");
        assert_eq!(duration(14400.0), "4.0h");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
