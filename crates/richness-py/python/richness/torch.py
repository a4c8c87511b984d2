"""richness.torch: put any PyTorch model on the richness scale, and measure it.

``parameterize(model, optimizer, preset="mup", make_model=make)`` finds every parameter
of the model, decides its role from the dimensions that grow with the width (the model
built by ``make_model`` at two widths, compared shape by shape, as microsoft/mup's
base/delta shapes; or a ``width_dims`` hint), asks the richness library for each
tensor's multiplier g, init scale sigma and rate factor eta (``richness.table``'s
numbers: nothing here re-derives them), then

- redraws each weight from N(0, sigma^2),
- multiplies each layer's output by g (a picklable forward hook) and each
  activation module's output by the activation's gain c_phi (sqrt 2 for ReLU),
- rebuilds the optimizer's parameter groups with the per-tensor rates, keeping every
  setting of the user's own groups (weight decay, betas, momentum) per group,
- stores the parameterization in the model's ``state_dict`` (key
  ``_richness_parameterization``), so ``torch.save`` / ``load_state_dict`` keep it.

Roles (docs/theory.md §3, §9.2), with w a width dimension and F a fixed one:

=========================  ===================================  ===============
weight (out, in)           examples                             role
=========================  ===================================  ===============
(w, F)                     first Linear/Conv, ``nn.Embedding``  input-like (read-in; an embedding has fan-in 1)
(w, w)                     projections, MLP layers              hidden
(F, w)                     ``lm_head``, classifier              output-like (read-out)
(w,)                       LayerNorm/RMSNorm affine, biases     vector-like
=========================  ===================================  ===============

A vector-like tensor is a weight with fan-in 1 and the hidden role (a bias of a
hidden layer is one already): effective init variance 1 (its module's own init, gain 1,
bias 0, is kept), effective rate alpha^2 under SGD and alpha/sqrt(n) under Adam. Tensors
whose multiplier no hook can apply (``nn.MultiheadAttention``'s packed weights, norms)
are written in the layerwise gauge (g = 1), which trains identically (§4).

``check(make_model, widths, data)`` is ``richness check`` for a PyTorch model and
``coord_check`` is mup's coordinate check with the library's predictions and verdicts;
both take any input (integer tokens included) and ``loss=`` ("mse", "cross_entropy" or
a callable).

>>> import torch.nn as nn, richness.torch as rt
>>> make = lambda w: nn.Sequential(nn.Linear(8, w), nn.ReLU(), nn.Linear(w, 2))
>>> rt.parameterize(make(64), None, preset="mup", make_model=make, verbose=False)
"""

from __future__ import annotations

import fnmatch
import json
import math
import warnings
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from . import _native, _resolve

__all__ = [
    "parameterize", "parameterization", "restore", "check", "coord_check", "weighted_layers",
    "find_width_dims", "attention_scale", "AttentionScores", "coord_frame", "plot_coord",
]

STATE_KEY = "_richness_parameterization"
# Key of the user's own settings, kept in every parameter group that parameterize builds,
# so that a second parameterize (or restore) starts from them instead of compounding.
GROUP_KEY = "richness_base"

# Activation modules and the richness activation whose gain they get.
_ACTIVATIONS = {nn.ReLU: "relu", nn.Tanh: "tanh", nn.GELU: "gelu"}
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = tuple(c for c in (
    nn.LayerNorm, nn.GroupNorm, getattr(nn, "RMSNorm", None),
    nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
) if c is not None)
_ROLES = {"read-in": "read-in", "readin": "read-in", "input": "read-in", "hidden": "hidden",
          "read-out": "read-out", "readout": "read-out", "output": "read-out", "vector": "vector"}


class RichnessTorchError(ValueError):
    """A bad argument or a model richness.torch cannot parameterize (one-line message)."""


def _fail(msg: str):
    raise RichnessTorchError(msg)


class AttentionScores(nn.Module):
    """The attention logits ``scale * q @ k^T`` (q, k: [..., T, head_dim]) as a module, so
    that ``parameterize`` sets the scale's attention multiplier (``attention_scale``:
    d_h^-(1/2+r)) and ``check``/``coord_check`` record the logits. Unparameterized,
    scale = 1/sqrt(head_dim), PyTorch's."""

    def __init__(self, head_dim: int):
        super().__init__()
        if not (isinstance(head_dim, int) and head_dim >= 1):
            _fail(f"AttentionScores needs the head dimension, a positive integer; got {head_dim!r}")
        self.head_dim = head_dim
        self.scale = head_dim ** -0.5

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        if q.shape[-1] != self.head_dim:
            _fail(f"AttentionScores({self.head_dim}) got queries with last dim {q.shape[-1]}")
        return (q @ k.transpose(-2, -1)) * self.scale


def attention_scale(head_dim: int, *, preset: Optional[str] = None, richness: Optional[float] = None,
                    model: Optional[nn.Module] = None) -> float:
    """The attention-logit multiplier of docs/theory.md §9.3 at a fixed head dimension:
    c_att = d_h^-(1/2 + r), r clipped to [0, 1/2] (d_h^-1/2 for sp and a given alpha).
    Pass it as ``scaled_dot_product_attention(q, k, v, scale=...)`` (torch >= 2.1) or use
    ``AttentionScores``. ``r`` from ``preset``/``richness`` or a parameterized ``model``;
    default (nothing given) muP, r = 1/2.

    >>> attention_scale(16, preset="mup")
    0.0625
    """
    if not (isinstance(head_dim, int) and head_dim >= 1):
        _fail(f"head_dim must be a positive integer, got {head_dim!r}")
    if model is not None:
        info = parameterization(model)
        if info is None:
            _fail("the model is not parameterized: call parameterize first, or give preset/richness")
        r = info["table"].get("richness")
        if info["table"].get("gauge") == "sp":
            r = None
    else:
        r = _richness_of(preset, richness)
    r = 0.0 if r is None else min(max(float(r), 0.0), 0.5)
    return float(head_dim) ** -(0.5 + r)


def _richness_of(preset, richness) -> Optional[float]:
    defs = {"ntp": 0.0, "ntp-lr": 0.0, "mup": 0.5, "mup-lr": 0.5, "mfp": 0.5, "sp": None}
    if preset is not None:
        if preset not in defs:
            _fail(f"unknown preset `{preset}` (expected ntp, ntp-lr, mup, mup-lr, mfp or sp)")
        return defs[preset]
    return 0.5 if richness is None else float(richness)


class _Scale:
    """Forward hook: output -> g * output (+ (g_b - g) * bias along the layer's output
    axis when the bias has its own multiplier). A class, not a closure, so a hooked
    model pickles."""

    def __init__(self, g: float, g_bias: Optional[float] = None, axis: int = -1):
        self.g = float(g)
        self.g_bias = None if g_bias is None else float(g_bias)
        self.axis = axis

    def __call__(self, module, inputs, output):
        if isinstance(output, tuple):  # e.g. a module returning (out, extra): scale the first
            return (output[0] * self.g,) + tuple(output[1:])
        out = output * self.g
        b = getattr(module, "bias", None)
        if self.g_bias is not None and b is not None and self.g_bias != self.g:
            axis = getattr(self, "axis", 1 if output.dim() > 2 else -1)  # older pickles
            if axis == -1 or output.dim() == 1:
                shape = (-1,)
            else:
                shape = (1, -1) + (1,) * (output.dim() - 2)
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


# ---------------------------------------------------------------------------------
# What the model holds.


def _is_norm(m: nn.Module) -> bool:
    if isinstance(m, _NORMS):
        return True
    own = list(m.parameters(recurse=False))
    return bool(own) and type(m).__name__.lower().endswith("norm") and all(p.dim() == 1 for p in own)


def weighted_layers(model: nn.Module) -> Tuple[List[Tuple[str, nn.Module]], List[str]]:
    """The (name, module) of every ``nn.Linear``, ``nn.Conv1d/2d/3d`` and ``nn.Embedding``
    in definition order, and the names of other modules with parameters of their own."""
    layers, others = [], []
    for name, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.Embedding) + _CONV):
            layers.append((name, m))
        elif any(True for _ in m.parameters(recurse=False)):
            others.append(f"{name or '<root>'} ({type(m).__name__})")
    return layers, others


def _all_params(model: nn.Module) -> Dict[str, nn.Parameter]:
    """Every parameter under each name it has (a tied tensor under all of its names;
    ``named_parameters`` lists it once)."""
    out = {}
    for mname, m in model.named_modules():
        for attr, p in m._parameters.items():
            if p is not None:
                out[_pname(mname, attr)] = p
    return out


def _pname(module: str, attr: str) -> str:
    return f"{module}.{attr}" if module else attr


def _inventory(model: nn.Module):
    """Every parameter of the model as a record: its layout (how its dimensions are
    used), module and kind. Parameters of modules richness does not understand get
    layout None. Shared parameters (ties) are listed once per use."""
    mods = dict(model.named_modules())
    hookless = set()  # modules whose weights their parent uses directly (hooks never fire)
    for name, m in mods.items():
        if isinstance(m, nn.MultiheadAttention):
            for child, _ in m.named_modules():
                if child:
                    hookless.add(_pname(name, child))
    recs = []
    for name, m in mods.items():
        own = dict(m.named_parameters(recurse=False))
        if not own:
            continue
        def rec(attr, layout, kind):
            recs.append({"param": _pname(name, attr), "module": name, "attr": attr, "kind": kind,
                         "type": type(m).__name__, "layout": layout, "tensor": own[attr],
                         "hook": name not in hookless and layout in ("linear", "conv", "embedding")})
        if isinstance(m, nn.Linear):
            rec("weight", "linear", "weight")
            if m.bias is not None:
                rec("bias", "bias", "bias")
        elif isinstance(m, _CONV):
            rec("weight", "conv", "weight")
            if m.bias is not None:
                rec("bias", "bias", "bias")
        elif isinstance(m, nn.Embedding):
            rec("weight", "embedding", "weight")
        elif isinstance(m, nn.MultiheadAttention):
            for attr in own:
                if attr in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
                    rec(attr, "linear", "weight")
                    recs[-1]["hook"] = False
                else:  # in_proj_bias, bias_k, bias_v
                    rec(attr, "vector", "vector")
        elif _is_norm(m):
            for attr in own:
                rec(attr, "vector", "norm")
        else:
            for attr in own:
                rec(attr, None, "unknown")
    for r in recs:
        if r["layout"] == "bias" and r["module"] in hookless:
            r["layout"] = "vector"
    return recs, mods, hookless


