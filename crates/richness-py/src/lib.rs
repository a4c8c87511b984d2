//! `richness._native`: the Rust half of the `richness` Python package.
//!
//! Every function here is a thin call into the `richness` library, the same call the
//! command line makes, so Python and `richness …` give the same numbers. Structured
//! results cross as JSON text (the library's own serde form, which is also what the
//! command line prints with `--format json` / `--json`) and arrays as numpy arrays.
//! The Python package (`python/richness/`) wraps these in documented functions.
//!
//! Errors: every `richness::Error` becomes a Python `richness.RichnessError` (a
//! `ValueError`) or an `OSError`, with the library's one-line message. Long work runs
//! with the GIL released.

use numpy::ndarray::{Array1, Array2, Array3};
use numpy::{IntoPyArray, PyArrayDyn, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use richness::kernel::empirical::{empirical_ntk, NtkOptions, Outputs};
use richness::kernel::infinite::InfiniteMlp;
use richness::linalg::Compute;
use richness::nn::{Activation, Arch, Model};
use richness::param::{
    Gauge, LayerShape, OptimizerKind, Parameterization, Preset, Role, ScaleChoice,
};
use richness::probe::check::{self, CheckConfig, ScanRow};
use richness::tensor::Mat;
use richness::train::{RunOptions, TrainConfig};
use std::path::PathBuf;

create_exception!(
    _native,
    RichnessError,
    PyValueError,
    "An invalid input or configuration (the message is richness's one-line error)."
);

/// A library error as a Python exception.
fn err(e: richness::Error) -> PyErr {
    match e {
        richness::Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => RichnessError::new_err(e.to_string()),
    }
}

fn cfg_err(msg: impl Into<String>) -> PyErr {
    RichnessError::new_err(msg.into())
}

fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> PyResult<T> {
    s.parse::<T>().map_err(cfg_err)
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("library values serialise")
}

/// `threads` (0 or `None`: all cores), at most 1024 as on the command line: a
/// thread pool of 10¹¹ threads aborts the interpreter.
fn threads_or_all(threads: Option<usize>) -> PyResult<usize> {
    const MAX_THREADS: usize = 1024;
    if let Some(t) = threads.filter(|&t| t > MAX_THREADS) {
        return Err(cfg_err(format!(
            "threads = {t}: expected a whole number from 1 to {MAX_THREADS} (0 or None: all cores)"
        )));
    }
    Ok(threads.filter(|&t| t > 0).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(MAX_THREADS)
    }))
}

/// A count from a Python argument inside its range ([`richness::counts`]).
fn count(c: richness::counts::Count, key: &str, v: usize) -> PyResult<()> {
    c.check_named(key, v).map_err(err)
}

/// A [`ScaleChoice`] from keyword arguments, with the command line's rules.
#[allow(clippy::too_many_arguments)]
fn scale_choice(
    preset: Option<&str>,
    richness: Option<f64>,
    gamma0: f64,
    gauge: Option<&str>,
    alpha: Option<f64>,
    base_lr: f64,
    adam_eps: f64,
    roles: Option<Vec<String>>,
) -> PyResult<ScaleChoice> {
    Ok(ScaleChoice {
        preset: preset.map(parse::<Preset>).transpose()?,
        richness,
        gamma0,
        alpha,
        gauge: gauge.map(parse::<Gauge>).transpose()?,
        base_lr,
        roles: roles
            .map(|r| {
                r.iter()
                    .map(|s| parse::<Role>(s))
                    .collect::<PyResult<Vec<_>>>()
            })
            .transpose()?,
        adam_eps,
        ..ScaleChoice::default()
    })
}

