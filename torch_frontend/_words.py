"""Random words for the stochastic slots of one wrapped forward.

A ``torch.Generator`` cannot enter a compiled graph, so the wrapper draws
one 64-bit seed per forward from the model's generator, outside any compiled
region, and passes it in as a tensor. Inside, every stochastic cast (or
Bernoulli mask) takes one 32-bit word per element from a counter-based hash
of ``(seed, site, element index)``, where ``site`` counts the stochastic
casts of the forward in execution order. The words are plain integer tensor
ops, so eager, ``torch.compile`` and ``torch.export`` runs draw the same
words, and a seed reproduces a forward exactly.

The hash is Wellons' ``lowbias32`` finaliser (two xor-shift-multiply
rounds), applied twice; every product is split so that it stays below 2^63
in int64 arithmetic.
"""

from __future__ import annotations

import torch

_M32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9


def _mul32(v: torch.Tensor, c: int) -> torch.Tensor:
    """``(v * c) mod 2^32`` for int64 ``v`` in [0, 2^32) without overflow."""
    lo = v * (c & 0xFFFF)
    hi = ((v * (c >> 16)) & 0xFFFF) << 16
    return (lo + hi) & _M32


def _mix(v: torch.Tensor) -> torch.Tensor:
    v = v ^ (v >> 16)
    v = _mul32(v, 0x7FEB352D)
    v = v ^ (v >> 15)
    v = _mul32(v, 0x846CA68B)
    return v ^ (v >> 16)


def draw_seed(generator: torch.Generator | None) -> torch.Tensor:
    """Two 32-bit seed halves (int64 tensor of shape (2,)) from ``generator``."""
    return torch.randint(0, 2**32, (2,), generator=generator, dtype=torch.int64)


def hash_words(seed: torch.Tensor, site: int, shape: tuple, device: torch.device) -> torch.Tensor:
    """int32 words (the uint32 bits) for ``shape``: ``mix(mix(i ^ s0) + s1 + site * phi)``."""
    n = 1
    for d in shape:
        n *= d
    seed = seed.to(device)
    index = torch.arange(n, dtype=torch.int64, device=device).reshape(shape)
    v = _mix((index ^ seed[0]) & _M32)
    v = _mix((v + seed[1] + (site * _GOLDEN) % 2**32) & _M32)
    return (v ^ 0x80000000).sub(0x80000000).to(torch.int32)


class Words:
    """The word source of one forward: ``words(x)`` gives ``x``'s words and
    advances the site counter (which starts at ``first_site``)."""

    def __init__(self, seed: torch.Tensor, first_site: int = 0):
        self.seed = seed
        self.site = first_site

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        site = self.site
        self.site += 1
        return hash_words(self.seed, site, tuple(x.shape), x.device)