def find_width_dims(make_model: Callable[[int], nn.Module], widths: Sequence[int] = (64, 128)) -> Dict[str, Tuple[int, ...]]:
    """The dimensions of every parameter that grow with the width: ``make_model`` is
    built at two widths and each parameter's shapes are compared (as mup's base and
    delta models). Returns {parameter name: dims}; save it and pass it to
    ``parameterize(..., width_dims=...)`` where building twice is expensive."""
    _check_builder(make_model)
    try:
        ws = [int(w) for w in widths]
    except (TypeError, ValueError):
        _fail(f"widths must be two positive integers, got {widths!r}")
    if len(set(ws)) < 2:
        _fail("find_width_dims needs two different widths")
    ws = sorted(set(ws))[:2]
    shapes = []
    for w in ws:
        try:
            with torch.random.fork_rng(devices=[]):  # the user's random stream is not consumed
                m = make_model(w)
        except Exception as e:  # the user's builder: say which width it refused
            _fail(f"make_model({w}) failed: {type(e).__name__}: {e}".splitlines()[0])
        if not isinstance(m, nn.Module):
            _fail(f"make_model({w}) returned {type(m).__name__}, not a torch.nn.Module")
        shapes.append({n: tuple(p.shape) for n, p in _all_params(m).items()})
        del m
    a, b = shapes
    if set(a) != set(b):
        diff = sorted(set(a) ^ set(b))
        _fail(f"make_model({ws[0]}) and make_model({ws[1]}) have different parameters ({', '.join(diff[:3])}): roles need the same model at two widths")
    out = {}
    for n in a:
        if len(a[n]) != len(b[n]):
            _fail(f"parameter `{n}` has rank {len(a[n])} at width {ws[0]} and {len(b[n])} at {ws[1]}")
        out[n] = tuple(i for i, (x, y) in enumerate(zip(a[n], b[n])) if x != y)
        shrink = [i for i in out[n] if b[n][i] < a[n][i]]
        if shrink:
            _fail(f"parameter `{n}` shrinks along dim {shrink[0]} as the width grows: not a width dimension")
    if not any(out.values()):
        _fail(f"no parameter changes shape between make_model({ws[0]}) and make_model({ws[1]}): does make_model use its width?")
    return out


def _lookup_dims(width_dims: Dict[str, Sequence[int]], name: str) -> Optional[Tuple[int, ...]]:
    if name in width_dims:
        return tuple(width_dims[name])
    for pat, dims in width_dims.items():
        if any(c in pat for c in "*?[") and fnmatch.fnmatchcase(name, pat):
            return tuple(dims)
    return None


def _unknown_fans(r, name, role):
    """Fans of a parameter of a module richness does not know, given a role by the user.
    A matrix role takes PyTorch's fan-in (size(1) times the rest: in_1 * in_2 for
    nn.Bilinear); no hook can apply its multiplier, so it is written in the layerwise gauge."""
    t = r["tensor"]
    if _ROLES[role] == "vector":
        r["fan_in"], r["fan_out"] = 1, int(t.numel())
    elif t.dim() < 2:
        _fail(f"roles gives `{name}` the {role} role, but it has shape {tuple(t.shape)}: a weight role needs rank 2 or more "
              "(give it \"vector\", or leave it alone)")
    else:
        r["fan_in"], r["fan_out"] = int(t[0].numel()), int(t.shape[0])


def _one_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0]


def _forward(model, x, what):
    """The model on ``x``, or a one-line error naming what was passed (a batch the model
    cannot take: wrong feature size, tokens outside the vocabulary, ...)."""
    try:
        return _call(model, x)
    except RichnessTorchError:
        raise
    except Exception as e:  # the user's forward: say which input it refused
        _fail(f"the model's forward on {what} failed: {_one_line(e)}")


def _trace_order(model: nn.Module, example, what: Optional[str] = None) -> Tuple[List[str], Counter]:
    """Names of the modules in the order one forward pass calls them, and how often."""
    order, calls, handles = [], Counter(), []
    for name, m in model.named_modules():
        def pre(mod, inp, name=name):
            calls[name] += 1
            if calls[name] == 1:
                order.append(name)
        handles.append(m.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            _forward(model, example, "example" if what is None else what)
    finally:
        for h in handles:
            h.remove()
    return order, calls


def _call(model, x):
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, (tuple, list)):
        return model(*x)
    return model(x)


def _assign_roles(recs, width_dims, roles, order, warn_list):
    """Role, fan-in and fan-out of every record; the width n."""
    known = width_dims is not None
    sizes = Counter()
    for r in recs:
        t = r["tensor"]
        r["shape"] = tuple(t.shape)
        if known:
            d = _lookup_dims(width_dims, r["param"])
            if d is None:
                _fail(f"width_dims has no entry for parameter `{r['param']}` (it names {len(width_dims)} parameters)")
            if any(i >= t.dim() for i in d):
                _fail(f"width_dims gives dim {max(d)} for `{r['param']}`, which has shape {tuple(t.shape)}")
            r["wdims"] = d
            for i in d:
                sizes[int(t.shape[i])] += 1
    # Roles of weights.
    weights = [r for r in recs if r["layout"] in ("linear", "conv", "embedding")]
    for r in recs:
        lay, t = r["layout"], r["tensor"]
        if lay in ("linear", "conv"):
            r["fan_in"] = int(t[0].numel())
            r["fan_out"] = int(t.shape[0])
        elif lay == "embedding":
            r["fan_in"], r["fan_out"] = 1, int(t.shape[1])
        elif lay in ("bias", "vector"):
            r["fan_in"], r["fan_out"] = 1, int(t.numel())
    if known:
        for r in recs:
            lay, d = r["layout"], r["wdims"]
            if lay in ("linear", "conv", "embedding"):
                if any(i > 1 for i in d):
                    r["role"], r["why"] = None, f"grows along dim {max(d)} (a kernel dimension)"
                    continue
                out_w, in_w = (0 in d, 1 in d) if lay != "embedding" else (1 in d, 0 in d)
                if lay == "embedding" and in_w:
                    r["role"], r["why"] = None, "an embedding table whose size grows with the width"
                    continue
                r["role"] = {(True, False): "read-in", (True, True): "hidden", (False, True): "read-out"}.get((out_w, in_w))
                if r["role"] is None:
                    r["why"] = "no width dimension (a fixed-size layer)"
            elif lay == "vector":
                r["role"] = "vector" if d else None
                if not d:
                    r["why"] = "no width dimension"
                elif len(d) != 1 or r["tensor"].numel() != r["tensor"].shape[d[0]]:
                    r["role"], r["why"] = None, "grows along several dimensions"
            elif lay == "bias":
                r["role"] = "bias"
            else:
                r["role"], r["why"] = None, "a parameter of a module richness does not know"
    else:
        for r in recs:
            r["role"] = {"vector": "vector", "bias": "bias"}.get(r["layout"]) if r["layout"] else None
            if r["layout"] is None:
                r["why"] = "a parameter of a module richness does not know"
        pos = {n: i for i, n in enumerate(order)} if order else None
        seq = [r for r in weights]
        if pos is not None:
            called = [r for r in seq if r["module"] in pos]
            uncalled = [r for r in seq if r["module"] not in pos]
            seq = sorted(called, key=lambda r: pos[r["module"]])
            for r in uncalled:
                r["role"], r["why"] = None, "not called in the traced forward pass"
        emb = [r for r in seq if r["layout"] == "embedding"]
        dense = [r for r in seq if r["layout"] != "embedding"]
        for r in emb:
            r["role"] = "read-in"
        for i, r in enumerate(dense):
            if i == len(dense) - 1 and (len(dense) > 1 or emb):
                r["role"] = "read-out"
            elif i == 0 and not emb:
                r["role"] = "read-in"
            else:
                r["role"] = "hidden"
        how = "forward order" if order else "definition order"
        if not roles or set(roles) != {r["module"] for r in seq}:
            warn_list.append(f"roles follow {how} (first weighted layer = read-in, last = read-out): "
                             "pass make_model= or width_dims= to find them from the widths")
        hidden_out = [r["fan_out"] for r in seq if r.get("role") not in ("read-out", None)]
        n = max(hidden_out) if hidden_out else max((r["fan_out"] for r in seq), default=1)
    if roles:
        names = {r["module"] for r in weights} | {r["param"] for r in recs}
        unknown = [k for k in roles if k not in names]
        if unknown:
            _fail(f"roles name {', '.join(unknown)}, not weighted layers of the model ({', '.join(sorted({r['module'] for r in weights}))})")
        for k, v in roles.items():
            if v not in _ROLES:
                _fail(f"unknown role `{v}` for `{k}` (expected read-in, hidden, read-out or vector)")
            for r in recs:
                if (r["module"] == k and r["layout"] in ("linear", "conv", "embedding")) or r["param"] == k:
                    r["role"] = _ROLES[v]
                    r.pop("why", None)
                    if r["layout"] is None:
                        _unknown_fans(r, k, v)
    if known:
        if not sizes:
            _fail("no parameter has a width dimension")
        top = max(sizes.values())
        n = max(s for s, c in sizes.items() if c == top)
    # Biases follow their layer.
    by_mod = {r["module"]: r for r in recs if r["layout"] in ("linear", "conv")}
    for r in recs:
        if r["layout"] == "bias":
            layer = by_mod[r["module"]]
            r["role"] = None if layer.get("role") is None else "bias"
            if r["role"] is None:
                r["why"] = f"the bias of {layer['module'] or '<root>'}, which is left alone"
    return n


# ---------------------------------------------------------------------------------
# parameterize


