"""A nanoGPT-shaped GPT written for the tests (not imported from nanoGPT): token and
position nn.Embedding, pre-LN blocks with nanoGPT's own LayerNorm class (optional
bias), a fused c_attn, attention by hand (torch 1.13 has no scaled_dot_product_attention)
through ``rt.AttentionScores`` or with PyTorch's 1/sqrt(d_h), GELU MLP, lm_head tied to
the token embedding or not."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

import richness.torch as rt

HEAD_DIM, BLOCKS, CONTEXT, VOCAB = 16, 2, 16, 32


class LayerNorm(nn.Module):
    """nanoGPT's LayerNorm with an optional bias."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, n, bias, scores):
        super().__init__()
        self.c_attn = nn.Linear(n, 3 * n, bias=bias)
        self.c_proj = nn.Linear(n, n, bias=bias)
        self.n_head = n // HEAD_DIM
        self.scores = rt.AttentionScores(HEAD_DIM) if scores else None
        self.register_buffer("mask", torch.tril(torch.ones(CONTEXT, CONTEXT)).view(1, 1, CONTEXT, CONTEXT))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, HEAD_DIM).transpose(1, 2) for t in (q, k, v))
        if self.scores is not None:
            att = self.scores(q, k)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(HEAD_DIM))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, n, bias):
        super().__init__()
        self.c_fc = nn.Linear(n, 4 * n, bias=bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * n, n, bias=bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n, bias, scores):
        super().__init__()
        self.ln_1 = LayerNorm(n, bias)
        self.attn = CausalSelfAttention(n, bias, scores)
        self.ln_2 = LayerNorm(n, bias)
        self.mlp = MLP(n, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, n, bias=False, tie=False, scores=True, nanogpt_init=False):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(VOCAB, n),
            wpe=nn.Embedding(CONTEXT, n),
            h=nn.ModuleList([Block(n, bias, scores) for _ in range(BLOCKS)]),
            ln_f=LayerNorm(n, bias),
        ))
        self.lm_head = nn.Linear(n, VOCAB, bias=False)
        if tie:
            self.transformer.wte.weight = self.lm_head.weight
        if nanogpt_init:  # nanoGPT's own: N(0, 0.02), residual projections 0.02/sqrt(2B)
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    std = 0.02 / math.sqrt(2 * BLOCKS) if name.endswith("c_proj.weight") else 0.02
                    torch.nn.init.normal_(p, 0.0, std)
                elif name.endswith("bias"):
                    torch.nn.init.zeros_(p)

    def forward(self, idx):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def tokens(batch=8, seed=0):
    """A batch of random token sequences and their next tokens (x, y: [batch, CONTEXT])."""
    g = torch.Generator().manual_seed(seed)
    seq = torch.randint(0, VOCAB, (batch, CONTEXT + 1), generator=g)
    return seq[:, :-1], seq[:, 1:]
