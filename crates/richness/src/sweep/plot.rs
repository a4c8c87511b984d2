//! The common views of a sweep: a metric against an axis (width, r, rate…) or
//! against the training step, one series per value of the other axes, seeds
//! averaged (min–max band), with log–log slope fits.

use super::spec::short_float;
use super::store::{RunRecord, Store};
use crate::error::{Error, Result};
use crate::fit::{fit_loglog, LineFit};
use crate::report::plot::{Figure, Series, Style};
use std::collections::BTreeMap;

/// What to plot.
#[derive(Clone, Debug, Default)]
pub struct PlotRequest {
    /// An axis key (`model.width`, `param.richness`, …) or `step`.
    pub x: String,
    /// `final_train_loss`, `final_test_loss`, `final_test_acc`, or a metric name
    /// (`train_loss`, `test_loss`, `test_acc`, `weight_change`, …; its value at the
    /// run's last recorded step, or every step with `x = step`).
    pub y: String,
    /// Layer of a per-layer metric.
    pub layer: Option<i64>,
    /// Axis keys that make the series (default: every axis but x and the seed).
    pub by: Option<Vec<String>>,
    /// Keep only runs with these axis values (`key`, `value` as printed).
    pub filters: Vec<(String, String)>,
    /// Log axes (default: decided from the data and the keys).
    pub x_log: Option<bool>,
    pub y_log: Option<bool>,
    /// The axis that holds seeds (averaged over).
    pub seed_key: String,
}

/// A figure and the slope fit of each series (log–log only).
pub struct SweepPlot {
    pub figure: Figure,
    pub fits: Vec<(String, Option<LineFit>)>,
    /// Runs left out (diverged, failed, filtered, or without the metric).
    pub left_out: usize,
    pub used: usize,
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) if n.is_f64() => short_float(n.as_f64().unwrap()),
        v => v.to_string(),
    }
}