/// `richness table --format json` for an MLP with these dims (JSON text).
#[pyfunction]
#[pyo3(signature = (dims, activation, preset, richness, gamma0, gauge, optimizer, bias, alpha, base_lr, adam_eps))]
#[allow(clippy::too_many_arguments)]
fn table(
    dims: Vec<usize>,
    activation: &str,
    preset: Option<&str>,
    richness: Option<f64>,
    gamma0: f64,
    gauge: Option<&str>,
    optimizer: &str,
    bias: bool,
    alpha: Option<f64>,
    base_lr: f64,
    adam_eps: f64,
) -> PyResult<String> {
    let mut arch = Arch::mlp(dims, parse::<Activation>(activation)?);
    arch.bias = bias;
    arch.validate().map_err(err)?;
    let choice = scale_choice(
        preset, richness, gamma0, gauge, alpha, base_lr, adam_eps, None,
    )?;
    let p =
        Parameterization::resolve(&arch.layer_shapes(), &choice, parse(optimizer)?).map_err(err)?;
    Ok(json(&p))
}

/// The parameterization of arbitrary weight layers, given as
/// `(fan_in, fan_out, fan_in_scales, bias)` tuples (JSON text).
#[pyfunction]
#[pyo3(signature = (shapes, roles, preset, richness, gamma0, gauge, optimizer, alpha, base_lr, adam_eps))]
#[allow(clippy::too_many_arguments)]
fn resolve(
    shapes: Vec<(usize, usize, bool, bool)>,
    roles: Option<Vec<String>>,
    preset: Option<&str>,
    richness: Option<f64>,
    gamma0: f64,
    gauge: Option<&str>,
    optimizer: &str,
    alpha: Option<f64>,
    base_lr: f64,
    adam_eps: f64,
) -> PyResult<String> {
    let shapes: Vec<LayerShape> = shapes
        .into_iter()
        .map(|(fan_in, fan_out, fan_in_scales, bias)| LayerShape {
            fan_in,
            fan_out,
            fan_in_scales,
            bias,
        })
        .collect();
    let choice = scale_choice(
        preset, richness, gamma0, gauge, alpha, base_lr, adam_eps, roles,
    )?;
    let p = Parameterization::resolve(&shapes, &choice, parse(optimizer)?).map_err(err)?;
    Ok(json(&p))
}

/// c_φ, the variance-preserving gain of an activation.
#[pyfunction]
fn activation_gain(name: &str) -> PyResult<f64> {
    Ok(parse::<Activation>(name)?.default_gain())
}

fn mat(a: &PyReadonlyArray2<f64>) -> PyResult<Mat<f64>> {
    let (r, c) = (a.shape()[0], a.shape()[1]);
    let s = a
        .as_slice()
        .map_err(|_| cfg_err("arrays must be C-contiguous"))?;
    Ok(Mat::from_vec(r, c, s.to_vec()))
}

fn to_py2<'py>(py: Python<'py>, m: &Mat<f64>) -> Bound<'py, PyArrayDyn<f64>> {
    Array2::from_shape_vec((m.rows(), m.cols()), m.as_slice().to_vec())
        .expect("shape")
        .into_dyn()
        .into_pyarray(py)
}

