"""DTensor inputs of ``cast``, ``sparsify`` and ``approximate`` (``torch.distributed``).

A ``torch.distributed.tensor.DTensor`` is one global tensor cut into shards
over a device mesh. The core operations are defined on the global tensor;
:func:`run` computes one on a layout of the shards where it is
*shard-local*, so that the result equals, bit for bit, the operation on
``x.full_tensor()`` distributed back to ``x``'s placements.

An operation states what it needs as a :class:`Layout`:

* ``whole``: the tensor dims each rank must hold whole, because the
  operation reduces along them (a softmax axis, a norm's normalized dims);
  ``None`` for every dim (TOPK ranks globally, ``NVFP4(T)``'s tensor amax);
* ``block = (axis, size)``: each element depends on its block of ``size``
  along ``axis`` (blocked formats, N:M groups). The axis stays sharded when
  every shard starts on a block boundary (each shard's extent a multiple of
  ``size``; the last one may hold the partial final block); otherwise it is
  gathered.

The working placements are the input's with every ``Partial`` reduced to
``Replicate`` (an all-reduce: the operation of a sum is not the sum of the
operations) and every ``Shard`` the layout needs whole (or any sharding
other than a plain ``Shard``) made ``Replicate`` (an all-gather), which
emits :class:`~dmxnum.errors.DistributedWarning` once per operation, shape
and placements. Companion arrays of the global shape (random words,
scores, static scales), given as DTensors or as full arrays, are laid out
the same way. The result has the input's placements, ``Partial`` ones
becoming ``Replicate``. Gradients flow through the DTensor redistributions
(PyTorch autograd).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from . import _backend as B
from .errors import DistributedError, DistributedWarning

Array = Any
is_dtensor = B.is_dtensor

#: (operation, global shape, placements) already warned about
_WARNED: set[tuple] = set()


@dataclass(frozen=True)
class Layout:
    """What an operation needs of the shards (see the module docstring).

    ``whole``: tensor dims held whole on every rank (``None``: all of them);
    ``block``: ``(axis, size)`` of a blocked operation; ``reason``: why the
    dims in ``whole`` are needed, for the warning.
    """

    whole: frozenset[int] | None = frozenset()
    block: tuple[int, int] | None = None
    reason: str = ""


#: an element-wise operation: runs on any shards
ELEMENTWISE = Layout()


def run(x: Any, fn: Callable[..., Array], layout: Layout, what: str, companions: Sequence[Any] = ()) -> Any:
    """``fn(local, *local_companions)`` on the shards of the DTensor ``x``, as a DTensor.

    ``fn`` computes the operation on a plain tensor; ``companions`` are
    ``None``, DTensors or full arrays of ``x``'s global shape (or shapes that
    broadcast to it), each handed to ``fn`` as the part matching the local
    shard. ``what`` names the operation in the warning. The result has
    ``x``'s mesh and placements (``Partial`` as ``Replicate``) and equals
    ``fn`` applied to the full tensor and the full companions, re-sharded.
    """
    import torch.distributed.tensor as dt

    mesh = x.device_mesh
    target, gathered, why = _working_placements(x, layout)
    if gathered:
        _warn_once(what, x, gathered, why)
    work = x if target == tuple(x.placements) else x.redistribute(mesh, target)
    parts = [_localize(c, x, target) for c in companions]
    out = fn(work.to_local(), *parts).contiguous()
    y = dt.DTensor.from_local(out, mesh, target, run_check=False, shape=x.shape, stride=_strides(tuple(x.shape)))
    final = tuple(dt.Replicate() if p.is_partial() else p for p in x.placements)
    return y if final == target else y.redistribute(mesh, final)


def global_words(x: Any, key: Any, random_bits: Any) -> Any:
    """The random words of ``x``'s global shape: ``random_bits`` (a DTensor, or
    any array of the global shape, checked) or drawn from ``key`` for the
    global shape on the local device, so that the result equals a
    single-process run with the same key (every rank must hold the same
    key: an int seed, or generators in the same state)."""
    shape = tuple(x.shape)
    if random_bits is None:
        return B.random_words(key, shape, x.to_local())
    if is_dtensor(random_bits):
        B.check_words(random_bits, shape)
        return random_bits
    words = B.convert_like(random_bits, x.to_local())
    B.check_words(words, shape)
    return words


def full(a: Any) -> Any:
    """``a.full_tensor()`` for a DTensor ``a``; anything else unchanged."""
    return a.full_tensor() if is_dtensor(a) else a


def global_like(x: Any) -> Any:
    """A zero-stride float32 tensor of ``x``'s global shape on the local device
    (no memory): something to check a companion's shape and device against."""
    import torch

    return torch.zeros((), dtype=torch.float32, device=x.to_local().device).expand(tuple(x.shape))