def _optimizer_kind(optimizer) -> str:
    if optimizer is None or type(optimizer) is torch.optim.SGD:
        return "sgd"
    if type(optimizer) in (torch.optim.Adam, torch.optim.AdamW):
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
    """Install the multipliers, gains and attention scales that ``info`` (a stored
    parameterization) describes, replacing any earlier ones; the weights are not touched."""
    _remove_hooks(model)
    mods = dict(model.named_modules())

    def get(name):
        m = mods.get(name)
        if m is None:
            _fail(f"the stored parameterization names module `{name}`, which this model does not have")
        return m

    if "hooks" in info:
        for h in info["hooks"]:
            m = get(h["module"])
            m._richness_handle = m.register_forward_hook(_Scale(h["multiplier"], h.get("bias_multiplier"), h.get("axis", -1)))
    else:  # format 1
        for l in info["layers"]:
            m = get(l["module"])
            g_b = l["bias"]["multiplier"] if l.get("bias") else None
            m._richness_handle = m.register_forward_hook(_Scale(l["multiplier"], g_b, 1 if isinstance(m, _CONV) else -1))
    for name, c in info.get("gains", {}).items():
        m = get(name)
        m._richness_handle = m.register_forward_hook(_Scale(c))
    for name, s in info.get("attention", {}).items():
        get(name).scale = s
    model._richness = info
    if not getattr(model, "_richness_state_hooks", False):
        model._register_state_dict_hook(_StateDictHook())
        model._register_load_state_dict_pre_hook(_LoadHook(), with_module=True)
        model._richness_state_hooks = True


def _check_model(model):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    params = list(model.parameters())
    if not params:
        _fail(f"{type(model).__name__} has no parameters (no weighted layer) to parameterize")
    for p in params:
        if p.device.type == "meta":
            _fail("the model's parameters are on the meta device (no values): build it on cpu or cuda first")
        if p.dtype == torch.float16:
            _fail("the model has float16 parameters: keep its weights in float32 (use torch.autocast for half-precision compute)")
        if not p.dtype.is_floating_point:
            _fail(f"parameter of dtype {p.dtype}: richness parameterizes floating-point weights only")


def parameterize(
    model: nn.Module,
    optimizer: Optional[torch.optim.Optimizer] = None,
    *,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    alpha: Optional[float] = None,
    bias: str = "fan-in-1",
    make_model: Optional[Callable[[int], nn.Module]] = None,
    widths: Sequence[int] = (64, 128),
    width_dims: Optional[Dict[str, Sequence[int]]] = None,
    example: Any = None,
    roles: Optional[Dict[str, str]] = None,
    gain: bool = True,
    zero_readout: bool = False,
    zero_query: Sequence[str] = (),
    strict: bool = False,
    verbose: bool = True,
) -> Optional[torch.optim.Optimizer]:
    """Put ``model`` on the richness scale in place and return ``optimizer`` with its
    parameter groups rebuilt (each tensor's rate = its own group's lr times the
    tensor's factor; weight decay, betas, momentum kept per group).

    ``preset``: ntp, ntp-lr, mup, mup-lr, mfp or sp; or ``richness`` (r) with ``gauge``
    (mup, layerwise, rescale; default mup) and ``gamma0``. Default: muP.

    Roles come from the widths: ``make_model`` (the model's builder; it is called at
    the two ``widths``) or ``width_dims`` ({parameter name or glob: dims that grow},
    e.g. from ``find_width_dims``). Without either, roles follow the forward order of
    ``example`` (an input batch) or else the definition order, with a warning.
    ``roles``: {module name: "read-in" | "hidden" | "read-out"} overrides.

    ``bias``: "fan-in-1" (default; a bias is a weight on a constant input 1, zero at
    init: vector-like for a width-sized bias) or "torch" (a bias shares its layer's
    multiplier, init and rate, as mupify). ``gain``: multiply the outputs of
    ``nn.ReLU``/``nn.Tanh``/``nn.GELU`` modules by the activation's gain.
    ``zero_readout``: zero every read-out weight at init; ``zero_query``: names (or
    globs) of query projections to zero (a fused q/k/v projection, out = 3 x in, has
    only its first third zeroed). Tied parameters (one tensor used by an embedding
    and the read-out) are parameterized in the mup gauge only (§9.4); other gauges
    are refused. Parameters of modules richness does not know are left alone with a
    warning, or refused under ``strict``. Calling it again re-applies from the
    user's stored settings (never compounds). Prints the table when ``verbose``.
    """
    _check_model(model)
    if bias not in ("torch", "fan-in-1"):
        _fail(f"bias must be `torch` or `fan-in-1`, got `{bias}`")
    kind = _optimizer_kind(optimizer)
    if optimizer is not None:
        held = {id(p) for grp in optimizer.param_groups for p in grp["params"]}
        missing = sorted({n for n, p in model.named_parameters() if p.requires_grad and id(p) not in held})
        if missing:
            _fail(f"the optimizer does not hold {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}: build it from model.parameters()")
    scale = {"preset": preset, "richness": richness, "gamma0": gamma0, "gauge": gauge, "alpha": alpha}
    # Validate the scale choice before touching anything (the library's one-line errors).
    _resolve([(1, 1, False, False), (1, 1, True, False)], None, preset=preset, richness=richness,
             gamma0=gamma0, gauge=gauge, optimizer=kind, alpha=alpha)
    if width_dims is None and make_model is not None:
        width_dims = find_width_dims(make_model, widths)
    if width_dims is not None and not isinstance(width_dims, dict):
        raise TypeError("width_dims must be a dict {parameter name: dims that grow with the width}")
    for k, d in (width_dims or {}).items():
        if isinstance(d, (str, bytes)) or not isinstance(d, (tuple, list)) or \
                not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in d):
            raise TypeError(f"width_dims[{k!r}] must be a tuple of dimension indices (e.g. (0, 1)), got {d!r}")
    info = _build(model, kind, scale, bias, width_dims, example, roles, gain, zero_readout, zero_query, strict)
    _redraw(model, info)
    _apply_hooks(model, info)
    if optimizer is not None:
        _rebuild_groups(model, optimizer, info, kind)
    for w in info["warnings"]:
        warnings.warn(f"richness: {w}", stacklevel=2)
    if verbose:
        print(_describe(info, optimizer))
    return optimizer