/// `richness ntk empirical` of an MLP from raw weights `layers.{i}.weight` (and
/// `.bias`), float64 arithmetic.
#[pyfunction]
#[pyo3(signature = (weights, x, x2, dims, activation, gain, bias, preset, richness, gamma0, gauge, alpha, output, block, threads))]
#[allow(clippy::too_many_arguments)]
fn ntk_empirical<'py>(
    py: Python<'py>,
    weights: Vec<(String, PyReadonlyArrayDyn<'py, f64>)>,
    x: PyReadonlyArray2<'py, f64>,
    x2: Option<PyReadonlyArray2<'py, f64>>,
    dims: Vec<usize>,
    activation: &str,
    gain: Option<f64>,
    bias: bool,
    preset: Option<&str>,
    richness: Option<f64>,
    gamma0: f64,
    gauge: Option<&str>,
    alpha: Option<f64>,
    output: &str,
    block: usize,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyArrayDyn<f64>>> {
    count(richness::counts::KERNEL_BLOCK, "block", block)?;
    count(
        richness::counts::DEPTH,
        "the weight layers of dims",
        dims.len().saturating_sub(1).max(1),
    )?;
    let mut arch = Arch::mlp(dims, parse::<Activation>(activation)?);
    arch.bias = bias;
    if let Some(g) = gain {
        arch.gain = g;
    }
    arch.validate().map_err(err)?;
    let choice = scale_choice(preset, richness, gamma0, gauge, alpha, 1.0, 1e-8, None)?;
    let param = Parameterization::resolve(&arch.layer_shapes(), &choice, OptimizerKind::Sgd)
        .map_err(err)?;
    let mut model = Model::<f64>::init_with(&arch, param, 0).map_err(err)?;
    // The weights, checked against the architecture like a weights file is.
    let mut expected: Vec<(String, Vec<usize>)> = Vec::new();
    for l in 0..model.depth() {
        let w = &model.weights[l];
        expected.push((format!("layers.{l}.weight"), vec![w.rows(), w.cols()]));
        if let Some(b) = &model.biases[l] {
            expected.push((format!("layers.{l}.bias"), vec![b.len()]));
        }
    }
    for (name, _) in &weights {
        if !expected.iter().any(|(n, _)| n == name) {
            return Err(cfg_err(format!(
                "unexpected array `{name}` (the model has {})",
                expected
                    .iter()
                    .map(|e| e.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    for (name, shape) in &expected {
        let (_, a) = weights
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| cfg_err(format!("missing array `{name}`")))?;
        if a.shape() != shape.as_slice() {
            return Err(cfg_err(format!(
                "array `{name}` has shape {:?}, the model needs {:?}",
                a.shape(),
                shape
            )));
        }
        let v = a
            .as_slice()
            .map_err(|_| cfg_err("arrays must be C-contiguous"))?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(cfg_err(format!("array `{name}` has non-finite values")));
        }
        let l: usize = name
            .split('.')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("ours");
        if name.ends_with(".weight") {
            model.weights[l].as_mut_slice().copy_from_slice(v);
        } else if let Some(b) = model.biases[l].as_mut() {
            b.copy_from_slice(v);
        }
    }
    model.recenter();
    let x = mat(&x)?;
    let x2 = x2.as_ref().map(mat).transpose()?;
    if x.cols() != model.input_dim() || x2.as_ref().is_some_and(|m| m.cols() != model.input_dim()) {
        return Err(cfg_err(format!(
            "x has {} columns, the network has {} inputs",
            if x.cols() != model.input_dim() {
                x.cols()
            } else {
                x2.as_ref().unwrap().cols()
            },
            model.input_dim()
        )));
    }
    let opts = NtkOptions {
        outputs: parse::<Outputs>(output)?,
        block: block.max(1),
    };
    let cx = Compute::new(threads_or_all(threads)?);
    let ks = py
        .detach(|| empirical_ntk(&model, &cx, &x, x2.as_ref(), &opts))
        .map_err(err)?;
    if ks.len() == 1 {
        return Ok(to_py2(py, &ks[0]));
    }
    let (n1, n2) = ks[0].shape();
    let flat: Vec<f64> = ks
        .iter()
        .flat_map(|k| k.as_slice().iter().copied())
        .collect();
    Ok(Array3::from_shape_vec((ks.len(), n1, n2), flat)
        .expect("shape")
        .into_dyn()
        .into_pyarray(py))
}

/// A fresh init as `richness train` draws it (`Model::init_with`, streams
/// `(seed, "init/weight", l)`): {name: float64 array} in PyTorch's layout, and the
/// parameterization (JSON). What `richness train --steps 0` writes, without the file.
#[pyfunction]
#[pyo3(signature = (dims, activation, bias, bias_init, preset, richness, gamma0, gauge, optimizer, seed))]
#[allow(clippy::too_many_arguments)]
fn init_weights<'py>(
    py: Python<'py>,
    dims: Vec<usize>,
    activation: &str,
    bias: bool,
    bias_init: &str,
    preset: Option<&str>,
    richness: Option<f64>,
    gamma0: f64,
    gauge: Option<&str>,
    optimizer: &str,
    seed: u64,
) -> PyResult<(Bound<'py, PyDict>, String)> {
    let mut arch = Arch::mlp(dims, parse::<Activation>(activation)?);
    arch.bias = bias;
    arch.bias_init = match bias_init {
        "zero" => richness::nn::BiasInit::Zero,
        "normal" => richness::nn::BiasInit::Normal,
        other => {
            return Err(cfg_err(format!(
                "unknown bias_init `{other}` (expected zero or normal)"
            )))
        }
    };
    arch.validate().map_err(err)?;
    let choice = scale_choice(preset, richness, gamma0, gauge, None, 1.0, 1e-8, None)?;
    let param =
        Parameterization::resolve(&arch.layer_shapes(), &choice, parse(optimizer)?).map_err(err)?;
    let model = Model::<f64>::init_with(&arch, param, seed).map_err(err)?;
    let d = PyDict::new(py);
    for (l, (w, b)) in model.weights.iter().zip(&model.biases).enumerate() {
        d.set_item(format!("layers.{l}.weight"), to_py2(py, w))?;
        if let Some(b) = b {
            d.set_item(
                format!("layers.{l}.bias"),
                Array1::from_vec(b.clone()).into_pyarray(py),
            )?;
        }
    }
    Ok((d, json(&model.param)))
}

/// A float64 numpy array of any rank.
type Array<'py> = Bound<'py, PyArrayDyn<f64>>;

/// `richness ntk infinite`: (ntk, nngp).
#[pyfunction]
#[pyo3(signature = (x, x2, depth, activation, gain, bias, alpha, threads))]
#[allow(clippy::too_many_arguments)]
fn ntk_infinite<'py>(
    py: Python<'py>,
    x: PyReadonlyArray2<'py, f64>,
    x2: Option<PyReadonlyArray2<'py, f64>>,
    depth: usize,
    activation: &str,
    gain: Option<f64>,
    bias: bool,
    alpha: f64,
    threads: Option<usize>,
) -> PyResult<(Array<'py>, Array<'py>)> {
    count(richness::counts::DEPTH, "depth", depth)?;
    if !(alpha > 0.0 && alpha.is_finite()) {
        return Err(cfg_err("alpha must be a positive number"));
    }
    let mut net = InfiniteMlp::on_scale(depth, parse::<Activation>(activation)?, alpha, bias);
    if let Some(g) = gain {
        if !(g > 0.0 && g.is_finite()) {
            return Err(cfg_err("gain must be a positive number"));
        }
        net.gain = g;
    }
    let x = mat(&x)?;
    let x2 = x2.as_ref().map(mat).transpose()?;
    let cx = Compute::new(threads_or_all(threads)?);
    let k = py
        .detach(|| net.kernels_with(&cx, &x, x2.as_ref()))
        .map_err(err)?;
    Ok((to_py2(py, &k.ntk), to_py2(py, &k.nngp)))
}

/// Log–log slope of `values` against `widths` (JSON of the library's `LineFit`, or
/// `None` when no fit is possible). `per_width[i]`: the seeds' values at `widths[i]`
/// (one value: plain least squares; several: the delete-one-seed jackknife interval
/// that `richness check` uses).
#[pyfunction]
fn fit_slope(widths: Vec<f64>, per_width: Vec<Vec<f64>>) -> PyResult<Option<String>> {
    if widths.len() != per_width.len() {
        return Err(cfg_err(format!(
            "{} widths but {} rows of values",
            widths.len(),
            per_width.len()
        )));
    }
    let f = if per_width.iter().all(|v| v.len() == 1) {
        let ys: Vec<f64> = per_width.iter().map(|v| v[0]).collect();
        richness::fit::fit_loglog(&widths, &ys)
    } else {
        richness::fit::fit_loglog_jackknife_nested(&widths, &per_width)
    };
    Ok(f.map(|f| json(&f)))
}

/// `richness::verdict::judge_interval`: the verdict of a slope with its 95 % interval
/// against a predicted exponent (or interval) with a tolerance (JSON of `Judged`).
#[pyfunction]
#[pyo3(signature = (slope, ci95, predicted, tolerance, seeds))]
fn judge(
    slope: f64,
    ci95: (f64, f64),
    predicted: (f64, f64),
    tolerance: f64,
    seeds: Option<usize>,
) -> PyResult<String> {
    let fit = richness::fit::LineFit {
        slope,
        intercept: f64::NAN,
        slope_se: f64::NAN,
        ci95,
        r2: f64::NAN,
        points: 0,
    };
    Ok(json(&richness::verdict::judge_interval(
        &fit, predicted, tolerance, seeds,
    )))
}

fn train_config(config: &str, is_path: bool) -> PyResult<TrainConfig> {
    if is_path {
        TrainConfig::from_file(config).map_err(err)
    } else {
        serde_json::from_str(config).map_err(|e| cfg_err(format!("config: {e}")))
    }
}

/// `richness train`: (summary JSON, metrics columns, weight_change).
#[pyfunction]
#[pyo3(signature = (config, is_path, init_weights, out, progress, threads, overwrite=false))]
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn train<'py>(
    py: Python<'py>,
    config: &str,
    is_path: bool,
    init_weights: Option<PathBuf>,
    out: Option<PathBuf>,
    progress: bool,
    threads: Option<usize>,
    overwrite: bool,
) -> PyResult<(String, Bound<'py, PyDict>, Vec<f64>, String)> {
    let cfg = train_config(config, is_path)?;
    let opts = RunOptions {
        out,
        overwrite,
        init_weights,
        progress,
        compute: Some(Compute::new(threads_or_all(threads)?)),
        metrics_to_file_only: false,
    };
    let resolved = richness::train::prepare(&cfg)
        .map_err(err)?
        .config
        .to_toml();
    let outcome = py
        .detach(|| richness::train::run(&cfg, &opts))
        .map_err(err)?;
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let m = &outcome.metrics;
    let d = PyDict::new(py);
    d.set_item(
        "step",
        Array1::from_iter(m.iter().map(|r| r.step as i64)).into_pyarray(py),
    )?;
    d.set_item(
        "epoch",
        Array1::from_iter(m.iter().map(|r| r.epoch as i64)).into_pyarray(py),
    )?;
    d.set_item(
        "train_loss",
        Array1::from_iter(m.iter().map(|r| nan(r.train_loss))).into_pyarray(py),
    )?;
    d.set_item(
        "test_loss",
        Array1::from_iter(m.iter().map(|r| nan(r.test_loss))).into_pyarray(py),
    )?;
    d.set_item(
        "test_acc",
        Array1::from_iter(m.iter().map(|r| nan(r.test_acc))).into_pyarray(py),
    )?;
    Ok((json(&outcome), d, outcome.weight_change.clone(), resolved))
}

fn check_config(config: &str, is_path: bool) -> PyResult<CheckConfig> {
    if is_path {
        CheckConfig::from_file(config).map_err(err)
    } else {
        serde_json::from_str(config).map_err(|e| cfg_err(format!("config: {e}")))
    }
}

fn rows_dict<'py>(py: Python<'py>, rows: &[ScanRow]) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item(
        "width",
        Array1::from_iter(rows.iter().map(|r| r.width as i64)).into_pyarray(py),
    )?;
    d.set_item(
        "seed",
        Array1::from_iter(rows.iter().map(|r| r.seed as i64)).into_pyarray(py),
    )?;
    d.set_item(
        "layer",
        Array1::from_iter(rows.iter().map(|r| r.layer as i64)).into_pyarray(py),
    )?;
    d.set_item(
        "quantity",
        PyList::new(py, rows.iter().map(|r| r.quantity.as_str()))?,
    )?;
    d.set_item(
        "value",
        Array1::from_iter(rows.iter().map(|r| r.value)).into_pyarray(py),
    )?;
    Ok(d)
}