# ----------------------------------------------------------------------------- placements
def _working_placements(x: Any, layout: Layout) -> tuple[tuple, tuple[int, ...], str]:
    """The placements ``fn`` runs on, the tensor dims gathered for it, and why."""
    from torch.distributed.tensor import Replicate, Shard

    ndim, mesh = x.ndim, x.device_mesh
    whole = set(range(ndim)) if layout.whole is None else set(layout.whole)
    reasons = [layout.reason or f"it reduces along dim(s) {sorted(whole)}"] if whole else []
    if layout.block is not None:
        axis, size = layout.block
        splits = [mesh.size(i) for i, p in enumerate(x.placements) if _is_plain_shard(p) and p.dim % ndim == axis]
        starts = _shard_starts(int(x.shape[axis]), splits)
        if any(s % size for s in starts):
            whole.add(axis)
            reasons.append(
                f"its shards along block axis {axis} (length {int(x.shape[axis])}) start at {starts}, "
                f"not all multiples of the block size {size}"
            )
    target, gathered = [], set()
    for p in x.placements:
        if p.is_partial():
            target.append(Replicate())
        elif p.is_replicate():
            target.append(p)
        elif isinstance(p, Shard):
            dim = p.dim % ndim
            if _is_plain_shard(p) and dim not in whole:
                target.append(p)
            else:
                target.append(Replicate())
                gathered.add(dim)
                if not _is_plain_shard(p):
                    reasons.append(f"{p} is not a plain Shard")
        else:
            raise DistributedError(
                f"unsupported DTensor placement {p!r} in {tuple(x.placements)}; valid: Shard, Replicate, Partial"
            )
    return tuple(target), tuple(sorted(gathered)), "; ".join(reasons)


def _is_plain_shard(p: Any) -> bool:
    from torch.distributed.tensor import Shard

    return type(p) is Shard


def _shard_starts(length: int, splits: Sequence[int]) -> list[int]:
    """Sorted start offsets of the non-empty shards of a dim of ``length`` split
    ``splits[0]`` ways, each part then ``splits[1]`` ways, ... (``torch.chunk``
    sizes: ``ceil(n / k)`` per part, the last ones shorter or empty)."""
    spans = [(0, length)]
    for k in splits:
        parts = []
        for o, n in spans:
            c = -(-n // k)
            parts += [(o + min(j * c, n), min((j + 1) * c, n) - min(j * c, n)) for j in range(k)]
        spans = parts
    return sorted({o for o, n in spans if n})


def _local_spans(shape: tuple[int, ...], mesh: Any, placements: tuple) -> list[tuple[int, int]]:
    """``(start, length)`` per dim of this rank's shard of a tensor of ``shape``."""
    coord = mesh.get_coordinate()
    if coord is None:
        raise DistributedError(f"this rank is not part of the device mesh {mesh}; valid: a rank of the mesh")
    spans = [(0, int(n)) for n in shape]
    for i, p in enumerate(placements):
        if p.is_shard():
            dim = p.dim % len(shape)
            o, n = spans[dim]
            c = -(-n // mesh.size(i))
            s = min(coord[i] * c, n)
            spans[dim] = (o + s, min(s + c, n) - s)
    return spans


def _localize(a: Any, x: Any, target: tuple) -> Any:
    """The part of companion ``a`` (DTensor or full array) matching ``x``'s shard on ``target``."""
    if a is None:
        return None
    mesh = x.device_mesh
    if is_dtensor(a):
        if a.device_mesh != mesh:
            raise DistributedError(
                f"a DTensor argument lives on mesh {a.device_mesh}, but the input on {mesh}; valid: the same mesh"
            )
        if tuple(a.shape) != tuple(x.shape):
            a = a.full_tensor()  # a broadcasting companion (a static scale): sliced below
        else:
            return _as_int32(a).redistribute(mesh, target).to_local()
    shape = tuple(x.shape)
    spans = _local_spans(shape, mesh, target)
    lead = len(shape) - a.ndim
    index = tuple(
        slice(spans[lead + j][0], sum(spans[lead + j])) if int(n) == shape[lead + j] else slice(None)
        for j, n in enumerate(a.shape)
    )
    return a[index]


def _as_int32(a: Any) -> Any:
    """A uint32 DTensor reinterpreted as int32 (collectives do not all take uint32)."""
    import torch
    import torch.distributed.tensor as dt

    if a.dtype != torch.uint32:
        return a
    local = a.to_local().view(torch.int32)
    return dt.DTensor.from_local(local, a.device_mesh, a.placements, run_check=False, shape=a.shape, stride=a.stride())


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, step = [], 1
    for n in reversed(shape):
        out.append(step)
        step *= max(int(n), 1)
    return tuple(reversed(out))


def _warn_once(what: str, x: Any, gathered: tuple[int, ...], why: str) -> None:
    key = (what, tuple(x.shape), tuple(x.placements))
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(
        f"{what} on a DTensor of shape {tuple(x.shape)} with placements {tuple(x.placements)} cannot run "
        f"shard-locally: {why}. Gathering tensor dim(s) {list(gathered)} (an all-gather per call, and each rank "
        "holds those dims whole), computing, then re-sharding; the result is exact. To stay shard-local, shard "
        "another dim, or give every shard along a block axis a multiple of the block size.",
        DistributedWarning,
        stacklevel=5,
    )


__all__ = ["Layout", "ELEMENTWISE", "run", "global_words", "full", "global_like", "is_dtensor"]