def _build(model, kind, scale, bias, width_dims, example, roles, gain, zero_readout, zero_query, strict):
    recs, mods, hookless = _inventory(model)
    for pat in zero_query:
        if not any(fnmatch.fnmatchcase(n, pat) and isinstance(m, nn.Linear) for n, m in mods.items()):
            _fail(f"zero_query `{pat}` names no nn.Linear of the model")
    warn_list: List[str] = []
    order = calls = None
    if example is not None:
        was = getattr(model, "_richness", None)
        _remove_hooks(model)
        try:
            order, calls = _trace_order(model, example)
        finally:
            if was is not None:
                _apply_hooks(model, was)
    n = _assign_roles(recs, width_dims, roles, order, warn_list)
    if order is not None:
        called = set(order)
        for r in recs:
            if r.get("role") is not None and r["hook"] and r["module"] not in called:
                warn_list.append(f"`{r['module']}` is not called in the forward pass: its multiplier would never apply")
        many = sorted(m for m, c in calls.items() if c > 1 and any(r["module"] == m and r["hook"] for r in recs))
        if many:
            warn_list.append(f"{', '.join(many)} called several times per forward (weights shared across calls)")
    # Ties: one tensor in several records.
    by_id: Dict[int, List[dict]] = {}
    for r in recs:
        by_id.setdefault(id(r["tensor"]), []).append(r)
    left = [r for r in recs if r.get("role") is None]
    unknown = [r for r in left if r["layout"] is None]
    if unknown and strict:
        names = ", ".join(f"{r['param']} ({r['type']})" for r in unknown)
        _fail(f"strict: richness does not know how {names} are used; give them roles in roles=, or drop strict")
    # Rows for the library: a leading row fixes the width n (the library takes the
    # largest non-final fan-out as the width; every other row passes fan-out 1).
    rows, row_roles, row_of = [(1, n, False, False)], ["read-in"], {}
    for i, r in enumerate(recs):
        role = r.get("role")
        if role in ("read-in", "hidden", "read-out"):
            has_b = bias == "fan-in-1" and r["layout"] in ("linear", "conv") and getattr(mods[r["module"]], "bias", None) is not None and r["hook"]
            rows.append((r["fan_in"], 1, role != "read-in", has_b))
            row_roles.append(role)
            row_of[i] = len(rows) - 1
        elif role == "vector":
            rows.append((1, 1, False, False))
            row_roles.append("hidden")
            row_of[i] = len(rows) - 1
    if len(rows) == 1:
        _fail(f"{type(model).__name__} has no parameter richness can parameterize ({', '.join(r['param'] for r in left[:3])} left alone)")
    table = _resolve(rows, row_roles, optimizer=kind, base_lr=1.0, adam_eps=1.0, **scale)
    lib = table["layers"]
    table["layers"] = lib[1:]
    table["width"] = n
    gauge_name = table["gauge"]

    def layerwise(s):
        """The same effective init and rate with g = 1 (§4: a per-tensor gauge change)."""
        g = s["multiplier"]
        lr = s["lr"] * g * g if kind == "sgd" else s["lr"] * g
        return {"multiplier": 1.0, "init_std": s["init_std"] * g, "lr": lr, "eps": 1.0}

    params, hooks, layers = [], [], []
    layer_of = {}
    for i, r in enumerate(recs):
        role = r.get("role")
        entry = {"param": r["param"], "module": r["module"], "type": r["type"], "kind": r["kind"],
                 "role": role or "left alone", "shape": list(r["shape"])}
        if i in row_of:
            lp = lib[row_of[i]]
            s = {"multiplier": lp["multiplier"], "init_std": lp["init_std"], "lr": lp["lr"],
                 "eps": lp.get("adam_eps", 1.0) or 1.0}
            if role == "vector" or not r["hook"]:
                s = layerwise(s)
            if role == "vector":
                s["init_std"] = None  # the module's own init (gain 1, bias 0) is kept
            entry.update(s, fan_in=r["fan_in"], fan_out=r["fan_out"])
            if r["layout"] in ("linear", "conv", "embedding"):
                layer_of[r["module"]] = (entry, lp, r)
        elif role == "bias":
            w_entry, lp, wr = layer_of[r["module"]]
            if bias == "torch":
                s = {k: w_entry[k] for k in ("multiplier", "init_std", "lr", "eps")}
            else:
                b = lp["bias"]
                s = {"multiplier": b["multiplier"], "init_std": 0.0, "lr": b["lr"],
                     "eps": lp.get("bias_adam_eps", 1.0) or 1.0}
            entry.update(s, fan_in=1, fan_out=r["fan_out"], role=f"bias ({w_entry['role']})")
            w_entry["bias"] = {"multiplier": s["multiplier"], "init_std": s["init_std"], "lr": s["lr"]}
            if kind == "adam":
                w_entry["bias"]["adam_eps"] = s["eps"]
        else:
            entry["why"] = r.get("why", "")
        params.append(entry)
    # Tied tensors: all uses must agree on the raw init and rate.
    for uses in by_id.values():
        if len(uses) < 2:
            continue
        names = " and ".join(f"`{u['param']}`" for u in uses)
        es = [next(e for e in params if e["param"] == u["param"]) for u in uses]
        if any(e["role"] == "left alone" for e in es):
            continue
        if gauge_name != "mup":
            _fail(f"{names} are one tensor (tied): its uses need different raw inits in the {gauge_name} gauge; "
                  "tie in the mup gauge (preset mup or ntp, or gauge=\"mup\"), or untie them")
        for key in ("init_std", "lr"):
            vals = [e[key] for e in es]
            if not all(v is not None and math.isclose(v, vals[0], rel_tol=1e-9) for v in vals):
                _fail(f"{names} are one tensor (tied) but its uses need {key} {', '.join(_fmt(v) for v in vals)}: untie them")
        # The tensor's one optimizer group is built through one use (its multiplier scales
        # the weight decay): the embedding's, as mup (an embedding's decay is then its own
        # layerwise rule), whichever module is defined first.
        first = next((e for e in es if e["role"] == "read-in"), es[0])
        eps = min(e["eps"] for e in es)
        for e in es:
            e["tied"] = [u["param"] for u in uses if u["param"] != e["param"]]
            e["eps"] = eps
            if e is not first:
                e["shared"] = True  # the optimizer and the init see the tensor once, through `first`
        if zero_readout and any(e["role"] == "read-out" for e in es) and any(e["role"] != "read-out" for e in es):
            _fail(f"zero_readout would zero {names}, one tensor (tied) that is also used as "
                  f"{', '.join(e['role'] for e in es if e['role'] != 'read-out')}: untie them, or drop zero_readout")
        first["note"] = (f"tied: {' = '.join(e['param'] for e in [first] + [e for e in es if e is not first])}: one tensor, "
                         f"one init and rate, one optimizer group; weight decay scaled by {first['param']}'s multiplier "
                         f"{_fmt(first['multiplier'])}" + (f", Adam eps by the smallest of the uses' factors, {_fmt(eps)}" if kind == "adam" else ""))
    if kind == "sgd":
        for e in params:
            e.pop("eps", None)
    # Hooks: one per module with a multiplier.
    for name, m in mods.items():
        w = next((e for e in params if e["module"] == name and e["kind"] == "weight" and e.get("multiplier") is not None
                  and e["type"] in ("Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding") and name not in hookless
                  and e["role"] != "left alone"), None)
        if w is None:
            continue
        b = next((e for e in params if e["module"] == name and e["kind"] == "bias" and e.get("multiplier") is not None), None)
        g_b = None if b is None else b["multiplier"]
        hooks.append({"module": name, "multiplier": w["multiplier"], "bias_multiplier": g_b,
                      "axis": 1 if isinstance(m, _CONV) else -1})
        layers.append({"module": name, "type": w["type"], "role": w["role"], "fan_in": w["fan_in"],
                       "fan_out": w["fan_out"], "multiplier": w["multiplier"], "init_std": w["init_std"],
                       "lr": w["lr"], **({"adam_eps": w["eps"]} if "eps" in w else {}),
                       **({"bias": w["bias"]} if "bias" in w else {})})
    act_gain = {}
    if gain:
        for name, m in mods.items():
            for cls, act in _ACTIVATIONS.items():
                if type(m) is cls:
                    act_gain[name] = _native.activation_gain(act)
    # Attention.
    r_att = table.get("richness") if gauge_name != "sp" else None
    r_att = 0.0 if r_att is None else min(max(float(r_att), 0.0), 0.5)
    attention, att_warn = {}, []
    for name, m in mods.items():
        if isinstance(m, AttentionScores):
            attention[name] = float(m.head_dim) ** -(0.5 + r_att)
    for name, m in mods.items():
        is_att = isinstance(m, nn.MultiheadAttention) or "attention" in type(m).__name__.lower()
        if is_att and not isinstance(m, AttentionScores):
            if not any(isinstance(c, AttentionScores) for c in m.modules()):
                att_warn.append(name or "<root>")
    if att_warn:
        warn_list.append(
            f"attention module(s) {', '.join(att_warn)}: richness cannot confirm their logit scale; the scale's rule is "
            "d_h^-(1/2+r) (rt.attention_scale(head_dim, ...)): use rt.AttentionScores, or pass that scale to "
            "scaled_dot_product_attention (nn.MultiheadAttention keeps 1/sqrt(d_h): with d_h fixed only constants differ)")
    if left:
        named = [f"{e['param']} ({e['why']})" for e in params if e["role"] == "left alone"]
        warn_list.append(f"left alone at the base rate: {', '.join(named[:6])}{' ...' if len(named) > 6 else ''}")
    info = {
        "format": 2,
        "bias": bias,
        "table": table,
        "width": n,
        "roles_from": "widths" if width_dims is not None else ("forward order" if order else "definition order"),
        "optimizer": kind,
        "layers": layers,
        "params": params,
        "hooks": hooks,
        "gains": act_gain,
        "gain": bool(gain),
        "attention": attention,
        "attention_r": r_att,
        "left_alone": [e["param"] for e in params if e["role"] == "left alone"],
        "warnings": warn_list + list(table.get("warnings", [])),
        "zero_readout": bool(zero_readout),
        "zero_query": list(zero_query),
    }
    return info


def _redraw(model: nn.Module, info: Dict[str, Any]) -> None:
    named = _all_params(model)
    mods = dict(model.named_modules())
    with torch.no_grad():
        for e in info["params"]:
            if e.get("shared") or e["role"] == "left alone" or e.get("init_std") is None:
                continue
            p = named[e["param"]]
            if e["init_std"] == 0.0:
                p.zero_()
            else:
                p.normal_(0.0, e["init_std"])
            m = mods[e["module"]]
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                p[m.padding_idx].zero_()
        if info.get("zero_readout"):
            for e in info["params"]:
                if e["role"].startswith("read-out") or e["role"] == "bias (read-out)":
                    named[e["param"]].zero_()
        for pat in info.get("zero_query", []):
            hit = [n for n, m in mods.items() if fnmatch.fnmatchcase(n, pat) and isinstance(m, nn.Linear)]
            if not hit:
                _fail(f"zero_query `{pat}` names no nn.Linear of the model")
            for n in hit:
                m = mods[n]
                rows = m.out_features // 3 if m.out_features == 3 * m.in_features else m.out_features
                m.weight[:rows].zero_()
                if m.bias is not None:
                    m.bias[:rows].zero_()


def _rebuild_groups(model: nn.Module, optimizer, info: Dict[str, Any], kind: str) -> None:
    decoupled = type(optimizer) is torch.optim.AdamW
    named = _all_params(model)
    entry_of = {}
    for e in info["params"]:
        if e["role"] != "left alone" and not e.get("shared"):
            entry_of[id(named[e["param"]])] = e
    base_of = {}
    for grp in optimizer.param_groups:
        base = grp.get(GROUP_KEY) or {k: v for k, v in grp.items() if k not in ("params", GROUP_KEY)}
        for p in grp["params"]:
            base_of[id(p)] = base
    groups, rest = [], {}
    order = [named[e["param"]] for e in info["params"] if id(named[e["param"]]) in entry_of and not e.get("shared")]
    seen = set()
    for p in order:
        if id(p) in seen or id(p) not in base_of:
            continue
        seen.add(id(p))
        e, base = entry_of[id(p)], base_of[id(p)]
        g = e["multiplier"]
        grp = dict(base)
        grp["params"] = [p]
        grp["lr"] = float(base["lr"]) * e["lr"]
        wd = float(base.get("weight_decay", 0.0))
        if wd:
            grp["weight_decay"] = wd * g if decoupled else wd * g * g
        if kind == "adam":
            grp["eps"] = float(base.get("eps", 1e-8)) * e["eps"]
        grp[GROUP_KEY] = dict(base)
        groups.append(grp)
    for grp in optimizer.param_groups:
        left = [p for p in grp["params"] if id(p) not in seen]
        if left:
            base = grp.get(GROUP_KEY) or {k: v for k, v in grp.items() if k not in ("params", GROUP_KEY)}
            key = id(base)
            if key not in rest:
                rest[key] = dict(base, params=[], **{GROUP_KEY: dict(base)})
            rest[key]["params"].extend(left)
    optimizer.param_groups.clear()
    optimizer.state.clear()
    for grp in groups + list(rest.values()):
        optimizer.add_param_group(grp)


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.5g}"