/// `richness check`: (report JSON, rows, resolved config JSON).
#[pyfunction]
#[pyo3(signature = (config, is_path, out, progress, threads))]
fn check_run<'py>(
    py: Python<'py>,
    config: &str,
    is_path: bool,
    out: Option<PathBuf>,
    progress: bool,
    threads: Option<usize>,
) -> PyResult<(String, Bound<'py, PyDict>, String)> {
    let cfg = check_config(config, is_path)?;
    let threads = threads_or_all(threads)?;
    let (report, rows) = py
        .detach(|| check::run(&cfg, threads, progress))
        .map_err(err)?;
    if let Some(dir) = &out {
        report.write(dir, &rows).map_err(err)?;
    }
    Ok((json(&report), rows_dict(py, &rows)?, json(&cfg)))
}

/// Fits, predictions and verdicts of rows measured elsewhere (`richness.torch.check`).
#[pyfunction]
#[pyo3(signature = (config, width, seed, layer, quantity, value, diverged, n_in, n_out))]
#[allow(clippy::too_many_arguments)]
fn check_judge(
    config: &str,
    width: Vec<usize>,
    seed: Vec<usize>,
    layer: Vec<usize>,
    quantity: Vec<String>,
    value: Vec<f64>,
    diverged: Vec<(usize, usize, String)>,
    n_in: usize,
    n_out: usize,
) -> PyResult<(String, String)> {
    let cfg = check_config(config, false)?;
    let n = width.len();
    if [seed.len(), layer.len(), quantity.len(), value.len()]
        .iter()
        .any(|&k| k != n)
    {
        return Err(cfg_err(
            "rows: width, seed, layer, quantity and value must have one entry each",
        ));
    }
    let rows: Vec<ScanRow> = (0..n)
        .map(|i| ScanRow {
            width: width[i],
            seed: seed[i],
            layer: layer[i],
            quantity: quantity[i].clone(),
            value: value[i],
        })
        .collect();
    let report = check::judge_with_dims(&cfg, &rows, diverged, n_in, n_out).map_err(err)?;
    Ok((json(&report), report.to_text()))
}

