"""richness.torch: put any PyTorch model on the richness scale, and measure it.

``parameterize(model, optimizer, preset="mup")`` finds the model's weighted layers
(``nn.Linear`` and ``nn.Conv2d``; anything else is left alone and listed), gives them
roles (first = read-in, last = read-out, the rest hidden; override by module name),
asks the richness library for every layer's multiplier g, init scale sigma and rate
factor eta (``richness.table``'s numbers: nothing here re-derives them), then

- redraws each weight from N(0, sigma^2),
- multiplies each layer's output by g (a picklable forward hook) and each
  activation module's output by the activation's gain c_phi (sqrt 2 for ReLU),
- rebuilds the optimizer's parameter groups with the per-layer rates
  (SGD with momentum and weight decay; Adam/AdamW with the per-layer epsilon),
- stores the parameterization in the model's ``state_dict`` (key
  ``_richness_parameterization``), so ``torch.save`` / ``load_state_dict`` keep it.

``bias="torch"`` (the default) follows ``nn.Linear``'s convention and the companion
library's (mupify): a bias shares its layer's multiplier, init scale and rate, so the
five named presets train exactly as mupify trains them. ``bias="fan-in-1"`` is
richness's own: a bias is a weight on a constant input 1 (its own g, sigma = 0 at
init, eta), as ``richness train`` with ``model.bias = true``.

``check(make_model, widths, data)`` is ``richness check`` for a PyTorch model: it
measures the same quantities with hooks and hands them to the library's fits and
verdicts.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from . import _native, _resolve

__all__ = ["parameterize", "parameterization", "restore", "check", "coord_check", "weighted_layers"]

STATE_KEY = "_richness_parameterization"

# Activation modules and the richness activation whose gain they get.
_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.GELU: "gelu"}


class _Scale:
    """Forward hook: output -> g * output (+ (g_b - g) * bias when the bias has its own
    multiplier). A class, not a closure, so a hooked model pickles."""

    def __init__(self, g: float, g_bias: Optional[float] = None):
        self.g = float(g)
        self.g_bias = None if g_bias is None else float(g_bias)

    def __call__(self, module, inputs, output):
        out = output * self.g
        b = getattr(module, "bias", None)
        if self.g_bias is not None and b is not None and self.g_bias != self.g:
            shape = (1, -1) + (1,) * (output.dim() - 2) if output.dim() > 2 else (-1,)
            out = out + (self.g_bias - self.g) * b.view(shape)
        return out


class _StateDictHook:
    def __call__(self, module, state_dict, prefix, local_metadata):
        info = getattr(module, "_richness", None)
        if info is not None:
            raw = json.dumps(info, sort_keys=True).encode()
            state_dict[prefix + STATE_KEY] = torch.tensor(list(raw), dtype=torch.uint8)
        return state_dict


class _LoadHook:
    def __call__(self, module, state_dict, prefix, *args):
        t = state_dict.pop(prefix + STATE_KEY, None)
        if t is not None:
            info = json.loads(bytes(t.tolist()).decode())
            if getattr(module, "_richness", None) != info:
                _apply_hooks(module, info)


def weighted_layers(model: nn.Module) -> Tuple[List[Tuple[str, nn.Module]], List[str]]:
    """The (name, module) of every ``nn.Linear`` / ``nn.Conv2d`` in forward-definition
    order, and the names of other modules with parameters of their own (left alone)."""
    layers, others = [], []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            layers.append((name, m))
        elif any(True for _ in m.parameters(recurse=False)):
            others.append(f"{name or '<root>'} ({type(m).__name__})")
    return layers, others


def _optimizer_kind(optimizer) -> str:
    if optimizer is None or isinstance(optimizer, torch.optim.SGD):
        return "sgd"
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return "adam"
    raise TypeError(
        f"optimizer {type(optimizer).__name__} is not supported (use torch.optim.SGD, Adam or AdamW)"
    )


def _remove_hooks(model: nn.Module) -> None:
    for m in model.modules():
        h = m.__dict__.pop("_richness_handle", None)
        if h is not None:
            h.remove()


def _apply_hooks(model: nn.Module, info: Dict[str, Any]) -> None:
    """Install the multipliers and gains that ``info`` (a stored parameterization)
    describes, replacing any earlier ones; the weights are not touched."""
    _remove_hooks(model)
    mods = dict(model.named_modules())
    for l in info["layers"]:
        m = mods.get(l["module"])
        if m is None:
            raise ValueError(f"the stored parameterization names module `{l['module']}`, which this model does not have")
        g_b = l["bias"]["multiplier"] if l.get("bias") else None
        m._richness_handle = m.register_forward_hook(_Scale(l["multiplier"], g_b))
    for name, c in info.get("gains", {}).items():
        m = mods.get(name)
        if m is None:
            raise ValueError(f"the stored parameterization names module `{name}`, which this model does not have")
        m._richness_handle = m.register_forward_hook(_Scale(c))
    model._richness = info
    if not getattr(model, "_richness_state_hooks", False):
        model._register_state_dict_hook(_StateDictHook())
        model._register_load_state_dict_pre_hook(_LoadHook(), with_module=True)
        model._richness_state_hooks = True


def parameterize(
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    *,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    alpha: Optional[float] = None,
    bias: str = "torch",
    roles: Optional[Dict[str, str]] = None,
    gain: bool = True,
    verbose: bool = True,
) -> Optional[torch.optim.Optimizer]:
    """Put ``model`` on the richness scale in place and return ``optimizer`` with its
    parameter groups rebuilt (per-layer rates = the optimizer's lr times the layer's
    factor).

    ``preset``: ntp, ntp-lr, mup, mup-lr, mfp or sp; or ``richness`` (r) with ``gauge``
    (mup, layerwise, rescale; default mup) and ``gamma0``. Default: muP. ``roles``:
    ``{module_name: "read-in" | "hidden" | "read-out"}`` overriding the positional
    roles. ``gain``: multiply the outputs of ``nn.ReLU``/``nn.Tanh``/``nn.GELU``
    modules by the activation's gain (sqrt 2 for ReLU), as richness's networks and
    mupify do. Weight decay is made gauge-invariant: ``wd * g^2`` per layer for SGD and
    Adam (an L2 penalty on the effective weights g*W, as ``richness train``), ``wd * g``
    for AdamW (decoupled; equal to ``wd`` in the layerwise gauge). Prints the layer
    table when ``verbose``; ``parameterization(model)`` returns it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if bias not in ("torch", "fan-in-1"):
        raise ValueError(f"bias must be `torch` or `fan-in-1`, got `{bias}`")
    kind = _optimizer_kind(optimizer)
    layers, others = weighted_layers(model)
    if not layers:
        raise ValueError(
            f"{type(model).__name__} has no weighted layer (nn.Linear or nn.Conv2d) to parameterize"
        )
    names = [n for n, _ in layers]
    if optimizer is not None:
        held = {id(p) for grp in optimizer.param_groups for p in grp["params"]}
        missing = sorted({n for n, m in layers for p in m.parameters(recurse=False) if id(p) not in held})
        if missing:
            raise ValueError(
                f"the optimizer does not hold the parameters of {', '.join(missing)}: build it from model.parameters()"
            )
    role_list = None
    if roles:
        unknown = [k for k in roles if k not in names]
        if unknown:
            raise ValueError(
                f"roles name {', '.join(unknown)}, not weighted layers of the model ({', '.join(names)})"
            )
        positional = ["read-in"] + ["hidden"] * (len(layers) - 2) + ["read-out"] if len(layers) >= 2 else ["read-in"]
        role_list = [roles.get(n, positional[i]) for i, n in enumerate(names)]
    shapes = []
    for i, (_, m) in enumerate(layers):
        w = m.weight
        role_i = role_list[i] if role_list else ("read-in" if i == 0 else "other")
        shapes.append((int(w[0].numel()), int(w.shape[0]), role_i not in ("read-in", "readin", "input"),
                       bias == "fan-in-1" and m.bias is not None))
    base = optimizer.param_groups[0] if optimizer is not None else {"lr": 1.0}
    base_lr = float(base["lr"])
    eps = float(base.get("eps", 1e-8))
    table = _resolve(
        shapes, role_list, preset=preset, richness=richness, gamma0=gamma0, gauge=gauge,
        optimizer=kind, alpha=alpha, base_lr=base_lr, adam_eps=eps,
    )
    act_gain = {}
    if gain:
        for name, m in model.named_modules():
            for cls, act in _ACTIVATIONS.items():
                if type(m) is cls:
                    act_gain[name] = _native.activation_gain(act)
    # Redraw the weights and install the multipliers.
    info_layers = []
    with torch.no_grad():
        for (name, m), lp in zip(layers, table["layers"]):
            g, sd = lp["multiplier"], lp["init_std"]
            m.weight.normal_(0.0, sd)
            entry = {
                "module": name,
                "type": type(m).__name__,
                "role": lp["role"],
                "fan_in": lp["fan_in"],
                "fan_out": lp["fan_out"],
                "multiplier": g,
                "init_std": sd,
                "lr": lp["lr"],
            }
            if lp.get("adam_eps") is not None:
                entry["adam_eps"] = lp["adam_eps"]
            if m.bias is not None:
                if bias == "torch":
                    m.bias.normal_(0.0, sd)
                    b = {"multiplier": g, "init_std": sd, "lr": lp["lr"]}
                    if "adam_eps" in entry:
                        b["adam_eps"] = entry["adam_eps"]
                else:
                    m.bias.zero_()
                    b = dict(lp["bias"])
                    b["init_std"] = 0.0
                    if "adam_eps" in entry:
                        b["adam_eps"] = entry["adam_eps"] / g * b["multiplier"]
                entry["bias"] = b
            info_layers.append(entry)
    info = {
        "format": 1,
        "bias": bias,
        "table": table,
        "layers": info_layers,
        "gains": act_gain,
        "left_alone": others,
    }
    _apply_hooks(model, info)
    if optimizer is not None:
        _rebuild_groups(model, optimizer, info, kind)
    if verbose:
        print(_describe(info))
    return optimizer


