"""Kernel paths: named, listed per family, chosen once per cast, forceable.

A *path* is one way to compute a family's cast. Each family module
(:mod:`.families`) declares its paths in selection order, most specific
first, ending with the exact integer path that applies everywhere. A path
says from the format and the context alone whether it applies (``applies``
returns ``None``, or the reason it does not); the first that applies runs.
A *guarded* path (``"bfp.float|integer"``) checks the data at run time and
picks one of its two branches itself; it is chosen, listed and forced as a
whole.

The context :class:`Ctx` (backend, compiled or eager) is computed once per
cast. Family kernels receive it and read its capabilities (``eager``,
``ieee``, ``block_max``) rather than asking which backend they run on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

from .. import _backend as B

Array = Any
BACKENDS = ("numpy", "jax", "torch")


@dataclass(frozen=True)
class Ctx:
    """Where a cast runs: ``backend`` and whether it is ``compiled`` (traced)."""

    backend: str
    compiled: bool

    @staticmethod
    def of(x: Array) -> "Ctx":
        """The context of a cast of ``x`` (JAX casts are always traced)."""
        name = B.backend_name(x)
        return Ctx(name, name == "jax" or B.is_tracing(x))

    @property
    def eager(self) -> bool:
        """Values can be looked at from Python (NumPy, eager PyTorch): data-dependent shortcuts allowed."""
        return not self.compiled

    @property
    def ieee(self) -> bool:
        """Float32 arithmetic is IEEE as written: subnormals kept, no FMA, ``a / b``
        a division. False under XLA on CPU (SPEC section 2)."""
        return self.backend != "jax"

    @property
    def block_max(self) -> str:
        """How per-block maxima along the last axis are cheapest: ``"float"`` (a
        float max of ``|x|``: inductor vectorizes it, not one over bit-cast
        values), ``"tree"`` (strided maxima: XLA runs them about three times
        faster than its reduction over a short minor axis) or ``"bits"``."""
        if self.backend == "torch" and self.compiled:
            return "float"
        return "tree" if self.backend == "jax" else "bits"


#: run(xp, x, fmt, words, ctx) -> float32 result
Runner = Callable[[Any, Array, Any, "Array | None", Ctx], Array]


@dataclass(frozen=True)
class Path:
    """A named kernel path of one family.

    ``when`` says in words when it applies; ``applies(fmt, ctx)`` returns
    ``None`` when it does, else the reason it does not; ``run`` computes the
    cast. ``words``: ``"top24"`` (the int32 ``r >> 8``) or ``"raw"`` (JAX
    uint32 words converted inside each branch of a guarded path).
    """

    name: str
    when: str
    applies: Callable[[Any, Ctx], "str | None"]
    run: Runner
    words: str = "top24"


class PathInfo(NamedTuple):
    """One row of :func:`dmxnum.kernel_paths`."""

    name: str
    applies: bool
    reason: str


def always(fmt: Any, ctx: Ctx) -> None:
    """``applies`` of a path that applies everywhere."""
    return None


def all_of(*checks: Callable[[Any, Ctx], "str | None"]) -> Callable[[Any, Ctx], "str | None"]:
    """An ``applies`` that holds when every check holds (the first failing reason)."""

    def applies(fmt: Any, ctx: Ctx) -> str | None:
        for check in checks:
            reason = check(fmt, ctx)
            if reason is not None:
                return reason
        return None

    return applies


def eager_only(fmt: Any, ctx: Ctx) -> str | None:
    """Applies in eager NumPy and PyTorch only."""
    return None if ctx.eager else "needs eager NumPy or PyTorch (it looks at the data from Python)"


def ieee_only(fmt: Any, ctx: Ctx) -> str | None:
    """Applies where float32 arithmetic is IEEE (not under XLA)."""
    return None if ctx.ieee else "XLA reads float32 subnormals as zero (SPEC section 2)"


def xla_only(fmt: Any, ctx: Ctx) -> str | None:
    """Applies under XLA only (JAX's guarded paths)."""
    return None if not ctx.ieee else "a guard for XLA's float arithmetic; IEEE backends take the unguarded path"


def float_rounding(fmt: Any, ctx: Ctx) -> str | None:
    """The float paths of XP and BFP round by ``N``, ``Z`` or ``S`` only."""
    return None if fmt.rounding in ("N", "Z", "S") else f"rounding {fmt.rounding} (float paths round by N, Z or S)"


def derived(prefix: str, paths: tuple[Path, ...], convert: Callable[[Any], Any]) -> tuple[Path, ...]:
    """Another family's ``paths`` renamed ``prefix.*``, applied to ``convert(fmt)``
    (MXINT casts exactly as a BFP format)."""

    def wrap(path: Path) -> Path:
        suffix = path.name.split(".", 1)[1]
        return Path(
            f"{prefix}.{suffix}", path.when,
            lambda fmt, ctx: path.applies(convert(fmt), ctx),
            lambda xp, x, fmt, words, ctx: path.run(xp, x, convert(fmt), words, ctx),
            path.words,
        )

    return tuple(wrap(p) for p in paths)


def check_backend(backend: str) -> None:
    """Raise ``ValueError`` unless ``backend`` names a supported backend."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