/// The text `richness check` prints for a report (JSON in).
#[pyfunction]
fn check_text(report: &str) -> PyResult<String> {
    let r: check::CheckReport =
        serde_json::from_str(report).map_err(|e| cfg_err(format!("report: {e}")))?;
    Ok(r.to_text())
}

/// `richness sweep run SPEC --db DB`: (report, runs columns, metrics columns).
#[pyfunction]
#[pyo3(signature = (spec, db, resume, progress, threads))]
fn sweep_run<'py>(
    py: Python<'py>,
    spec: PathBuf,
    db: PathBuf,
    resume: bool,
    progress: bool,
    threads: Option<usize>,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    use richness::sweep::runner::{run_sweep, RunnerOptions};
    use richness::sweep::spec::SweepSpec;
    use richness::sweep::store::Store;
    let spec = SweepSpec::from_file(&spec).map_err(err)?;
    let opts = RunnerOptions {
        threads: threads_or_all(threads)?,
        progress,
        shard: None,
        resume,
    };
    let (rep, runs, metrics) = py
        .detach(|| -> richness::Result<_> {
            let mut store = Store::create(&db)?;
            let rep = run_sweep(&spec, &mut store, &opts)?;
            Ok((rep, store.runs()?, store.metrics(None)?))
        })
        .map_err(err)?;
    let r = PyDict::new(py);
    r.set_item("name", spec.name.clone())?;
    r.set_item("planned", rep.planned)?;
    r.set_item("skipped", rep.skipped)?;
    r.set_item("completed", rep.completed)?;
    r.set_item("diverged", rep.diverged)?;
    r.set_item("failed", rep.failed)?;
    r.set_item("first_failure", rep.first_failure.clone())?;
    r.set_item("seconds", rep.seconds)?;
    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let runs_d = PyDict::new(py);
    runs_d.set_item(
        "run_id",
        PyList::new(py, runs.iter().map(|x| x.run_id.as_str()))?,
    )?;
    runs_d.set_item(
        "index",
        Array1::from_iter(runs.iter().map(|x| x.index)).into_pyarray(py),
    )?;
    runs_d.set_item(
        "label",
        PyList::new(py, runs.iter().map(|x| x.label.as_str()))?,
    )?;
    runs_d.set_item(
        "params",
        PyList::new(py, runs.iter().map(|x| x.params.as_str()))?,
    )?;
    runs_d.set_item(
        "status",
        PyList::new(py, runs.iter().map(|x| x.status.as_str()))?,
    )?;
    runs_d.set_item(
        "steps",
        Array1::from_iter(runs.iter().map(|x| x.steps.unwrap_or(-1))).into_pyarray(py),
    )?;
    for (k, f) in [
        (
            "final_train_loss",
            (|x: &richness::sweep::store::RunRecord| x.final_train_loss) as fn(&_) -> Option<f64>,
        ),
        ("final_test_loss", |x| x.final_test_loss),
        ("final_test_acc", |x| x.final_test_acc),
    ] {
        runs_d.set_item(
            k,
            Array1::from_iter(runs.iter().map(|x| nan(f(x)))).into_pyarray(py),
        )?;
    }
    runs_d.set_item(
        "seconds",
        Array1::from_iter(runs.iter().map(|x| x.seconds)).into_pyarray(py),
    )?;
    let m = PyDict::new(py);
    m.set_item(
        "run_id",
        PyList::new(py, metrics.iter().map(|x| x.0.as_str()))?,
    )?;
    m.set_item(
        "step",
        Array1::from_iter(metrics.iter().map(|x| x.1.step)).into_pyarray(py),
    )?;
    m.set_item(
        "name",
        PyList::new(py, metrics.iter().map(|x| x.1.name.as_str()))?,
    )?;
    m.set_item(
        "layer",
        Array1::from_iter(metrics.iter().map(|x| x.1.layer.unwrap_or(0))).into_pyarray(py),
    )?;
    m.set_item(
        "value",
        Array1::from_iter(metrics.iter().map(|x| x.1.value)).into_pyarray(py),
    )?;
    Ok((r, runs_d, m))
}