/// Build the figure for `req` from the runs in `store`.
pub fn sweep_plot(store: &Store, req: &PlotRequest) -> Result<SweepPlot> {
    let runs = store.runs()?;
    if runs.is_empty() {
        return Err(Error::file(store.path(), "holds no runs"));
    }
    let mut axes: Vec<String> = Vec::new();
    for r in &runs {
        for k in r.params_map().keys() {
            if !axes.contains(k) {
                axes.push(k.clone());
            }
        }
    }
    let step_view = req.x == "step";
    if !step_view && !axes.contains(&req.x) {
        return Err(Error::config(format!(
            "no axis `{}` in this sweep (axes: {}; or `step`)",
            req.x,
            axes.join(", ")
        )));
    }
    for (k, _) in &req.filters {
        if !axes.contains(k) {
            return Err(Error::config(format!(
                "--where: no axis `{k}` (axes: {})",
                axes.join(", ")
            )));
        }
    }
    let by: Vec<String> = match &req.by {
        Some(b) => {
            for k in b {
                if !axes.contains(k) {
                    return Err(Error::config(format!(
                        "--by: no axis `{k}` (axes: {})",
                        axes.join(", ")
                    )));
                }
            }
            b.clone()
        }
        None => axes
            .iter()
            .filter(|k| {
                **k != req.x && **k != req.seed_key && !req.filters.iter().any(|(f, _)| f == *k)
            })
            .cloned()
            .collect(),
    };
    let final_metric = |r: &RunRecord| -> Option<Option<f64>> {
        match req.y.as_str() {
            "final_train_loss" => Some(r.final_train_loss),
            "final_test_loss" => Some(r.final_test_loss),
            "final_test_acc" => Some(r.final_test_acc),
            _ => None,
        }
    };
    // series label → x → values over the remaining runs (seeds)
    let mut series: BTreeMap<String, (usize, BTreeMap<i64, Vec<f64>>)> = BTreeMap::new();
    let (mut used, mut left_out) = (0, 0);
    let mut seen_metric = false;
    for r in &runs {
        let params = r.params_map();
        let keep = r.status == "completed"
            && req
                .filters
                .iter()
                .all(|(k, v)| params.get(k).map(cell).as_deref() == Some(v.as_str()));
        if !keep {
            left_out += 1;
            continue;
        }
        let label = by
            .iter()
            .map(|k| format!("{k}={}", params.get(k).map(cell).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(" ");
        let mut points: Vec<(f64, f64)> = Vec::new();
        if step_view {
            let name = match req.y.as_str() {
                "final_train_loss" => "train_loss",
                "final_test_loss" => "test_loss",
                "final_test_acc" => "test_acc",
                n => n,
            };
            for (_, m) in store.metrics(Some(&r.run_id))? {
                if m.name == name && m.layer == req.layer && m.value.is_finite() {
                    points.push((m.step as f64, m.value));
                }
            }
        } else {
            let x = params.get(&req.x).and_then(|v| v.as_f64());
            let y = match final_metric(r) {
                Some(v) => v,
                None => store
                    .metrics(Some(&r.run_id))?
                    .into_iter()
                    .filter(|(_, m)| m.name == req.y && m.layer == req.layer)
                    .max_by_key(|(_, m)| m.step)
                    .map(|(_, m)| m.value),
            };
            if let (Some(x), Some(y)) = (x, y) {
                if y.is_finite() {
                    points.push((x, y));
                }
            }
        }
        if points.is_empty() {
            left_out += 1;
            continue;
        }
        seen_metric = true;
        used += 1;
        let n = series.len();
        let entry = series.entry(label).or_insert((n, BTreeMap::new()));
        for (x, y) in points {
            entry.1.entry(x.to_bits() as i64).or_default().push(y);
        }
    }
    if !seen_metric {
        return Err(Error::config(format!(
            "no completed run has metric `{}`{} (final_train_loss, final_test_loss, final_test_acc, or a metric name such as train_loss, test_loss, weight_change with --layer)",
            req.y,
            req.layer.map(|l| format!(" at layer {l}")).unwrap_or_default()
        )));
    }
    let all_x: Vec<f64> = series
        .values()
        .flat_map(|(_, m)| m.keys().map(|k| f64::from_bits(*k as u64)))
        .collect();
    let all_y: Vec<f64> = series
        .values()
        .flat_map(|(_, m)| m.values().flatten().copied())
        .collect();
    let x_log = req.x_log.unwrap_or_else(|| {
        let k = req.x.to_lowercase();
        all_x.iter().all(|&x| x > 0.0)
            && (k.contains("width")
                || k.contains("lr")
                || k.contains("rate")
                || k.contains("gamma"))
    });
    let y_log = req
        .y_log
        .unwrap_or_else(|| all_y.iter().all(|&y| y > 0.0) && !req.y.contains("acc"));
    let y_name = match req.layer {
        Some(l) => format!("{} (layer {l})", req.y),
        None => req.y.clone(),
    };
    let mut fig = Figure::new(format!("{y_name} against {}", req.x), req.x.clone(), y_name);
    fig.x_log = x_log;
    fig.y_log = y_log;
    let mut fits = Vec::new();
    let mut ordered: Vec<_> = series.into_iter().collect();
    ordered.sort_by_key(|(_, (i, _))| *i);
    for (ci, (label, (_, points))) in ordered.into_iter().enumerate() {
        let mut xs = Vec::new();
        let (mut mean, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
        let mut pts: Vec<(f64, Vec<f64>)> = points
            .into_iter()
            .map(|(k, v)| (f64::from_bits(k as u64), v))
            .collect();
        pts.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        for (x, v) in pts {
            xs.push(x);
            mean.push(v.iter().sum::<f64>() / v.len() as f64);
            lo.push(v.iter().cloned().fold(f64::INFINITY, f64::min));
            hi.push(v.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
        }
        let fit = if x_log && y_log && !step_view {
            fit_loglog(&xs, &mean)
        } else {
            None
        };
        let shown = if label.is_empty() {
            req.y.clone()
        } else {
            label.clone()
        };
        let legend = match &fit {
            Some(f) => format!("{shown} (slope {:+.3})", f.slope),
            None => shown,
        };
        let style = if step_view {
            Style::Line
        } else {
            Style::LinePoints
        };
        fig.series.push(
            Series::new(legend, xs.clone(), mean)
                .band(lo, hi)
                .style(style)
                .color(ci),
        );
        if let Some(f) = &fit {
            let ys = xs
                .iter()
                .map(|x| (f.intercept + f.slope * x.ln()).exp())
                .collect();
            fig.series
                .push(Series::new("", xs, ys).style(Style::Dashed).color(ci));
        }
        if !step_view {
            fits.push((label, fit));
        }
    }
    Ok(SweepPlot {
        figure: fig,
        fits,
        left_out,
        used,
    })
}
