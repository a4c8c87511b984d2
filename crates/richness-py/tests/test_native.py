"""The Python functions against the `richness` command: same library calls, same numbers."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

import richness

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def cli():
    exe = os.environ.get("RICHNESS_BIN") or str(ROOT / "target" / "release" / "richness")
    if not Path(exe).exists():
        if os.environ.get("CI"):
            pytest.fail(f"the richness binary is not at {exe} (build it: cargo build --release)")
        pytest.skip(f"no richness binary at {exe}")

    def run(*args):
        out = subprocess.run([exe, *map(str, args)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout

    return run


TABLES = [
    ([64, 256, 256, 10], {"preset": "mup"}, "sgd", False),
    ([64, 256, 256, 10], {"preset": "ntp"}, "adam", True),
    ([10, 128, 64, 128, 1], {"richness": 0.25, "gauge": "layerwise"}, "sgd", True),
    ([10, 128, 128, 3], {"richness": 0.375, "gauge": "rescale", "gamma0": 0.5}, "adam", False),
    ([64, 100, 10], {"preset": "sp"}, "sgd", False),
    ([64, 512, 512, 10], {"preset": "mfp"}, "adam", True),
]


@pytest.mark.parametrize("dims,scale,opt,bias", TABLES)
def test_table_equals_cli_json(cli, dims, scale, opt, bias):
    args = ["table", "--dims", ",".join(map(str, dims)), "--format", "json", "--optimizer", opt]
    for k, v in scale.items():
        args += [f"--{k}", v]
    if bias:
        args.append("--bias")
    want = json.loads(cli(*args))
    got = richness.table(dims, optimizer=opt, bias=bias, **scale)
    assert got == want


@pytest.fixture(scope="module")
def kernel_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ntk")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(12, 16))
    x2 = rng.normal(size=(9, 16))
    np.save(d / "x.npy", x)
    np.save(d / "x2.npy", x2)
    w = richness.init_weights([16, 64, 64, 3], preset="mup", bias=True, bias_init="normal", seed=5)
    richness.save_weights(d / "w.safetensors", w)
    return d, x, x2, w


@pytest.mark.parametrize("preset,output", [("mup", "mean"), ("ntp", "each"), ("mfp", "1"), ("mup", "sum")])
def test_empirical_kernel_equals_cli_bit_for_bit(cli, kernel_inputs, preset, output):
    d, x, x2, w = kernel_inputs
    out = d / f"k-{preset}-{output}.npy"
    cli("ntk", "empirical", "--dims", "16,64,64,3", "--bias", "--preset", preset, "--init-weights",
        d / "w.safetensors", "--x", d / "x.npy", "--x2", d / "x2.npy", "--output", output, "--out", out,
        "--threads", 1)
    want = np.load(out)
    got = richness.ntk.empirical(w, x, x2, preset=preset, output=output)
    assert got.dtype == np.float64
    if output == "sum":  # neural-tangents' convention: k times the mean
        mean = richness.ntk.empirical(w, x, x2, preset=preset)
        assert np.allclose(want, 3 * mean, rtol=1e-13, atol=0)
    assert got.shape == want.shape
    assert np.array_equal(got, want)


@pytest.mark.parametrize("act,get,bias", [("relu", "ntk", False), ("erf", "nngp", True), ("tanh", "ntk", True)])
def test_infinite_kernel_equals_cli_bit_for_bit(cli, kernel_inputs, act, get, bias):
    d, x, x2, _ = kernel_inputs
    out = d / f"inf-{act}-{get}.npy"
    args = ["ntk", "infinite", "--depth", 3, "--activation", act, "--x", d / "x.npy", "--x2", d / "x2.npy",
            "--get", get, "--out", out, "--threads", 1]
    if bias:
        args.append("--bias")
    cli(*args)
    got = richness.ntk.infinite(x, x2, depth=3, activation=act, get=get, bias=bias)
    assert np.array_equal(got, np.load(out))


def test_check_fits_and_verdicts_are_the_librarys():
    """richness.check gives the CLI's report; recomputing a claim's fit from its rows
    with richness.fit.slope and judging it with richness.fit.verdict gives the report's
    slope, interval and verdict."""
    rep = richness.check({"widths": [64, 128, 256], "seeds": 3, "batch": 64, "model": {"arch": "linear3"},
                          "data": "digits", "spectral": False, "dtype": "f64", "param": {"preset": "mup"}})
    rows = rep["rows"]
    assert rep["verdict"] in ("pass", "unclear", "fail", "crossover", "error")
    checked = 0
    for c in rep["claims"]:
        if not c.get("fit") or c.get("predicted_range") or c["quantity"] == "interaction_ratio":
            continue
        sel = (rows["quantity"] == c["quantity"]) & (rows["layer"] == c["layer"])
        widths = sorted(set(rows["width"][sel]))
        per_w = [rows["value"][sel & (rows["width"] == w)] for w in widths]
        f = richness.fit.slope(widths, per_w)
        assert f["slope"] == pytest.approx(c["fit"]["slope"], abs=1e-12)
        assert f["ci95"] == pytest.approx(tuple(c["fit"]["ci95"]), abs=1e-12)
        v = richness.fit.verdict(f, c["predicted"], 0.05, seeds=3)
        assert v["verdict"] == c["verdict"]
        checked += 1
    assert checked > 10
    assert "verdict" in rep["text"]


def test_fit_slope_of_a_power_law():
    w = np.array([128.0, 256, 512, 1024])
    f = richness.fit.slope(w, 3.0 * w ** -0.5)
    assert f["slope"] == pytest.approx(-0.5, abs=1e-12)
    assert richness.fit.verdict(f, -0.5)["verdict"] == "pass"
    assert richness.fit.verdict(f, 0.0)["verdict"] == "fail"


def test_train_returns_columns(tmp_path):
    r = richness.train({"model": {"width": 32}, "train": {"steps": 7, "batch_size": 32, "eval_every": 7},
                        "data": {"dataset": "digits", "train_size": 128, "test_size": 64}, "param": {"preset": "mup"}},
                       out=tmp_path / "run")
    assert r["status"] == "completed" and r["steps"] == 7
    m = r["metrics"]
    assert list(m["step"]) == list(range(8))
    assert np.isnan(m["train_loss"][0]) and np.isfinite(m["train_loss"][1:]).all()
    assert r["final_train_loss"] == m["train_loss"][-1]
    csv = np.genfromtxt(tmp_path / "run" / "metrics.csv", delimiter=",", names=True)
    assert np.allclose(csv["train_loss"][1:], m["train_loss"][1:], rtol=1e-6)
    assert r["weight_change"].shape == (3,)


def test_sweep_run(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(
        'name = "py"\n[base]\nseed = 0\n[base.model]\nwidth = 16\n[base.train]\nsteps = 3\n'
        '[base.data]\ndataset = "digits"\ntrain_size = 64\ntest_size = 32\n'
        '[[axes]]\n"param.preset" = ["ntp", "mup"]\n'
    )
    r = richness.sweep.run(spec, tmp_path / "s.sqlite", threads=1)
    assert r["report"]["completed"] == 2
    assert sorted(r["runs"]["status"]) == ["completed", "completed"]
    assert len(r["metrics"]["value"]) == len(r["metrics"]["name"]) > 0


def test_data_split_is_trains():
    d = richness.data.load("digits")
    assert d["x_train"].shape == (1297, 64) and d["x_test"].shape == (500, 64)
    w = richness.init_weights([64, 8, 10], seed=1)
    r = richness.train({"seed": 1, "dtype": "f64", "model": {"dims": [64, 8, 10]}, "train": {"steps": 1, "batch_size": 0, "shuffle": False}})
    f = np.maximum(d["x_train"] @ w["layers.0.weight"].T * r["parameterization"]["layers"][0]["multiplier"], 0) * np.sqrt(2)
    f = f @ w["layers.1.weight"].T * r["parameterization"]["layers"][1]["multiplier"]
    assert np.mean((f - d["y_train"]) ** 2) == pytest.approx(r["metrics"]["train_loss"][1], rel=1e-12)


def test_wrong_input_raises_one_line():
    cases = [
        (lambda: richness.table([64, 32, 10], preset="mu"), richness.RichnessError, "unknown preset"),
        (lambda: richness.table([64], preset="mup"), richness.RichnessError, "dims must list"),
        (lambda: richness.ntk.infinite(np.zeros((3, 4), dtype=np.int64), depth=2), TypeError, "dtype"),
        (lambda: richness.ntk.infinite(np.zeros(4), depth=2), ValueError, "2-D"),
        (lambda: richness.ntk.empirical({"layers.0.weight": np.zeros((8, 4)), "layers.1.weight": np.zeros((2, 8))},
                                        np.zeros((3, 5))), richness.RichnessError, "columns"),
        (lambda: richness.ntk.empirical({"layers.0.weight": np.zeros((8, 4)), "layers.1.weight": np.zeros((2, 7))},
                                        np.zeros((3, 4)), dims=[4, 8, 2]), richness.RichnessError, "shape"),
        (lambda: richness.ntk.empirical({"layers.0.weight": np.zeros((8, 4))}, np.zeros((3, 4)), dims=[4, 8, 2]),
         richness.RichnessError, "missing"),
        (lambda: richness.train({"model": {"widht": 3}}), richness.RichnessError, "widht"),
        (lambda: richness.train("/nonexistent.toml"), FileNotFoundError, "nonexistent"),
        (lambda: richness.train(3), TypeError, "dict"),
        (lambda: richness.fit.slope([1, 2], [1.0, -1.0]), ValueError, "no fit"),
        (lambda: richness.load_weights("/nonexistent.safetensors"), OSError, "nonexistent"),
    ]
    for f, exc, text in cases:
        with pytest.raises(exc) as e:
            f()
        msg = str(e.value)
        assert text in msg and "\n" not in msg, msg


def test_absurd_counts_raise_one_line_richness_errors():
    # The counts that aborted the process (exit 134) on the command line: refused by
    # the same ranges (richness::counts) before anything is allocated.
    small = {"widths": [8, 16], "batch": 16}
    cases = [
        (lambda: richness.check(small, seeds=10**11), "seeds = 100000000000"),
        (lambda: richness.check(small, seeds=0), "seeds = 0"),
        (lambda: richness.check(small, init_seeds=10**11), "init_seeds"),
        (lambda: richness.check(small, steps=10**11), "steps"),
        (lambda: richness.check({**small, "model": {"arch": "mlp", "depth": 10**8}}), "model.depth"),
        (lambda: richness.check({**small, "model": {"arch": "resmlp", "blocks": 10**8}}), "model.blocks"),
        (lambda: richness.check(small, seeds=2**64 - 1), "seeds"),
        (lambda: richness.ntk.infinite(np.zeros((3, 4)), depth=4_000_000_000), "depth"),
        (lambda: richness.train({"train": {"steps": 10**11}}), "train.steps"),
        (lambda: richness.train({"train": {"epochs": 10**11}}), "train.epochs"),
    ]
    for f, text in cases:
        with pytest.raises(richness.RichnessError) as e:
            f()
        msg = str(e.value)
        assert text in msg and "\n" not in msg, msg


def run_cli(*args):
    exe = os.environ.get("RICHNESS_BIN") or str(ROOT / "target" / "release" / "richness")
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True)


def test_cli_data_export_is_the_training_split(cli, tmp_path):
    cli("data", "export", "digits", "--out", tmp_path, "--train-size", 300)
    d = richness.data.load("digits", train_size=300)
    for k in ("x_train", "y_train", "labels_train", "x_test", "y_test", "labels_test"):
        got = np.load(tmp_path / f"{k}.npy")
        assert np.array_equal(got, d[k]), k
    assert np.load(tmp_path / "labels_train.npy").dtype == np.int64


def test_cli_train_save_init_and_dims(cli, tmp_path):
    cli("train", "--dims", "64,24,24,10", "--preset", "mfp", "--seed", 3, "--dtype", "f64", "--steps", 0,
        "--save-init", tmp_path / "init.safetensors")
    got, meta = richness.load_weights(tmp_path / "init.safetensors")
    want = richness.init_weights([64, 24, 24, 10], preset="mfp", seed=3)
    assert sorted(got) == sorted(want)
    assert all(np.array_equal(got[k], want[k]) for k in want)
    assert meta["richness.arch"]["dims"] == [64, 24, 24, 10]


def test_table_json_has_the_bias_adam_eps():
    t = richness.table([64, 32, 32, 10], preset="mup", optimizer="adam", bias=True, adam_eps=1e-6)
    for l in t["layers"]:
        assert l["bias_adam_eps"] == pytest.approx(l["adam_eps"] / l["multiplier"] * l["bias"]["multiplier"], rel=1e-15)
    assert "bias_adam_eps" not in richness.table([64, 32, 10], preset="mup", optimizer="sgd", bias=True)["layers"][0]


def test_cli_check_arch_keeps_model_bias(cli, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('widths = [16, 32]\nseeds = 1\nbatch = 16\nspectral = false\n[model]\narch = "mlp"\nbias = true\n')
    out = run_cli("check", "--config", cfg, "--arch", "mlp3", "--json")
    rep = json.loads(out.stdout)
    assert rep["config"]["model"]["arch"] == "mlp3" and rep["config"]["model"]["bias"] is True
    assert any("bias" in l for l in rep["parameterization"]["layers"])


def test_cli_warns_on_weights_that_are_no_draw_of_the_preset(cli, tmp_path):
    rng = np.random.default_rng(0)
    w = {"layers.0.weight": rng.normal(size=(64, 16)), "layers.1.weight": rng.normal(size=(1, 64))}
    richness.save_weights(tmp_path / "n01.safetensors", w)  # N(0, 1): no metadata
    np.save(tmp_path / "x.npy", rng.normal(size=(4, 16)))
    args = ["ntk", "empirical", "--dims", "16,64,1", "--x", tmp_path / "x.npy", "--out", tmp_path / "k.npy"]
    noisy = run_cli(*args, "--init-weights", tmp_path / "n01.safetensors")
    assert noisy.returncode == 0 and "warning" in noisy.stderr and "init std" in noisy.stderr
    richness.save_weights(tmp_path / "ok.safetensors", richness.init_weights([16, 64, 1], seed=2))
    quiet = run_cli(*args, "--init-weights", tmp_path / "ok.safetensors")
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