/// A data spec loaded as `richness train` loads it: arrays of the train and test sets.
#[pyfunction]
#[pyo3(signature = (config))]
fn data_load<'py>(py: Python<'py>, config: &str) -> PyResult<Bound<'py, PyDict>> {
    let cfg: richness::data::DataConfig =
        serde_json::from_str(config).map_err(|e| cfg_err(format!("data: {e}")))?;
    let split = py.detach(|| cfg.load()).map_err(err)?;
    let d = PyDict::new(py);
    let put = |prefix: &str, ds: &richness::data::Dataset| -> PyResult<()> {
        d.set_item(format!("x_{prefix}"), to_py2(py, &ds.x))?;
        d.set_item(format!("y_{prefix}"), to_py2(py, &ds.y))?;
        if let Some(l) = &ds.labels {
            d.set_item(
                format!("labels_{prefix}"),
                Array1::from_iter(l.iter().map(|&v| v as i64)).into_pyarray(py),
            )?;
        }
        if let Some(s) = ds.image_shape {
            d.set_item("image_shape", (s[0], s[1], s[2]))?;
        }
        Ok(())
    };
    put("train", &split.train)?;
    if let Some(t) = &split.test {
        put("test", t)?;
    }
    Ok(d)
}

/// Read a safetensors weights file: ({name: array}, metadata).
#[pyfunction]
fn load_weights<'py>(
    py: Python<'py>,
    path: PathBuf,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyDict>)> {
    use safetensors::tensor::{Dtype as St, SafeTensors};
    let bytes = std::fs::read(&path).map_err(|e| err(richness::Error::io(&path, e)))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| {
        err(richness::Error::file(
            &path,
            format!("not a valid safetensors file: {e}"),
        ))
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        err(richness::Error::file(
            &path,
            format!("not a valid safetensors file: {e}"),
        ))
    })?;
    let out = PyDict::new(py);
    let mut names: Vec<String> = st.names().into_iter().map(|s| s.to_string()).collect();
    names.sort();
    for name in names {
        let v = st.tensor(&name).expect("listed");
        let shape = v.shape().to_vec();
        let data = v.data();
        match v.dtype() {
            St::F64 => {
                let vals: Vec<f64> = data
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let a = numpy::ndarray::ArrayD::from_shape_vec(shape, vals).expect("shape");
                out.set_item(name, a.into_pyarray(py))?;
            }
            St::F32 => {
                let vals: Vec<f32> = data
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                let a = numpy::ndarray::ArrayD::from_shape_vec(shape, vals).expect("shape");
                out.set_item(name, a.into_pyarray(py))?;
            }
            other => {
                return Err(err(richness::Error::file(
                    &path,
                    format!("tensor `{name}` has dtype {other:?}; richness reads F32 and F64"),
                )))
            }
        }
    }
    let md = PyDict::new(py);
    if let Some(m) = meta.metadata() {
        for (k, v) in m {
            md.set_item(k, v)?;
        }
    }
    Ok((out, md))
}

