//! The self-contained HTML report: inline CSS and SVG, no scripts, no network.

use super::{ExperimentResult, Report, Verdict};

/// Escape text for HTML element content and attribute values.
pub(super) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// The reason under a verdict that is not a pass.
fn why(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!("<span class=\"why\">{}</span>", esc(reason))
    }
}

fn badge(v: Verdict) -> String {
    format!("<span class=\"badge {0}\">{0}</span>", v.name())
}

const CSS: &str = r#"
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --bg:#ffffff; --soft:#f6f8fa;
  --pass:#1a7f37; --fail:#cf222e; --unclear:#9a6700; --crossover:#0969da; --error:#8250df; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg); background:var(--bg); }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 22px; margin: 40px 0 8px; padding-top: 12px; border-top: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; }
.lede { color: var(--muted); margin: 0 0 16px; }
.dial { display:flex; gap: 18px; align-items:center; background: var(--soft); border:1px solid var(--line); border-radius: 8px; padding: 12px 16px; margin: 12px 0 20px; }
.dial svg { flex: none; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
td.num { font-variant-numeric: tabular-nums; }
.badge { display:inline-block; min-width: 58px; text-align:center; padding: 1px 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.badge.pass { background: var(--pass); } .badge.fail { background: var(--fail); }
.badge.unclear { background: var(--unclear); } .badge.error { background: var(--error); }
.badge.crossover { background: var(--crossover); }
.why { color: var(--muted); font-size: 13px; display: block; margin-top: 2px; }
figure { margin: 12px 0 20px; }
figure svg { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
pre { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; overflow-x: auto; font-size: 13px; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--muted); }
.note { color: var(--muted); font-size: 14px; }
.summary-counts span { margin-right: 14px; }
a { color: #0969da; }
"#;

/// The richness dial: a half-gauge from r = 0 (lazy, NTK) to r = 1/2 (rich, μP).
fn dial_svg() -> String {
    let mut s = String::from(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="220" height="120" viewBox="0 0 220 120" role="img" aria-label="the richness dial">
<path d="M 20 110 A 90 90 0 0 1 200 110" fill="none" stroke="#d0d7de" stroke-width="14"/>
<path d="M 20 110 A 90 90 0 0 1 110 20" fill="none" stroke="#54aeff" stroke-width="14"/>
<path d="M 110 20 A 90 90 0 0 1 200 110" fill="none" stroke="#ff8182" stroke-width="14"/>
"##,
    );
    s.push_str(r##"<text x="12" y="118" font-size="11" fill="#57606a" font-family="sans-serif">r = 0</text>"##);
    s.push_str(r##"<text x="168" y="118" font-size="11" fill="#57606a" font-family="sans-serif">r = ½</text>"##);
    s.push_str(r##"<text x="40" y="70" font-size="12" fill="#0969da" font-family="sans-serif">lazy</text>"##);
    s.push_str(r##"<text x="150" y="70" font-size="12" fill="#cf222e" font-family="sans-serif">rich</text>"##);
    s.push_str(r##"<line x1="110" y1="110" x2="160" y2="45" stroke="#1b1f24" stroke-width="3"/><circle cx="110" cy="110" r="5" fill="#1b1f24"/></svg>"##);
    s
}

fn section(e: &ExperimentResult) -> String {
    let mut h = String::new();
    h.push_str(&format!(
        "<h2 id=\"{}\">{} · {} {}</h2>\n",
        e.id.stem(),
        e.id.name(),
        esc(&e.title),
        badge(e.verdict())
    ));
    h.push_str(&format!(
        "<p class=\"note\">scale {} · {:.0} s</p>\n",
        e.scale.name(),
        e.seconds
    ));
    if let Some(err) = &e.error {
        h.push_str(&format!(
            "<p><strong>Could not run:</strong> {}</p>\n",
            esc(err)
        ));
    }
    if !e.setup.is_empty() {
        h.push_str(&format!("<p>{}</p>\n", esc(&e.setup)));
    }
    if !e.claims.is_empty() {
        h.push_str("<table><thead><tr><th>claim</th><th>expected</th><th>measured</th><th>rule</th><th>verdict</th><th>seeds</th></tr></thead><tbody>\n");
        for c in &e.claims {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td><td>{}{}</td><td class=\"num\">{}{}</td></tr>\n",
                esc(&c.claim),
                esc(&c.expected),
                esc(&c.measured),
                esc(&c.tolerance),
                badge(c.verdict),
                why(&c.why),
                c.seeds.map(|n| n.to_string()).unwrap_or_default(),
                why(&c.stopped)
            ));
        }
        h.push_str("</tbody></table>\n");
    }
    for f in &e.figures {
        h.push_str(&format!(
            "<figure id=\"{}-{}\">{}<figcaption>{}</figcaption></figure>\n",
            e.id.stem(),
            esc(&f.stem),
            strip_xml_prolog(&f.svg),
            esc(&f.caption)
        ));
    }
    for n in &e.notes {
        h.push_str(&format!("<p class=\"note\">Note: {}</p>\n", esc(n)));
    }
    for t in &e.tables {
        h.push_str(&format!(
            "<details><summary>{}</summary><table><thead><tr>",
            esc(&t.caption)
        ));
        for c in &t.header {
            h.push_str(&format!("<th>{}</th>", esc(c)));
        }
        h.push_str("</tr></thead><tbody>\n");
        for row in &t.rows {
            h.push_str("<tr>");
            for c in row {
                h.push_str(&format!("<td class=\"num\">{}</td>", esc(c)));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</tbody></table></details>\n");
    }
    h.push_str("<h3>Rerun</h3>\n");
    h.push_str(&format!("<pre><code>{}</code></pre>\n", esc(&e.command)));
    h.push_str(&format!(
        "<details><summary>config ({}.toml; copy it, edit it, rerun with <code>--config-dir</code>)</summary><pre><code>{}</code></pre></details>\n",
        e.id.stem(),
        esc(&e.config)
    ));
    if !e.files.is_empty() {
        h.push_str("<p class=\"note\">Data: ");
        let links: Vec<String> = e
            .files
            .iter()
            .map(|f| format!("<a href=\"{0}\">{0}</a>", esc(f)))
            .collect();
        h.push_str(&links.join(" · "));
        h.push_str("</p>\n");
    }
    h
}

/// Drop an `<?xml …?>` prolog so the SVG can sit inside HTML.
fn strip_xml_prolog(svg: &str) -> &str {
    match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    }
}

pub(super) fn render(r: &Report) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    h.push_str("<title>richness · the lazy and rich regimes, reproduced</title>\n");
    h.push_str(&format!("<style>{CSS}</style></head><body><main>\n"));
    h.push_str("<h1>The lazy (NTK) and rich (μP) regimes, reproduced</h1>\n");
    h.push_str(&format!(
        "<p class=\"lede\">richness {} · scale <strong>{}</strong> · {} experiments · {:.0} s of compute on {} threads. Each claim of Karkada's tutorial (arXiv 2404.19719) measured here, next to what the tutorial reports.</p>\n",
        esc(&r.version),
        r.scale.name(),
        r.experiments.len(),
        r.experiments.iter().map(|e| e.seconds).sum::<f64>(),
        r.threads
    ));
    h.push_str("<div class=\"dial\">");
    h.push_str(&dial_svg());
    h.push_str("<div><p>One exponent sets where a wide network sits: hidden representations move by ‖Δh‖ ~ n<sup>r</sup>. At <strong>r = 0</strong> the network trains lazily, like its tangent kernel; at <strong>r = ½</strong> (μP) it learns features. Init scales, multipliers and per-layer rates all follow from r, up to gauge choices that do not change training.</p></div></div>\n");
    let all: Vec<Verdict> = r
        .experiments
        .iter()
        .flat_map(|e| e.claims.iter().map(|c| c.verdict))
        .collect();
    let count = |v: Verdict| all.iter().filter(|x| **x == v).count();
    h.push_str(&format!(
        "<p class=\"summary-counts\"><span>{} claims:</span><span>{} pass</span><span>{} unclear</span><span>{} crossover</span><span>{} fail</span><span>{} experiments could not run</span></p>\n",
        all.len(),
        count(Verdict::Pass),
        count(Verdict::Unclear),
        count(Verdict::Crossover),
        count(Verdict::Fail),
        r.experiments.iter().filter(|e| e.error.is_some()).count()
    ));
    h.push_str("<h2 id=\"overview\">Overview</h2>\n<table><thead><tr><th>experiment</th><th>claim</th><th>expected</th><th>measured</th><th>verdict</th></tr></thead><tbody>\n");
    for e in &r.experiments {
        if let Some(err) = &e.error {
            h.push_str(&format!(
                "<tr><td><a href=\"#{}\">{}</a></td><td colspan=\"3\">{}</td><td>{}</td></tr>\n",
                e.id.stem(),
                e.id.name(),
                esc(err),
                badge(Verdict::Error)
            ));
        }
        for c in &e.claims {
            h.push_str(&format!(
                "<tr><td><a href=\"#{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}{}</td></tr>\n",
                e.id.stem(),
                e.id.name(),
                esc(&c.claim),
                esc(&c.expected),
                esc(&c.measured),
                badge(c.verdict),
                why(&c.why)
            ));
        }
    }
    h.push_str("</tbody></table>\n");
    h.push_str(&format!("<p class=\"note\">Verdicts — {} Slopes are least-squares fits of log seed means against log width, with delete-one-seed jackknife intervals.</p>\n", esc(Verdict::LEGEND)));
    for e in &r.experiments {
        h.push_str(&section(e));
    }
    h.push_str("<p class=\"note\">Everything on this page is in <a href=\"report.json\">report.json</a>; each experiment's raw data is in its folder.</p>\n");
    h.push_str("</main></body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