def _describe(info: Dict[str, Any], optimizer=None) -> str:
    t = info["table"]
    head = f"# richness: {t['gauge']} gauge, n = {info.get('width', t['width'])}, alpha = {_fmt(t['alpha'])}"
    if t.get("preset"):
        head += f", preset {t['preset']}"
    elif t.get("richness") is not None:
        head += f", r = {t['richness']}"
    head += f", {t['optimizer']}, bias {info['bias']}, roles from {info.get('roles_from', 'position')}"
    if optimizer is not None:
        head += f", base lr {_fmt(float(optimizer.param_groups[0].get(GROUP_KEY, optimizer.param_groups[0])['lr']))}"
    rows = [("parameter", "role", "fan_in", "fan_out", "multiplier", "init_std", "lr")]
    for e in info.get("params", []):
        if e["role"] == "left alone":
            continue
        init = "keep" if e.get("init_std") is None else _fmt(e["init_std"])
        role = e["role"] + (" (tied: " + ", ".join(e["tied"]) + ")" if e.get("tied") else "")
        rows.append((e["param"], role, str(e.get("fan_in", "-")), str(e.get("fan_out", "-")),
                     _fmt(e.get("multiplier")), init, _fmt(e.get("lr"))))
    w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [head] + ["  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows]
    lines.append("# lr: factor on each parameter's own group lr; multiplier 1 on vector-like and hookless tensors: "
                 "the layerwise gauge, same training (docs/theory.md §4)")
    if info["gains"]:
        lines.append("# activation gains: " + ", ".join(f"{k} x{_fmt(v)}" for k, v in info["gains"].items()))
    elif info.get("gain") and any(e["role"] == "hidden" for e in info.get("params", [])):
        lines.append("# activation gains: none (no nn.ReLU, nn.Tanh or nn.GELU module; an activation called as a function, "
                     "F.relu, gets no gain c_phi: constants change, no width exponent)")
    if info.get("attention"):
        sc = sorted(set(info["attention"].values()))
        lines.append(f"# attention logits ({len(info['attention'])} AttentionScores): scale d_h^-(1/2+{_fmt(info['attention_r'])}) = {', '.join(_fmt(v) for v in sc)}")
    for e in info.get("params", []):
        if e.get("note"):
            lines.append(f"# {e['note']}")
    for warn in info.get("warnings", []):
        lines.append(f"# warning: {warn}")
    return "\n".join(lines)


def parameterization(model_or_state: Union[nn.Module, Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The parameterization stored in a parameterized model or in its ``state_dict``
    (``None`` when there is none): ``params`` (every tensor: role, fan-in/out,
    multiplier, init_std, lr factor, tie), ``layers`` (per weighted module), ``gains``,
    ``table`` (the library's table), ``left_alone`` and ``warnings``."""
    if isinstance(model_or_state, nn.Module):
        return getattr(model_or_state, "_richness", None)
    for k, v in model_or_state.items():
        if k.endswith(STATE_KEY):
            return json.loads(bytes(v.tolist()).decode())
    return None


def restore(model: nn.Module, state_dict: Dict[str, Any], optimizer: Optional[torch.optim.Optimizer] = None,
            optimizer_state: Optional[Dict[str, Any]] = None):
    """Load ``state_dict`` (saved from a parameterized model) into a freshly built
    ``model``: restores the multipliers, gains and attention scales, loads the weights,
    and, given the ``optimizer`` built from ``model.parameters()`` as for training,
    rebuilds its parameter groups with the stored rates and loads ``optimizer_state``
    (``optimizer.state_dict()`` saved with the model), so that training continues
    exactly. Returns the optimizer when one is given, else the model."""
    info = parameterization(state_dict)
    if info is None:
        _fail("the state dict has no richness parameterization (was the model parameterized?)")
    kind = _optimizer_kind(optimizer)
    _apply_hooks(model, info)
    model.load_state_dict(state_dict)
    if optimizer is None:
        if optimizer_state is not None:
            _fail("optimizer_state given without the optimizer to load it into")
        return model
    if info.get("format", 1) < 2:
        _fail("this state dict was saved by an older richness: parameterize the fresh model and optimizer, then load both state dicts")
    if info.get("optimizer", kind) != kind:
        _fail(f"the model was parameterized for {info['optimizer']}, the optimizer is {type(optimizer).__name__}")
    _rebuild_groups(model, optimizer, info, kind)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    return optimizer


# ---------------------------------------------------------------------------------
# Measurements.


def _as_tensor(a, dtype, name) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"{name} must be numeric arrays, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype.is_floating_point:
        if not torch.isfinite(t).all():
            _fail(f"{name} has NaN or infinite values")
        t = t.to(dtype)
    return t


def _probe_data(data, batch: int, dtype, loss):
    if isinstance(data, str):
        from . import data as _data

        d = _data.load(data)
        x, y = d["x_train"][:batch], d["y_train"][:batch]
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = data
        x, y = x[:batch], y[:batch]
    else:
        raise TypeError("data must be a richness data spec (e.g. \"digits\") or a pair (x, y)")
    x = _as_tensor(x, dtype, "x")
    y = _as_tensor(y, dtype if loss == "mse" else torch.float64, "y")
    if loss == "mse":
        if not y.dtype.is_floating_point:
            y = y.to(dtype)
        if y.dim() == 1:
            y = y[:, None]
    elif loss == "cross_entropy" and y.dtype.is_floating_point:
        _fail("cross_entropy needs integer class (or token) targets y")
    if x.shape[0] != y.shape[0]:
        _fail(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    return x, y


def _f32(t):
    # Losses in float32 at least (CPU has no bfloat16 mse), whatever the model's dtype.
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


def _loss_fn(loss):
    if callable(loss):
        return loss
    if loss == "mse":
        return lambda out, y: F.mse_loss(_f32(out), _f32(y))
    if loss == "cross_entropy":
        return lambda out, y: F.cross_entropy(_f32(out).reshape(-1, out.shape[-1]), y.reshape(-1))
    _fail(f"loss must be \"mse\", \"cross_entropy\" or a callable (output, y) -> scalar, got {loss!r}")


def _check_target(out, y, loss, loss_fn=None):
    if not isinstance(out, torch.Tensor):
        _fail(f"the model returns {type(out).__name__}; check needs a tensor output (wrap the model)")
    if loss == "mse" and tuple(out.shape) != tuple(y.shape):
        _fail(f"y has shape {tuple(y.shape)} but the model's output has {tuple(out.shape)} (mse needs equal shapes)")
    if loss == "cross_entropy" and tuple(out.shape[:-1]) != tuple(y.shape):
        _fail(f"y has shape {tuple(y.shape)}; cross_entropy needs the output's shape without its last dim, {tuple(out.shape[:-1])}")
    if callable(loss) and loss_fn is not None:
        try:
            v = loss_fn(out, y)
        except Exception as e:  # the user's loss
            _fail(f"loss(output, y) failed: {_one_line(e)}")
        if not (isinstance(v, torch.Tensor) and v.numel() == 1 and v.dtype.is_floating_point):
            shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            _fail(f"loss(output, y) must return a scalar float tensor, got {shape}")


def _norm(t: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(t.double()))


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 else float("nan")


def _op(w: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(w.double().flatten(1), ord=2))


def _apply_layer(m: nn.Module, inp: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if isinstance(m, nn.Linear):
        return F.linear(inp, w)
    if isinstance(m, nn.Embedding):
        return F.embedding(inp, w, m.padding_idx)
    conv = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}[type(m)]
    return conv(inp, w, None, m.stride, m.padding, m.dilation, m.groups)


def _first(t):
    return t[0] if isinstance(t, (tuple, list)) else t


class _Recorder:
    """Records each site's input and (multiplied) output on forward passes."""

    def __init__(self, sites):
        self.inputs: List[Optional[torch.Tensor]] = [None] * len(sites)
        self.outputs: List[Optional[torch.Tensor]] = [None] * len(sites)
        self.handles = []
        for i, s in enumerate(sites):
            self.handles.append(s["module_obj"].register_forward_hook(self._hook(i)))

    def _hook(self, i):
        def hook(module, inputs, output):
            self.inputs[i] = inputs[0] if inputs else None
            out = _first(output)
            if out.requires_grad:
                out.retain_grad()
            self.outputs[i] = out
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def _sites(model: nn.Module, x, with_streams: bool = True):
    """What the probes record, in forward order: every parameterized weight module
    (kind "layer"), every norm ("norm"), each block of a stack of identical blocks
    (the residual stream after it, "stream") and each ``AttentionScores`` ("logits")."""
    info = model._richness
    order, calls = _trace_order(model, x)
    pos = {n: i for i, n in enumerate(order)}
    mods = dict(model.named_modules())
    role_of = {l["module"]: l["role"] for l in info["layers"]}
    sites = []
    for name in order:
        m = mods[name]
        if name in role_of:
            sites.append({"name": name, "kind": "layer", "role": role_of[name], "module_obj": m})
        elif isinstance(m, AttentionScores):
            sites.append({"name": name, "kind": "logits", "role": "hidden", "module_obj": m})
        elif _is_norm(m) and any(e["module"] == name and e["role"] == "vector" for e in info["params"]):
            sites.append({"name": name, "kind": "norm", "role": "hidden", "module_obj": m})
        elif isinstance(m, nn.MultiheadAttention):
            # Its weights are used inside F.multi_head_attention_forward (no hook fires on
            # them): its output, the attention branch, is recorded instead.
            role = "as built" if info["table"].get("gauge") == "as built" else "hidden"
            sites.append({"name": name, "kind": "attention", "role": role, "module_obj": m})
    if with_streams:
        for name, m in mods.items():
            if isinstance(m, (nn.ModuleList, nn.Sequential)) and len(m) >= 2 and len({type(c) for c in m}) == 1 \
                    and not isinstance(m[0], (nn.Linear, nn.ReLU, nn.GELU, nn.Tanh) + _CONV) \
                    and any(True for _ in m[0].parameters()):
                for i in range(len(m)):
                    cname = _pname(name, str(i))
                    if cname in pos:
                        sites.append({"name": cname, "kind": "stream", "role": "hidden", "module_obj": m[i]})
        sites.sort(key=lambda s: (pos[s["name"]], s["kind"] != "stream"))
    return sites, calls


def _probe_one(model, optimizer, x, y, steps, center, spectral, loss_fn, sites):
    """One probe, as richness's `probe`: measure, take `steps` optimizer steps on the
    batch, measure again. Returns (site index, quantity, value) rows and a divergence."""
    info = model._richness
    gs = {l["module"]: l["multiplier"] for l in info["layers"]}
    gb = {l["module"]: l.get("bias", {}).get("multiplier") for l in info["layers"]}
    rec = _Recorder(sites)
    try:
        f_raw0 = _call(model, x)
        f0 = f_raw0.detach() if center else None
        out = f_raw0 - f0 if center else f_raw0
        loss = loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss_before = loss.item()
        z0 = [o.detach().clone() for o in rec.outputs]
        dz0 = [o.grad.detach().clone() if o.grad is not None else torch.zeros_like(o) for o in rec.outputs]
        in0 = [None if i is None else i.detach().clone() for i in rec.inputs]
        w0 = [s["module_obj"].weight.detach().clone() if s["kind"] == "layer" else None for s in sites]
        b0 = [getattr(s["module_obj"], "bias", None) for s in sites]
        b0 = [None if (b is None or s["kind"] != "layer") else b.detach().clone() for b, s in zip(b0, sites)]
        optimizer.step()
        for _ in range(1, steps):
            o = _call(model, x)
            l2 = loss_fn(o - f0 if center else o, y)
            optimizer.zero_grad(set_to_none=True)
            l2.backward()
            optimizer.step()
        with torch.no_grad():
            f1 = _call(model, x)
            loss_after = float(loss_fn(f1 - f0 if center else f1, y))
            z1 = [o.detach() for o in rec.outputs]
            in1 = [None if i is None else i.detach() for i in rec.inputs]
    finally:
        rec.remove()
    rows: List[Tuple[int, str, float]] = []
    put = lambda layer, q, v: rows.append((layer, q, float(v)))
    put(0, "loss_before", loss_before)
    put(0, "loss_after", loss_after)
    put(0, "loss_decrease", loss_before - loss_after)
    if not math.isfinite(loss_after) or any(not torch.isfinite(z).all() for z in z1):
        return rows, f"non-finite outputs after {steps} step(s) (loss {loss_after})"
    for l, s in enumerate(sites):
        layer = l + 1
        h = z0[l].double()
        dh = z1[l].double() - h
        h_norm, dh_norm = _norm(h), _norm(dh)
        coords = h.numel()
        put(layer, "h_norm", h_norm)
        put(layer, "h_rms", h_norm / math.sqrt(coords))
        put(layer, "dh_norm", dh_norm)
        put(layer, "dh_rms", dh_norm / math.sqrt(coords))
        put(layer, "dh_rel", _ratio(dh_norm, h_norm))
        grad = dz0[l]
        put(layer, "grad_norm", _norm(grad))
        # uuc_total: the useful update with the passthrough; uuc (below, weight layers
        # only): that of the layer's own update g ΔW a, the library's definition
        # (theory.md §2), so a frozen layer's UUC falls with its rate.
        put(layer, "uuc_total", abs(float((grad.double() * dh).sum())))
        if s["kind"] != "layer":
            continue
        m = s["module_obj"]
        a = in0[l]
        # As richness's probe: a_ℓ is layer ℓ's activation, the input of the next layer.
        nxt = l + 1 < len(sites) and sites[l + 1]["kind"] == "layer" and in0[l + 1] is not None
        if nxt and in0[l + 1].dtype.is_floating_point:
            an, dan = in0[l + 1], in1[l + 1] - in0[l + 1]
            put(layer, "a_rms", _norm(an) / math.sqrt(an.numel()))
            put(layer, "da_rel", _ratio(_norm(dan), _norm(an)))
        g = gs[s["name"]]
        w_eff0 = g * w0[l]
        dw = g * (m.weight.detach() - w0[l])
        with torch.no_grad():
            lt_t = _apply_layer(m, a, dw).double()
            lt = _norm(lt_t)
            total = lt_t.clone()
            put(layer, "layer_term", lt)
            put(layer, "uuc", abs(float((grad.double() * lt_t).sum())))
            put(layer, "layer_share", _ratio(lt, dh_norm))
            moving = a.dtype.is_floating_point and bool((in1[l] != a).any())
            w_op = _op(w_eff0) if spectral and not isinstance(m, nn.Embedding) else float("nan")
            if moving:
                dinp = in1[l] - a
                pt_t = _apply_layer(m, dinp, w_eff0).double()
                it_t = _apply_layer(m, dinp, dw).double()
                pt, it = _norm(pt_t), _norm(it_t)
                put(layer, "passthrough_term", pt)
                put(layer, "interaction_term", it)
                put(layer, "interaction_ratio", _ratio(it, lt))
                total = total + pt_t + it_t
                if spectral:
                    put(layer, "align_passthrough", _ratio(pt, w_op * _norm(dinp)))
            if b0[l] is not None:
                db = (gb[s["name"]] or g) * (m.bias.detach() - b0[l])
                axis_last = not isinstance(m, _CONV)
                shape = (-1,) if axis_last else (1, -1) + (1,) * (total.dim() - 2)
                total = total + db.double().view(shape)
            put(layer, "decomp_residual", _ratio(_norm(total - dh), dh_norm))
            w_fro, dw_fro = _norm(w_eff0), _norm(dw)
            put(layer, "W_fro", w_fro)
            put(layer, "dW_fro", dw_fro)
            put(layer, "dW_fro_rel", _ratio(dw_fro, w_fro))
            if spectral and not isinstance(m, nn.Embedding):
                dw_op = _op(dw)
                put(layer, "W_op", w_op)
                put(layer, "dW_op", dw_op)
                put(layer, "dW_op_rel", _ratio(dw_op, w_op))
                put(layer, "align", _ratio(lt, dw_op * _norm(a)))
    yf = y.double() if y.dtype.is_floating_point else None
    put(0, "f_norm", _norm(f_raw0.detach()))
    if yf is not None and tuple(yf.shape) == tuple(f_raw0.shape):
        put(0, "f0_rel", _ratio(_norm(f_raw0.detach()), _norm(yf)))
    put(0, "df_norm", _norm(f1.double() - f_raw0.detach().double()))
    return rows, None


def _scale_of(preset, richness, gamma0, gauge, optimizer="sgd"):
    """The scale arguments of a scan, validated before any model is built (the library's
    one-line errors: unknown preset or gauge, a preset with r, ...)."""
    _resolve([(1, 1, False, False), (1, 1, True, False)], None, preset=preset, richness=richness, gamma0=gamma0,
             gauge=gauge, optimizer="adam" if optimizer in ("adam", "adamw") else "sgd")
    return {"preset": preset, "richness": richness, "gamma0": gamma0, "gauge": gauge}


def _check_builder(make_model):
    if isinstance(make_model, nn.Module) or not callable(make_model):
        raise TypeError(f"make_model must be a function of the width that builds the model (e.g. lambda n: Net(n)), "
                        f"got {type(make_model).__name__}")


def _validate_scan(make_model, widths, seeds, steps, batch, optimizer, dtype, loss, tolerance, lr, bias, momentum=0.0):
    """Every argument of a scan, before any work (one-line errors)."""
    _check_builder(make_model)
    if bias not in ("torch", "fan-in-1"):
        _fail(f"bias must be `torch` or `fan-in-1`, got `{bias}`")
    if isinstance(momentum, bool) or not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
        _fail(f"momentum must be a number in [0, 1), got {momentum!r}")
    for name, v in (("seeds", seeds), ("steps", steps), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            _fail(f"{name} must be a positive integer, got {v!r}")
    try:
        ws = sorted(set(int(w) for w in widths))
    except (TypeError, ValueError):
        _fail(f"widths must be a list of positive integers, got {widths!r}")
    if len(ws) < 2:
        _fail("a scan needs at least two widths")
    if ws[0] < 1:
        _fail("widths must be positive")
    if optimizer not in ("sgd", "adam", "adamw"):
        _fail(f"optimizer must be `sgd`, `adam` or `adamw`, got `{optimizer}`")
    if dtype not in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        _fail(f"dtype must be torch.float32 or torch.float64 (or bfloat16), got {dtype}")
    if dtype == torch.float16:
        _fail("dtype float16: too few exponent bits for one-step changes and no CPU matmuls; use float32 (or bfloat16, with its precision warning)")
    if not (isinstance(tolerance, (int, float)) and tolerance > 0 and math.isfinite(tolerance)):
        _fail(f"tolerance must be a positive number, got {tolerance!r}")
    if not (isinstance(lr, (int, float)) and lr >= 0 and math.isfinite(lr)):
        _fail(f"lr must be a non-negative number, got {lr!r}")
    _loss_fn(loss)
    out = []
    if dtype == torch.bfloat16:
        out.append("bfloat16 has 8 significant bits: a coordinate change below ~0.4% of the coordinate is rounded away, "
                   "so small updates and their slopes are unreliable; measure in float32")
    return ws, out


def _make_opt(model, optimizer, lr, momentum=0.0):
    if optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)


def _quiet(fn, model, opt, warn_list, **kw):
    """``parameterize`` inside a scan: its warnings go once into the report."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn(model, opt, **kw)
    for w in model._richness["warnings"]:
        if w not in warn_list:
            warn_list.append(w)


def _build_at(make_model, w, s, dtype):
    torch.manual_seed(s)
    model = make_model(w)
    if not isinstance(model, nn.Module):
        raise TypeError(f"make_model({w}) returned {type(model).__name__}, not a torch.nn.Module")
    return model.to(dtype)


def _is_chain(info, sites, loss) -> bool:
    """A chain of dense/conv layers, read-in first and read-out last (an MLP or CNN):
    the library's whole check (every layer's prediction, the criteria) applies."""
    layers = [s for s in sites if s["kind"] == "layer"]
    if loss != "mse" or len(layers) != len(sites) or len(layers) < 2:
        return False
    if any(e["role"] == "vector" or e.get("tied") for e in info["params"]):
        return False
    if any(l["type"] == "Embedding" for l in info["layers"]):
        return False
    want = ["read-in"] + ["hidden"] * (len(layers) - 2) + ["read-out"]
    return [s["role"] for s in layers] == want


def _predictions(scale, optimizer, depth, widths, lr, n_in, n_out, center, roles=None):
    """{(quantity, layer): predicted exponent} for an MLP of ``depth`` weight layers,
    from the library (``check``'s predictions). Off the scale under Adam the library
    predicts nothing; then the same calculus is run at the SGD rates that make one
    step of SGD move each layer as Adam does (docs/theory.md §7, "Off the scale")."""
    kind = "adam" if optimizer in ("adam", "adamw") else "sgd"
    param = {k: v for k, v in scale.items() if v is not None}
    param["base_lr"] = float(lr)
    param["center"] = bool(center)
    if roles:
        param["roles"] = roles
    cfg = {"model": {"arch": "mlp", "depth": depth}, "param": param, "optim": {"kind": kind},
           "widths": widths, "seeds": 1, "steps": 1, "batch": 1}
    rep = json.loads(_native.check_judge(json.dumps(cfg), [], [], [], [], [], [], n_in, n_out)[0])
    claims = {(c["quantity"], c["layer"]): c.get("predicted") for c in rep["claims"]}
    note = None
    if kind == "adam" and all(v is None for v in claims.values()):
        claims, note = _adam_off_scale(cfg, rep, depth, n_in, n_out), "Adam off the scale: SGD-equivalent rates (theory.md §7)"
    return claims, note


def _adam_off_scale(cfg, rep, depth, n_in, n_out):
    """Adam's first update of a layer is sign-like: entries of size g·eta whatever the
    gradient's size, where SGD's are g²·eta·|delta|·|a|. So Adam at (a, c) moves the
    layer as SGD at effective rate exponent lam_S = lam_A - delta_coord - a_coord, with
    lam_A = -a - c and delta_coord, a_coord the coordinate exponents of ∂L/∂h and of the
    layer's input at init (rate-independent, from the library's SGD prediction)."""
    layers = rep["parameterization"]["layers"]
    sgd = dict(cfg, optim={"kind": "sgd"})
    srep = json.loads(_native.check_judge(json.dumps(sgd), [], [], [], [], [], [], n_in, n_out)[0])
    sc = {(c["quantity"], c["layer"]): c.get("predicted") for c in srep["claims"]}
    a = [l["a"] for l in layers]
    b = [l["b"] for l in layers]
    c_new = []
    for i in range(depth):
        l = i + 1
        lam_a = -a[i] - layers[i]["c"]
        delta = sc.get(("grad_norm", l))
        if delta is None:
            return {k: None for k in sc}
        delta_coord = delta - (0.5 if l < depth else 0.0)
        a_coord = 0.0 if l == 1 else (sc.get(("h_rms", l - 1)) or 0.0)
        lam_s = lam_a - delta_coord - a_coord
        c_new.append(-lam_s - 2 * a[i])
    param = {"abc": {"a": a, "b": b, "c": c_new}, "base_lr": cfg["param"]["base_lr"], "center": cfg["param"]["center"]}
    eq = dict(cfg, param=param, optim={"kind": "sgd"})
    erep = json.loads(_native.check_judge(json.dumps(eq), [], [], [], [], [], [], n_in, n_out)[0])
    return {(c["quantity"], c["layer"]): c.get("predicted") for c in erep["claims"]}


def _role_layer(role: str) -> int:
    return {"read-in": 1, "hidden": 2, "read-out": 3}[role]


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
    bias: str = "fan-in-1",
    gain: bool = True,
    loss: Union[str, Callable] = "mse",
    init: Optional[Callable[[nn.Module, int, int], None]] = None,
    roles: Optional[Dict[str, str]] = None,
    progress: bool = False,
) -> Dict[str, Any]:
    """``richness check`` for a PyTorch model: for every width in ``widths`` and seed
    0..seeds-1, ``make_model(width)`` is built (after ``torch.manual_seed(seed)``),
    parameterized (roles from the widths), probed on the first ``batch`` examples of
    ``data`` (a richness data spec such as ``"digits"`` or a pair ``(x, y)``; x may be
    integer tokens) over ``steps`` optimizer steps at base rate ``lr`` with ``loss``
    ("mse", "cross_entropy" or a callable), and measured with hooks: ‖h‖, ‖Δh‖,
    ‖Δh‖/‖h‖, ‖Δa‖/‖a‖, ‖Δf‖, ‖∂L/∂h‖, the useful-update product, the layer /
    passthrough / interaction terms, weight norms (spectral ones with ``spectral``),
    for every weighted layer in forward order, and for transformers the residual
    stream after each block and the attention logits (``AttentionScores``).

    A chain of layers (an MLP or CNN, MSE) gets the library's whole report: every
    layer's prediction, the four criteria, estimated r. Any other model gets per-site
    claims with the prediction of its role (read-in, hidden, read-out; streams and
    logits as hidden coordinates, docs/theory.md §9) on the scale, and none off it.

    Returns the report dict (``claims`` with ``fit`` slope and ``ci95``, ``predicted``,
    ``verdict``; ``criteria``, ``estimated_r`` for chains), ``rows`` (columns),
    ``sites`` and ``text``; ``warnings`` (e.g. precision). ``init(model, width, seed)``
    is called after the model is parameterized, to set its weights some other way.
    ``roles`` is passed to ``parameterize`` (overrides, e.g. for custom parameters).
    """
    ws, warn_list = _validate_scan(make_model, widths, seeds, steps, batch, optimizer, dtype, loss, tolerance, lr, bias,
                                   momentum)
    scale = _scale_of(preset, richness, gamma0, gauge, optimizer)
    x, y = _probe_data(data, int(batch), dtype, loss)
    loss_fn = _loss_fn(loss)
    width_dims = find_width_dims(make_model, ws[:2])
    cols = {"width": [], "seed": [], "layer": [], "quantity": [], "value": []}
    diverged, sites, info, has_bias = [], None, None, False
    total, done = len(ws) * int(seeds), 0
    for w in ws:
        for s in range(int(seeds)):
            model = _build_at(make_model, w, s, dtype)
            opt = _make_opt(model, optimizer, lr, momentum)
            _quiet(parameterize, model, opt, warn_list, bias=bias, gain=gain, verbose=False, width_dims=width_dims,
                   roles=roles, **scale)
            if init is not None:
                with torch.no_grad():
                    init(model, w, s)
            if sites is None:
                with torch.no_grad():
                    _check_target(_forward(model, x, "x"), y, loss, loss_fn)
            sites, calls = _sites(model, x)
            info = model._richness
            has_bias = has_bias or any(e["kind"] == "bias" for e in info["params"])
            rows, div = _probe_one(model, opt, x, y, int(steps), center, spectral, loss_fn, sites)
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
    if bias == "torch" and has_bias:
        # Measured (docs/python.md, Biases): the convention moves no slope; say what it does change.
        warn_list.append("bias=\"torch\": hidden and read-out biases train at their layer's rate (fan-in d), n times "
                         "more slowly than the scale's fan-in-1 rule, so their share of each update vanishes like 1/n: "
                         "no predicted exponent changes, but the biases stop learning as the width grows")
    for wmsg in warn_list:
        warnings.warn(f"richness: {wmsg}", stacklevel=2)
    kind = "adam" if optimizer in ("adam", "adamw") else "sgd"
    rows_out = {
        "width": np.asarray(cols["width"], dtype=np.int64),
        "seed": np.asarray(cols["seed"], dtype=np.int64),
        "layer": np.asarray(cols["layer"], dtype=np.int64),
        "quantity": np.asarray(cols["quantity"], dtype=str),
        "value": np.asarray(cols["value"], dtype=np.float64),
    }
    site_list = [{"layer": i + 1, "name": s["name"], "kind": s["kind"], "role": s["role"]} for i, s in enumerate(sites)]
    n_in = int(x[0].numel()) if x.dtype.is_floating_point else 1
    n_out = int(y.shape[1]) if y.dim() == 2 and y.dtype.is_floating_point else 1
    if _is_chain(info, sites, loss) and not (kind == "adam" and info["table"]["gauge"] == "sp"):
        param = {k: v for k, v in scale.items() if v is not None}
        param["base_lr"] = float(lr)
        param["center"] = bool(center)
        cfg = {
            "model": {"arch": "mlp", "depth": len(sites), "activation": "relu", "bias": bool(has_bias)},
            "param": param,
            "optim": {"kind": kind, "momentum": float(momentum)},
            "loss": "mse",
            "dtype": "f64" if dtype == torch.float64 else "f32",
            "data": data if isinstance(data, str) else "arrays",
            "widths": ws,
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
    else:
        out, text = _judge_sites(rows_out, sites, diverged, scale, optimizer, ws, lr, n_in, n_out,
                                 center, tolerance, int(seeds), info)
    if quantities is not None:
        keep = set(quantities)
        out["claims"] = [c for c in out["claims"] if c["quantity"] in keep]
    for c in out["claims"]:
        if 1 <= c["layer"] <= len(site_list):
            c["site"] = site_list[c["layer"] - 1]["name"]
    out["rows"] = rows_out
    out["sites"] = site_list
    out["warnings"] = warn_list
    out["text"] = text + "".join(f"\n# warning: {w}" for w in warn_list)
    return out


# Quantities judged per site outside chains, and the sites they apply to.
_SITE_QUANTITIES = ("h_rms", "dh_rms", "dh_rel", "dh_norm", "grad_norm", "uuc", "uuc_total", "layer_term",
                    "passthrough_term", "dW_fro_rel")


def _judge_sites(rows, sites, diverged, scale, optimizer, widths, lr, n_in, n_out, center, tol, seeds, info):
    from . import fit as _fit

    on_scale = info["table"]["gauge"] != "sp"
    preds, note = _predictions(scale, optimizer, 3, widths, lr, n_in, n_out, center) if on_scale else ({}, None)
    bad = {(w, s) for w, s, _ in diverged}
    claims = []

    def values(layer, q):
        sel = (rows["layer"] == layer) & (rows["quantity"] == q)
        per = []
        for w in widths:
            v = [val for val, ww, ss in zip(rows["value"][sel], rows["width"][sel], rows["seed"][sel])
                 if ww == w and (ww, ss) not in bad and math.isfinite(val) and val > 0]
            per.append(v)
        return per

    def claim(layer, q, role, kind):
        per = values(layer, q)
        if not any(per):
            return
        c = {"quantity": q, "layer": layer, "role": role if layer else "net", "kind": kind}
        ok = [(w, v) for w, v in zip(widths, per) if v]
        try:
            f = _fit.slope([w for w, _ in ok], [v for _, v in ok]) if len(ok) >= 2 else None
        except ValueError:
            f = None
        c["fit"] = f
        p = None
        if layer == 0:
            p = preds.get((q, 0))
        elif role in ("read-in", "hidden", "read-out"):
            ml = _role_layer(role)
            p = preds.get((q, ml))
            if q == "dh_rms" and role == "read-out":
                p = preds.get(("df_norm", 0))
        c["predicted"] = p
        if f is None:
            c["verdict"], c["reason"] = None, "too few widths with a value"
        elif p is None:
            c["verdict"], c["reason"] = None, "no prediction (off the scale on a model that is not a chain of layers)" if not on_scale else "no prediction for this quantity and role"
        else:
            c.update(_fit.verdict(f, p, tol, seeds))
        claims.append(c)

    for q in ("f_norm", "df_norm", "loss_decrease"):
        claim(0, q, "net", "net")
    for i, s in enumerate(sites):
        for q in _SITE_QUANTITIES:
            if s["kind"] != "layer" and q in ("uuc", "layer_term", "passthrough_term", "dW_fro_rel"):
                continue
            claim(i + 1, q, s["role"], s["kind"])
    vs = [c["verdict"] for c in claims if c.get("verdict")]
    order = ["pass", "unclear", "crossover", "fail", "error"]
    verdict = max(vs, key=order.index) if vs else None
    lines = [f"# check (per site): {info['table']['gauge']} gauge, {optimizer}, widths {widths}, {seeds} seeds, tolerance ±{tol}"]
    if note:
        lines.append(f"# predictions: {note}")
    lines.append(f"{'quantity':<18} {'site':<34} {'role':<9} {'slope':>8} {'95% ci':>20} {'pred':>7}  verdict")
    for c in claims:
        site = "net" if c["layer"] == 0 else sites[c["layer"] - 1]["name"] + f" [{c['kind']}]"
        f = c["fit"]
        sl = "-" if f is None else f"{f['slope']:+.3f}"
        ci = "-" if f is None else f"[{f['ci95'][0]:+.3f}, {f['ci95'][1]:+.3f}]"
        pr = "-" if c["predicted"] is None else f"{c['predicted']:+.3f}"
        lines.append(f"{c['quantity']:<18} {site:<34} {c['role']:<9} {sl:>8} {ci:>20} {pr:>7}  {c.get('verdict') or '-'}")
    lines.append(f"verdict: {verdict or 'none'}")
    return {"claims": claims, "criteria": [], "verdict": verdict, "estimated_r": None,
            "diverged": [list(d) for d in diverged], "parameterization": info["table"]}, "\n".join(lines)


def coord_check(
    make_model: Callable[[int], nn.Module],
    widths: Sequence[int],
    data: Union[str, Tuple[Any, Any]] = "digits",
    *,
    steps: int = 3,
    seeds: int = 4,
    lr: float = 0.1,
    preset: Optional[str] = None,
    richness: Optional[float] = None,
    gamma0: float = 1.0,
    gauge: Optional[str] = None,
    optimizer: str = "sgd",
    batch: int = 64,
    dtype: torch.dtype = torch.float32,
    tolerance: float = 0.25,
    bias: str = "fan-in-1",
    gain: bool = True,
    loss: Union[str, Callable] = "mse",
    center: bool = True,
    as_built: bool = False,
    roles: Optional[Dict[str, str]] = None,
) -> Dict[str, Any]:
    """A coordinate check in the spirit of mup's ``get_coord_data``: train each width
    ``steps`` steps on one batch and record, after every step t, the RMS coordinate of
    every site's output (every parameterized layer and norm; the residual stream after
    each block; the attention logits) and of its change since init.

    ``as_built=True`` trains the model as ``make_model`` builds it (PyTorch's init, one
    global rate: the baseline that μP fixes), without parameterizing it. ``roles`` is
    passed to ``parameterize``.

    Returns ``coords`` (columns width, seed, step, layer, module, kind, role, h_rms,
    dh_rms: ``coord_frame`` makes a pandas frame, ``plot_coord`` mup's plot), ``fits``:
    for each site the slope of the seed-mean dh_rms at the last step against width,
    its predicted exponent (the library's one-step prediction for the site's role) and
    the verdict (``richness.fit.verdict``; without a prediction, as built, the verdict
    asks only that the coordinate does not grow: band (-inf, tolerance]), and
    ``verdict`` (the worst), ``warnings``."""
    from . import fit as _fit

    ws, warn_list = _validate_scan(make_model, widths, seeds, steps, batch, optimizer, dtype, loss, tolerance, lr, bias)
    scale = _scale_of(preset, richness, gamma0, gauge, optimizer)
    x, y = _probe_data(data, int(batch), dtype, loss)
    loss_fn = _loss_fn(loss)
    width_dims = None if as_built else find_width_dims(make_model, ws[:2])
    cols = {k: [] for k in ("width", "seed", "step", "layer", "module", "kind", "role", "h_rms", "dh_rms")}
    sites = info = None
    diverged = []
    for w in ws:
        for s in range(int(seeds)):
            model = _build_at(make_model, w, s, dtype)
            _check_model(model)
            opt = _make_opt(model, optimizer, lr)
            if as_built:
                _as_built_info(model)
            else:
                _quiet(parameterize, model, opt, warn_list, bias=bias, gain=gain, verbose=False, width_dims=width_dims,
                       roles=roles, **scale)
            if sites is None:
                with torch.no_grad():
                    _check_target(_forward(model, x, "x"), y, loss, loss_fn)
            sites, _ = _sites(model, x)
            info = model._richness
            rec = _Recorder(sites)
            try:
                h0 = f0 = None
                for t in range(int(steps) + 1):
                    out = _call(model, x)
                    if f0 is None:
                        f0 = out.detach()
                    hs = [o.detach().double().clone() for o in rec.outputs]
                    if h0 is None:
                        h0 = hs
                    for l, h in enumerate(hs):
                        cols["width"].append(w)
                        cols["seed"].append(s)
                        cols["step"].append(t)
                        cols["layer"].append(l + 1)
                        cols["module"].append(sites[l]["name"])
                        cols["kind"].append(sites[l]["kind"])
                        cols["role"].append(sites[l]["role"])
                        cols["h_rms"].append(_norm(h) / math.sqrt(h.numel()))
                        cols["dh_rms"].append(_norm(h - h0[l]) / math.sqrt(h.numel()))
                    if not torch.isfinite(out).all():
                        diverged.append((w, s, t))
                        break
                    if t < int(steps):
                        l_ = loss_fn(out - f0 if center else out, y)
                        opt.zero_grad(set_to_none=True)
                        l_.backward()
                        opt.step()
            finally:
                rec.remove()
            if as_built:
                del model._richness
    for wmsg in warn_list:
        warnings.warn(f"richness: {wmsg}", stacklevel=2)
    coords = {k: np.asarray(v, dtype=str if k in ("module", "kind", "role") else None) for k, v in cols.items()}
    n_in = int(x[0].numel()) if x.dtype.is_floating_point else 1
    n_out = int(y.shape[1]) if y.dim() == 2 and y.dtype.is_floating_point else 1
    chain = _is_chain(info, sites, loss) if not as_built else False
    preds, note = ({}, None)
    if not as_built:
        on_scale = info["table"]["gauge"] != "sp"
        if chain:
            preds, note = _predictions(scale, optimizer, len(sites), ws, lr, n_in, n_out, center)
        elif on_scale:
            preds, note = _predictions(scale, optimizer, 3, ws, lr, n_in, n_out, center)
    fits = []
    # The predictions are one-step exponents: on the scale they hold for the first few
    # steps (judged at the last); off it a blow-up after step 1 changes the dynamics, so
    # they are judged at step 1.
    judge_step = int(steps) if as_built or info["table"]["gauge"] != "sp" else 1
    last = coords["step"] == judge_step
    for l in range(1, len(sites) + 1):
        sel = last & (coords["layer"] == l)
        per_w = [[v for v, ww in zip(coords["dh_rms"][sel], coords["width"][sel]) if ww == w and v > 0 and math.isfinite(v)] for w in ws]
        site = sites[l - 1]
        entry = {"layer": l, "module": site["name"], "kind": site["kind"], "role": site["role"], "step": judge_step}
        ok = [(w, v) for w, v in zip(ws, per_w) if v]
        try:
            f = _fit.slope([w for w, _ in ok], [v for _, v in ok]) if len(ok) >= 2 else None
        except ValueError:
            f = None
        if f is None:
            entry.update(slope=None, ci95=None, predicted=None, verdict="error", reason="no finite positive dh_rms at two widths")
            fits.append(entry)
            continue
        if chain:
            depth = len(sites)
            pred = preds.get(("df_norm", 0)) if l == depth else preds.get(("dh_rms", l))
        elif site["role"] in ("read-in", "hidden", "read-out") and preds:
            pred = preds.get(("df_norm", 0)) if site["role"] == "read-out" else preds.get(("dh_rms", _role_layer(site["role"])))
        else:
            pred = None
        entry.update(slope=f["slope"], ci95=f["ci95"], predicted=pred)
        if pred is not None:
            entry.update(_fit.verdict(f, pred, tolerance, int(seeds)))
        else:
            entry.update(_grows_verdict(f, tolerance, int(seeds)))
        fits.append(entry)
    verdicts = [f.get("verdict") for f in fits if f.get("verdict")]
    order = ["pass", "unclear", "crossover", "fail", "error"]
    verdict = max(verdicts, key=order.index) if verdicts else None
    return {"coords": coords, "fits": fits, "verdict": verdict, "warnings": warn_list, "prediction_note": note,
            "diverged": diverged}


def _grows_verdict(f, tol, seeds):
    """No prediction: the coordinate must not grow (the band (-inf, tol], as
    ``richness coord``)."""
    lo, hi = f["ci95"]
    v = json.loads(_native.judge(float(f["slope"]), (float(lo), float(hi)), (-1e9, 0.0), float(tol), seeds))
    v["reason"] = ("no prediction: judged as 'does not grow' (slope ≤ tolerance); " + v.get("reason", "")).rstrip("; ")
    return v


def _as_built_info(model):
    """A stand-in parameterization record for a model trained as PyTorch builds it, so
    that the probes find its layers (nothing is changed)."""
    recs, mods, hookless = _inventory(model)
    layers = []
    for r in recs:
        if r["layout"] in ("linear", "conv", "embedding") and r["hook"]:
            layers.append({"module": r["module"], "type": r["type"], "role": "as built", "multiplier": 1.0})
    model.__dict__["_richness"] = {"layers": layers, "params": [{"module": r["module"], "role": "vector" if r["layout"] == "vector" else "other", "param": r["param"]} for r in recs],
                                   "table": {"gauge": "as built"}}


def coord_frame(result: Dict[str, Any]):
    """The coordinate check's ``coords`` as a pandas DataFrame (pandas needed), with
    mup's column names too: ``t`` (step) and ``l2`` (RMS coordinate of the change)."""
    import pandas as pd

    df = pd.DataFrame(result["coords"])
    df["t"] = df["step"]
    df["l2"] = df["dh_rms"]
    return df


def plot_coord(result: Dict[str, Any], save_to: Optional[str] = None, y: str = "dh_rms"):
    """mup's ``plot_coord_data`` for a coordinate check: one panel per step, ``y``
    (dh_rms or h_rms, seed mean) against width on log-log axes, one line per site
    (matplotlib needed). Returns the figure; ``save_to`` writes it."""
    import matplotlib

    if save_to is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    c = result["coords"]
    steps = sorted(set(int(t) for t in c["step"]) - ({0} if y == "dh_rms" else set()))
    fig, axes = plt.subplots(1, len(steps), figsize=(4 * len(steps), 3.5), squeeze=False)
    for ax, t in zip(axes[0], steps):
        for l in sorted(set(int(v) for v in c["layer"])):
            sel = (c["step"] == t) & (c["layer"] == l)
            ws = sorted(set(int(w) for w in c["width"][sel]))
            means = [float(np.mean(c[y][sel][c["width"][sel] == w])) for w in ws]
            name = str(c["module"][sel][0]) if sel.any() else str(l)
            ax.plot(ws, means, marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"t={t}")
        ax.set_xlabel("width")
    axes[0][0].set_ylabel(y)
    axes[0][-1].legend(fontsize=6)
    fig.tight_layout()
    if save_to is not None:
        fig.savefig(save_to)
    return fig