/// Write float64 arrays as a safetensors file (keys sorted, optional metadata).
#[pyfunction]
#[pyo3(signature = (path, tensors, metadata))]
fn save_weights(
    path: PathBuf,
    tensors: Vec<(String, PyReadonlyArrayDyn<'_, f64>)>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> PyResult<()> {
    use safetensors::tensor::{Dtype as St, TensorView};
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, a) in &tensors {
        let v = a
            .as_slice()
            .map_err(|_| cfg_err("arrays must be C-contiguous"))?;
        owned.push((
            name.clone(),
            a.shape().to_vec(),
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
    }
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(St::F64, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| cfg_err(format!("{n}: {e}")))
        })
        .collect::<PyResult<_>>()?;
    safetensors::serialize_to_file(views, metadata, &path)
        .map_err(|e| cfg_err(format!("{}: {e}", path.display())))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RichnessError", m.py().get_type::<RichnessError>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    for f in [
        wrap_pyfunction!(table, m)?,
        wrap_pyfunction!(resolve, m)?,
        wrap_pyfunction!(activation_gain, m)?,
        wrap_pyfunction!(ntk_empirical, m)?,
        wrap_pyfunction!(ntk_infinite, m)?,
        wrap_pyfunction!(init_weights, m)?,
        wrap_pyfunction!(fit_slope, m)?,
        wrap_pyfunction!(judge, m)?,
        wrap_pyfunction!(train, m)?,
        wrap_pyfunction!(check_run, m)?,
        wrap_pyfunction!(check_judge, m)?,
        wrap_pyfunction!(check_text, m)?,
        wrap_pyfunction!(sweep_run, m)?,
        wrap_pyfunction!(data_load, m)?,
        wrap_pyfunction!(load_weights, m)?,
        wrap_pyfunction!(save_weights, m)?,
    ] {
        m.add_function(f)?;
    }
    Ok(())
}