def _rebuild_groups(model: nn.Module, optimizer, info: Dict[str, Any], kind: str) -> None:
    base = {k: v for k, v in optimizer.param_groups[0].items() if k != "params"}
    base_lr, wd = float(base["lr"]), float(base.get("weight_decay", 0.0))
    decoupled = isinstance(optimizer, torch.optim.AdamW)
    mods = dict(model.named_modules())
    groups, seen = [], set()

    def add(p, s):
        g = s["multiplier"]
        grp = dict(base)
        grp["params"] = [p]
        grp["lr"] = base_lr * s["lr"]
        if wd:
            grp["weight_decay"] = wd * g if decoupled else wd * g * g
        if kind == "adam" and "adam_eps" in s:
            grp["eps"] = s["adam_eps"]
        groups.append(grp)
        seen.add(id(p))

    for l in info["layers"]:
        m = mods[l["module"]]
        add(m.weight, l)
        if m.bias is not None:
            add(m.bias, l["bias"])
    # Parameters of the optimizer outside the weighted layers keep the base settings
    # (parameters the optimizer did not hold stay out of it).
    rest = [p for grp in optimizer.param_groups for p in grp["params"] if id(p) not in seen]
    optimizer.param_groups.clear()
    optimizer.state.clear()
    for grp in groups:
        optimizer.add_param_group(grp)
    if rest:
        grp = dict(base)
        grp["params"] = rest
        optimizer.add_param_group(grp)


