"""``nn.MultiheadAttention`` as three configurable sites.

PyTorch computes a ``MultiheadAttention`` in one call
(``F.multi_head_attention_forward``, or a fused kernel in eval under
``no_grad``) that never calls ``out_proj`` as a module and owns the packed
input projection itself. When such a module or one of its sites holds a
configured slot, the frontend runs this decomposition instead, with three
sites named after the module ``<mha>``:

* ``<mha>.in_proj`` (kind ``linear``): the input projection, packed
  ``in_proj_weight`` (3E, E) or, when the key and value dimensions differ,
  ``q_proj_weight``/``k_proj_weight``/``v_proj_weight``, with
  ``in_proj_bias``: weight, bias, input (query, key and value),
  accumulation and output formats;
* ``<mha>.scaled_dot_product_attention_0`` (kind ``attention``): input (the
  query), multiplier (key and value), approximation (the softmax),
  accumulation and output formats, on ``(B, H, T, D)`` tensors;
* ``<mha>.out_proj`` (the ``Linear`` module): every slot of a Linear.

With no slot configured on a site the decomposition computes what PyTorch's
own unfused path computes (``need_weights=False``: the same ops; with
``need_weights=True`` the query is scaled before ``q @ k^T`` as PyTorch
does). ``static_k`` / ``static_v`` are not supported (``NotImplementedError``).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import _core, _modules, _ops

_MHA_ARGS = (
    "query", "key", "value", "embed_dim_to_check", "num_heads", "in_proj_weight",
    "in_proj_bias", "bias_k", "bias_v", "add_zero_attn", "dropout_p", "out_proj_weight",
    "out_proj_bias", "training", "key_padding_mask", "need_weights", "attn_mask",
    "use_separate_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
    "static_k", "static_v", "average_attn_weights", "is_causal",
)
_DEFAULTS = {
    "training": True, "key_padding_mask": None, "need_weights": True, "attn_mask": None,
    "use_separate_proj_weight": False, "q_proj_weight": None, "k_proj_weight": None,
    "v_proj_weight": None, "static_k": None, "static_v": None,
    "average_attn_weights": True, "is_causal": False,
}

IN_PROJ = "in_proj"
ATTENTION = "scaled_dot_product_attention_0"


def sites(module: torch.nn.MultiheadAttention) -> dict[str, tuple[str, str]]:
    """The decomposition's extra sites of ``module``: suffix -> (class, kind)."""
    return {IN_PROJ: ("Linear", "linear"), ATTENTION: ("scaled_dot_product_attention", "attention")}


def _linear(x, w, b, slots: dict, key: Any, mark: Callable[[str], None]) -> torch.Tensor:
    """``F.linear(x, w, b)`` with a Linear's activation slots (its weight and
    bias are already effective): input, accumulation, output."""
    x = _core.cast(x, slots.get("input_format"), key)
    replace = _modules.replacement("linear", slots)
    y = replace(F.linear, (x, w, b), {}, key) if replace is not None else F.linear(x, w, b)
    y = _core.cast(y, slots.get("output_format"), key)
    for slot in slots:
        mark(slot)
    return y


class Decomposition:
    """Runs ``F.multi_head_attention_forward(*args, **kwargs)`` of the module
    named ``name`` as the three sites above, with ``config`` (site name ->
    slots), randomness ``key`` and ``mark(site, slot)`` telling the audit
    which slots ran; ``capture(site, output)``, when given, receives each
    site's output (for ``dmx_report``)."""

    def __init__(
        self,
        name: str,
        config: dict,
        key: Any,
        mark: Callable[[str, str], None],
        capture: Callable[[str, Any], None] | None = None,
    ):
        self.name = name
        self.config = config
        self.key = key
        self.mark = mark
        self.capture = capture or (lambda site, out: None)

    def _site(self, suffix: str) -> tuple[str, dict]:
        name = f"{self.name}.{suffix}" if self.name else suffix
        return name, self.config.get(name) or {}

    def __call__(self, func: Callable, args: tuple, kwargs: dict, key: Any) -> Any:
        if func is not F.multi_head_attention_forward:
            return NotImplemented
        a = dict(_DEFAULTS)
        a.update(zip(_MHA_ARGS, args))
        a.update(kwargs)
        return self.forward(a)

    def forward(self, a: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        if a["static_k"] is not None or a["static_v"] is not None:
            raise NotImplementedError(
                f"{self.name}: a configured MultiheadAttention does not support static_k/static_v"
            )
        query, key, value = a["query"], a["key"], a["value"]
        heads = a["num_heads"]
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        tgt_len, bsz, embed = query.shape
        head_dim = embed // heads
        attn_mask, kpm = a["attn_mask"], a["key_padding_mask"]
        if kpm is not None and not batched:
            kpm = kpm.unsqueeze(0)
        kpm = F._canonical_mask(
            mask=kpm, mask_name="key_padding_mask", other_type=F._none_or_dtype(attn_mask),
            other_name="attn_mask", target_type=query.dtype,
        )
        is_causal = a["is_causal"]
        need_weights = a["need_weights"]
        if is_causal and kpm is None and not need_weights:
            attn_mask = None
        else:
            attn_mask = F._canonical_mask(
                mask=attn_mask, mask_name="attn_mask", other_type=None, other_name="",
                target_type=query.dtype, check_other=False,
            )
            if kpm is not None:
                is_causal = False
        q, k, v = self._in_projection(query, key, value, a)
        if attn_mask is not None and attn_mask.dim() == 2:
            attn_mask = attn_mask.unsqueeze(0)
        if a["bias_k"] is not None and a["bias_v"] is not None:
            k = torch.cat([k, a["bias_k"].repeat(1, bsz, 1)])
            v = torch.cat([v, a["bias_v"].repeat(1, bsz, 1)])
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            kpm = None if kpm is None else F.pad(kpm, (0, 1))
        q = q.reshape(tgt_len, bsz * heads, head_dim).transpose(0, 1)
        k = k.reshape(k.shape[0], bsz * heads, head_dim).transpose(0, 1)
        v = v.reshape(v.shape[0], bsz * heads, head_dim).transpose(0, 1)
        if a["add_zero_attn"]:
            zeros = torch.zeros((bsz * heads, 1, head_dim), dtype=k.dtype, device=k.device)
            k, v = torch.cat([k, zeros], dim=1), torch.cat([v, zeros], dim=1)
            attn_mask = None if attn_mask is None else F.pad(attn_mask, (0, 1))
            kpm = None if kpm is None else F.pad(kpm, (0, 1))
        src_len = k.size(1)
        if kpm is not None:
            kpm = kpm.view(bsz, 1, 1, src_len).expand(-1, heads, -1, -1).reshape(bsz * heads, 1, src_len)
            attn_mask = kpm if attn_mask is None else attn_mask + kpm
        dropout_p = a["dropout_p"] if a["training"] else 0.0
        q4 = q.reshape(bsz, heads, tgt_len, head_dim)
        k4 = k.reshape(bsz, heads, src_len, head_dim)
        v4 = v.reshape(bsz, heads, src_len, head_dim)
        mask4 = None
        if attn_mask is not None:
            mask4 = attn_mask.unsqueeze(0) if attn_mask.size(0) == 1 else attn_mask.view(bsz, heads, -1, src_len)
        out, weights = self._attention(q4, k4, v4, mask4, dropout_p, is_causal, need_weights)
        self.capture(self._site(ATTENTION)[0], out)
        out = out.permute(2, 0, 1, 3).reshape(bsz * tgt_len, embed)
        name, slots = self._site("out_proj")
        out = _linear(out, a["out_proj_weight"], a["out_proj_bias"], slots, self.key,
                      lambda s: self.mark(name, s))
        self.capture(name, out)
        out = out.view(tgt_len, bsz, out.size(1))
        if weights is not None:
            weights = weights.view(bsz, heads, tgt_len, src_len)
            if a["average_attn_weights"]:
                weights = weights.mean(dim=1)
            if not batched:
                weights = weights.squeeze(0)
        if not batched:
            out = out.squeeze(1)
        return out, weights

    def _in_projection(self, query, key, value, a: dict):
        name, slots = self._site(IN_PROJ)
        mark = lambda s: self.mark(name, s)  # noqa: E731
        b = a["in_proj_bias"]
        if a["use_separate_proj_weight"]:
            ws = (a["q_proj_weight"], a["k_proj_weight"], a["v_proj_weight"])
            bs = (None, None, None) if b is None else b.chunk(3)
            return tuple(_linear(x, wi, bi, slots, self.key, mark) for x, wi, bi in zip((query, key, value), ws, bs))
        w = a["in_proj_weight"]
        embed = query.size(-1)
        if query is key and key is value:
            proj = _linear(query, w, b, slots, self.key, mark)
            self.capture(name, proj)
            proj = proj.unflatten(-1, (3, embed)).unsqueeze(0).transpose(0, -2).squeeze(-2).contiguous()
            return proj[0], proj[1], proj[2]
        ws = w.chunk(3)
        bs = (None, None, None) if b is None else b.chunk(3)
        return tuple(_linear(x, wi, bi, slots, self.key, mark) for x, wi, bi in zip((query, key, value), ws, bs))

    def _attention(self, q, k, v, mask, dropout_p: float, is_causal: bool, need_weights: bool):
        name, slots = self._site(ATTENTION)
        for slot in slots:
            self.mark(name, slot)
        if not need_weights:
            kwargs = {"attn_mask": mask, "dropout_p": dropout_p, "is_causal": is_causal}
            out = _ops.apply("scaled_dot_product_attention", F.scaled_dot_product_attention,
                             (q, k, v), kwargs, slots, self.key)
            return out, None
        key = self.key
        q = _core.cast(q, slots.get("input_format"), key)
        mul = slots.get("multiplier_format")
        k, v = _core.cast(k, mul, key), _core.cast(v, mul, key)
        accum = slots.get("accum_format")
        scores = torch.matmul(q * math.sqrt(1.0 / float(q.shape[-1])), k.transpose(-2, -1))
        scores = _core.cast(scores, accum, key)
        if mask is not None:
            scores = scores + mask
        approx = slots.get("approximation_function")
        if _core.is_none_logic(approx):
            probs = torch.softmax(scores, dim=-1)
        else:
            probs = _core.approximate(scores, approx, axis=-1)
        if dropout_p > 0.0:
            probs = F.dropout(probs, p=dropout_p)
        out = _core.cast(torch.matmul(probs, v), accum, key)
        return _core.cast(out, slots.get("output_format"), key), probs