def _fmt(x: float) -> str:
    return f"{x:.5g}"


def _describe(info: Dict[str, Any]) -> str:
    t = info["table"]
    head = f"# richness: {t['gauge']} gauge, n = {t['width']}, alpha = {_fmt(t['alpha'])}"
    if t.get("preset"):
        head += f", preset {t['preset']}"
    elif t.get("richness") is not None:
        head += f", r = {t['richness']}"
    head += f", {t['optimizer']}, base lr {_fmt(t['base_lr'])}, bias {info['bias']}"
    rows = [("module", "role", "fan_in", "fan_out", "multiplier", "init_std", "lr")]
    for l in info["layers"]:
        rows.append((l["module"], l["role"], str(l["fan_in"]), str(l["fan_out"]),
                     _fmt(l["multiplier"]), _fmt(l["init_std"]), _fmt(l["lr"])))
        if "bias" in l:
            b = l["bias"]
            rows.append((l["module"] + ".bias", l["role"], "1" if info["bias"] == "fan-in-1" else "-",
                         str(l["fan_out"]), _fmt(b["multiplier"]), _fmt(b["init_std"]), _fmt(b["lr"])))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head] + ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    if info["gains"]:
        lines.append("# activation gains: " + ", ".join(f"{k} x{_fmt(v)}" for k, v in info["gains"].items()))
    if info["left_alone"]:
        lines.append("# left alone: " + ", ".join(info["left_alone"]))
    for warn in t.get("warnings", []):
        lines.append(f"# warning: {warn}")
    return "\n".join(lines)


def parameterization(model_or_state: Union[nn.Module, Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The parameterization stored in a parameterized model or in its ``state_dict``
    (``None`` when there is none): ``layers`` (module, role, multiplier, init_std, lr,
    bias, adam_eps), ``gains``, ``table`` (the library's full table) and ``left_alone``."""
    if isinstance(model_or_state, nn.Module):
        return getattr(model_or_state, "_richness", None)
    for k, v in model_or_state.items():
        if k.endswith(STATE_KEY):
            return json.loads(bytes(v.tolist()).decode())
    return None


def restore(model: nn.Module, state_dict: Dict[str, Any]) -> nn.Module:
    """Load ``state_dict`` (saved from a parameterized model) into a freshly built
    ``model``, restoring its multipliers and gains first. A model that was already
    parameterized restores them by itself in ``load_state_dict``."""
    info = parameterization(state_dict)
    if info is None:
        raise ValueError("the state dict has no richness parameterization (was the model parameterized?)")
    _apply_hooks(model, info)
    model.load_state_dict(state_dict)
    return model


# ---------------------------------------------------------------------------------
# Measurements: richness check on a PyTorch model.


def _as_tensor(a, dtype) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"data must be numeric arrays, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.to(dtype)


def _probe_data(data, batch: int, dtype):
    if isinstance(data, str):
        from . import data as _data

        d = _data.load(data)
        x, y = d["x_train"][:batch], d["y_train"][:batch]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        x, y = x[:batch], y[:batch]
    else:
        raise TypeError("data must be a richness data spec (e.g. \"digits\") or a pair (x, y)")
    x, y = _as_tensor(x, dtype), _as_tensor(y, dtype)
    if y.dim() == 1:
        y = y[:, None]
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    return x, y


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.double()))


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 else float("nan")


def _op(w: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(w.double().flatten(1), ord=2))


def _apply_layer(m: nn.Module, inp: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if isinstance(m, nn.Linear):
        return F.linear(inp, w)
    return F.conv2d(inp, w, None, m.stride, m.padding, m.dilation, m.groups)


class _Recorder:
    """Records each weighted layer's input and (multiplied) output on forward passes."""

    def __init__(self, layers):
        self.inputs: List[Optional[torch.Tensor]] = [None] * len(layers)
        self.outputs: List[Optional[torch.Tensor]] = [None] * len(layers)
        self.handles = []
        for i, (_, m) in enumerate(layers):
            self.handles.append(m.register_forward_hook(self._hook(i)))

    def _hook(self, i):
        def hook(module, inputs, output):
            self.inputs[i] = inputs[0]
            if output.requires_grad:
                output.retain_grad()
            self.outputs[i] = output
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _probe_one(model, optimizer, x, y, steps: int, center: bool, spectral: bool) -> Tuple[List[Tuple[int, str, float]], Optional[str]]:
    """One probe, as richness's `probe`: measure, take `steps` optimizer steps on the
    batch, measure again. Returns (layer, quantity, value) rows and a divergence."""
    info = model._richness
    layers_by_name = dict(model.named_modules())
    layers = [(l["module"], layers_by_name[l["module"]]) for l in info["layers"]]
    gs = [l["multiplier"] for l in info["layers"]]
    depth = len(layers)
    rec = _Recorder(layers)
    try:
        f_raw0 = model(x)
        f0 = f_raw0.detach() if center else None
        out = f_raw0 - f0 if center else f_raw0
        loss = F.mse_loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss_before = loss.item()
        z0 = [o.detach().clone() for o in rec.outputs]
        dz0 = [o.grad.detach().clone() if o.grad is not None else torch.zeros_like(o) for o in rec.outputs]
        in0 = [i.detach().clone() for i in rec.inputs]
        w0 = [m.weight.detach().clone() for _, m in layers]
        b0 = [None if m.bias is None else m.bias.detach().clone() for _, m in layers]
        optimizer.step()
        for _ in range(1, steps):
            o = model(x)
            l2 = F.mse_loss(o - f0 if center else o, y)
            optimizer.zero_grad(set_to_none=True)
            l2.backward()
            optimizer.step()
        with torch.no_grad():
            f1 = model(x)
            loss_after = float(F.mse_loss(f1 - f0 if center else f1, y))
            z1 = [o.detach() for o in rec.outputs]
            in1 = [i.detach() for i in rec.inputs]
    finally:
        rec.remove()
    rows: List[Tuple[int, str, float]] = []
    put = lambda layer, q, v: rows.append((layer, q, float(v)))
    put(0, "loss_before", loss_before)
    put(0, "loss_after", loss_after)
    put(0, "loss_decrease", loss_before - loss_after)
    if not math.isfinite(loss_after) or any(not torch.isfinite(z).all() for z in z1):
        return rows, f"non-finite outputs after {steps} step(s) (loss {loss_after})"
    b = x.shape[0]
    info_layers = info["layers"]
    for l in range(depth):
        layer = l + 1
        m = layers[l][1]
        h = z0[l]
        dh = z1[l] - h
        h_norm, dh_norm = _norm(h), _norm(dh)
        coords = h.numel()
        put(layer, "h_norm", h_norm)
        put(layer, "h_rms", h_norm / math.sqrt(coords))
        put(layer, "dh_norm", dh_norm)
        put(layer, "dh_rms", dh_norm / math.sqrt(coords))
        put(layer, "dh_rel", _ratio(dh_norm, h_norm))
        if l + 1 < depth:
            a, da = in0[l + 1], in1[l + 1] - in0[l + 1]
            put(layer, "a_rms", _norm(a) / math.sqrt(a.numel()))
            put(layer, "da_rel", _ratio(_norm(da), _norm(a)))
        grad = dz0[l]
        put(layer, "grad_norm", _norm(grad))
        put(layer, "uuc", abs(float((grad.double() * dh.double()).sum())))
        g = gs[l]
        w_eff0 = g * w0[l]
        dw = g * (m.weight.detach() - w0[l])
        inp0, dinp = in0[l], in1[l] - in0[l]
        with torch.no_grad():
            lt_t = _apply_layer(m, inp0, dw)
            lt = _norm(lt_t)
            total = lt_t.clone()
            put(layer, "layer_term", lt)
            put(layer, "layer_share", _ratio(lt, dh_norm))
            w_op = _op(w_eff0) if spectral else float("nan")
            if l > 0:
                pt_t = _apply_layer(m, dinp, w_eff0)
                it_t = _apply_layer(m, dinp, dw)
                pt, it = _norm(pt_t), _norm(it_t)
                put(layer, "passthrough_term", pt)
                put(layer, "interaction_term", it)
                put(layer, "interaction_ratio", _ratio(it, lt))
                total = total + pt_t + it_t
                if spectral:
                    put(layer, "align_passthrough", _ratio(pt, w_op * _norm(dinp)))
            if b0[l] is not None:
                gb = info_layers[l]["bias"]["multiplier"]
                db = gb * (m.bias.detach() - b0[l])
                shape = (1, -1) + (1,) * (total.dim() - 2) if total.dim() > 2 else (-1,)
                total = total + db.view(shape)
            put(layer, "decomp_residual", _ratio(_norm(total - dh), dh_norm))
            w_fro, dw_fro = _norm(w_eff0), _norm(dw)
            put(layer, "W_fro", w_fro)
            put(layer, "dW_fro", dw_fro)
            put(layer, "dW_fro_rel", _ratio(dw_fro, w_fro))
            if spectral:
                dw_op = _op(dw)
                put(layer, "W_op", w_op)
                put(layer, "dW_op", dw_op)
                put(layer, "dW_op_rel", _ratio(dw_op, w_op))
                put(layer, "align", _ratio(lt, dw_op * _norm(inp0)))
    put(0, "f_norm", _norm(f_raw0.detach()))
    put(0, "f0_rel", _ratio(_norm(f_raw0.detach()), _norm(y)))
    put(0, "df_norm", _norm(z1[-1] - z0[-1]))
    return rows, None


def _scan(make_model, widths, data, *, seeds, steps, lr, optimizer, momentum, batch, dtype,
          center, spectral, scale, bias, gain, init=None, seed_counts=None, progress=False):
    x, y = _probe_data(data, batch, dtype)
    cols = {"width": [], "seed": [], "layer": [], "quantity": [], "value": []}
    diverged = []
    depth = None
    has_bias = False
    widths = sorted(set(int(w) for w in widths))
    total = sum((seed_counts or {}).get(w, seeds) for w in widths)
    done = 0
    for w in widths:
        for s in range((seed_counts or {}).get(w, seeds)):
            torch.manual_seed(s)
            model = make_model(w)
            if not isinstance(model, nn.Module):
                raise TypeError(f"make_model({w}) returned {type(model).__name__}, not a torch.nn.Module")
            model = model.to(dtype)
            if optimizer == "adam":
                opt = torch.optim.Adam(model.parameters(), lr=lr)
            else:
                opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
            parameterize(model, opt, bias=bias, gain=gain, verbose=False, **scale)
            if init is not None:
                with torch.no_grad():
                    init(model, w, s)
            layers, _ = weighted_layers(model)
            depth = len(layers)
            has_bias = has_bias or any(m.bias is not None for _, m in layers)
            rows, div = _probe_one(model, opt, x, y, steps, center, spectral)
            if div is not None:
                diverged.append((w, s, div))
            for layer, q, v in rows:
                cols["width"].append(w)
                cols["seed"].append(s)
                cols["layer"].append(layer)
                cols["quantity"].append(q)
                cols["value"].append(v)
            done += 1
            if progress:
                print(f"\rprobes {done}/{total}", end="", flush=True)
    if progress:
        print()
    return cols, diverged, depth, has_bias, x, y


def check(
    make_model: Callable[[int], nn.Module],
    widths: Sequence[int],
    data: Union[str, Tuple[Any, Any]] = "digits",
    *,
    seeds: int = 8,
    steps: int = 1,
    lr: float = 1.0,
    quantities: Optional[Sequence[str]] = None,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    batch: int = 256,
    dtype: torch.dtype = torch.float32,
    center: bool = True,
    spectral: bool = False,
    tolerance: float = 0.05,
    bias: str = "torch",
    gain: bool = True,
    init: Optional[Callable[[nn.Module, int, int], None]] = None,
    progress: bool = False,
) -> Dict[str, Any]:
    """``richness check`` for a PyTorch model: for every width in ``widths`` and seed
    0..seeds-1, ``make_model(width)`` is built (after ``torch.manual_seed(seed)``),
    parameterized, probed on the first ``batch`` examples of ``data`` (a richness data
    spec such as ``"digits"`` or a pair ``(x, y)``) over ``steps`` optimizer steps at
    base rate ``lr`` (MSE loss), and measured with hooks: ‖h‖, ‖Δh‖, ‖Δh‖/‖h‖,
    ‖Δa‖/‖a‖, ‖Δf‖, ‖∂L/∂h‖, the useful-update product, the layer / passthrough /
    interaction terms and layer share, weight norms (spectral ones with
    ``spectral=True``). The rows go to the library's fits, predictions and verdicts
    (the predictions of an MLP with the same number of weighted layers).

    ``center`` (default True, as ``richness check``): train f - f0. Returns the
    report dict of ``richness check --json`` (``claims`` with ``fit`` slope and
    ``ci95``, ``criteria``, ``verdict``, ``estimated_r``), ``rows`` (columns) and
    ``text``; with ``quantities`` the claims are limited to those quantities.
    ``init(model, width, seed)``, when given, is called (under ``torch.no_grad()``)
    after the model is parameterized, to set its weights some other way (e.g. to
    ``richness.init_weights``' draws, which makes the scan the command line's own).
    """
    if int(seeds) < 1 or int(steps) < 1 or int(batch) < 1:
        raise ValueError("seeds, steps and batch must be at least 1")
    if len(set(widths)) < 2:
        raise ValueError("a scan needs at least two widths")
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be `sgd` or `adam`, got `{optimizer}`")
    scale = {"preset": preset, "richness": richness, "gamma0": gamma0, "gauge": gauge}
    cols, diverged, depth, has_bias, x, y = _scan(
        make_model, widths, data, seeds=int(seeds), steps=int(steps), lr=float(lr), optimizer=optimizer,
        momentum=float(momentum), batch=int(batch), dtype=dtype, center=center, spectral=spectral,
        scale=scale, bias=bias, gain=gain, init=init, progress=progress,
    )
    param = {k: v for k, v in scale.items() if v is not None}
    param["base_lr"] = float(lr)
    param["center"] = bool(center)
    cfg = {
        "model": {"arch": "mlp", "depth": depth, "activation": "relu", "bias": bool(has_bias)},
        "param": param,
        "optim": {"kind": optimizer, "momentum": float(momentum)},
        "loss": "mse",
        "dtype": "f64" if dtype == torch.float64 else "f32",
        "data": data if isinstance(data, str) else "arrays",
        "widths": sorted(set(int(w) for w in widths)),
        "seeds": int(seeds),
        "steps": int(steps),
        "batch": int(x.shape[0]),
        "spectral": bool(spectral),
        "tolerance": float(tolerance),
    }
    report, text = _native.check_judge(
        json.dumps(cfg), cols["width"], cols["seed"], cols["layer"], cols["quantity"], cols["value"],
        diverged, int(x[0].numel()), int(y.shape[1]),
    )
    out = json.loads(report)
    if quantities is not None:
        keep = set(quantities)
        out["claims"] = [c for c in out["claims"] if c["quantity"] in keep]
    out["rows"] = {
        "width": np.asarray(cols["width"], dtype=np.int64),
        "seed": np.asarray(cols["seed"], dtype=np.int64),
        "layer": np.asarray(cols["layer"], dtype=np.int64),
        "quantity": np.asarray(cols["quantity"], dtype=str),
        "value": np.asarray(cols["value"], dtype=np.float64),
    }
    out["text"] = text
    return out


def coord_check(
    make_model: Callable[[int], nn.Module],
    widths: Sequence[int],
    data: Union[str, Tuple[Any, Any]] = "digits",
    *,
    steps: int = 3,
    seeds: int = 3,
    lr: float = 0.1,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    optimizer: str = "sgd",
    batch: int = 64,
    dtype: torch.dtype = torch.float32,
    tolerance: float = 0.1,
    bias: str = "torch",
    gain: bool = True,
) -> Dict[str, Any]:
    """A coordinate check in the spirit of mup's ``get_coord_data``: train each width
    ``steps`` steps on one batch and record, after every step t, the RMS coordinate of
    every weighted layer's output and of its change since init. Returns ``coords``
    (columns width, seed, step, layer, module, h_rms, dh_rms: plot dh_rms against
    width per step and layer) and ``fits``: for each layer the slope of the seed-mean
    dh_rms at the last step against width, its predicted exponent (from the library's
    ``richness check`` prediction) and the verdict (``richness.fit.verdict``)."""
    from . import fit as _fit

    x, y = _probe_data(data, int(batch), dtype)
    widths = sorted(set(int(w) for w in widths))
    if len(widths) < 2:
        raise ValueError("a scan needs at least two widths")
    scale = {"preset": preset, "richness": richness, "gamma0": gamma0, "gauge": gauge}
    cols = {k: [] for k in ("width", "seed", "step", "layer", "module", "h_rms", "dh_rms")}
    depth, names = None, None
    for w in widths:
        for s in range(int(seeds)):
            torch.manual_seed(s)
            model = make_model(w).to(dtype)
            opt = (torch.optim.Adam if optimizer == "adam" else torch.optim.SGD)(model.parameters(), lr=lr)
            parameterize(model, opt, bias=bias, gain=gain, verbose=False, **scale)
            layers, _ = weighted_layers(model)
            depth, names = len(layers), [n for n, _ in layers]
            rec = _Recorder(layers)
            try:
                h0 = None
                for t in range(int(steps) + 1):
                    out = model(x)
                    hs = [o.detach().clone() for o in rec.outputs]
                    if h0 is None:
                        h0 = hs
                    for l, h in enumerate(hs):
                        cols["width"].append(w)
                        cols["seed"].append(s)
                        cols["step"].append(t)
                        cols["layer"].append(l + 1)
                        cols["module"].append(names[l])
                        cols["h_rms"].append(_norm(h) / math.sqrt(h.numel()))
                        cols["dh_rms"].append(_norm(h - h0[l]) / math.sqrt(h.numel()))
                    if t < int(steps):
                        loss = F.mse_loss(out, y)
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
            finally:
                rec.remove()
    coords = {k: np.asarray(v, dtype=str if k == "module" else None) for k, v in cols.items()}
    # Predictions: the library's, for an MLP of this depth (via an empty judge).
    param = {k: v for k, v in scale.items() if v is not None}
    param["base_lr"] = float(lr)
    cfg = {"model": {"arch": "mlp", "depth": depth}, "param": param, "optim": {"kind": optimizer},
           "widths": widths, "seeds": int(seeds), "steps": int(steps), "batch": int(x.shape[0])}
    report, _ = _native.check_judge(json.dumps(cfg), [], [], [], [], [], [], int(x[0].numel()), int(y.shape[1]))
    claims = {(c["quantity"], c["layer"]): c for c in json.loads(report)["claims"]}
    fits = []
    last = coords["step"] == int(steps)
    for l in range(1, depth + 1):
        sel = last & (coords["layer"] == l)
        per_w = [[v for v, ww in zip(coords["dh_rms"][sel], coords["width"][sel]) if ww == w] for w in widths]
        f = _fit.slope(widths, per_w)
        q = "df_norm" if l == depth else "dh_rms"
        c = claims.get((q, 0 if l == depth else l))
        pred = None if c is None else c.get("predicted")
        if pred is not None and l == depth:
            # ‖Δf‖ over the whole batch vs its RMS coordinate: the same width exponent.
            pass
        v = None if pred is None else _fit.verdict(f, pred, tolerance, int(seeds))
        fits.append({"layer": l, "module": names[l - 1], "slope": f["slope"], "ci95": f["ci95"],
                     "predicted": pred, **({} if v is None else v)})
    verdicts = [f.get("verdict") for f in fits if f.get("verdict")]
    order = ["pass", "unclear", "crossover", "fail", "error"]
    verdict = max(verdicts, key=order.index) if verdicts else None
    return {"coords": coords, "fits": fits, "verdict": verdict}
