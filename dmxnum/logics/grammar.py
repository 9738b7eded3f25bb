"""Logic values and their shorthand grammar (SPEC section 5).

A logic is a small frozen value naming an operation (``SOFTMAX``, ``GELU``,
``LAYERNORM``, ``SILU``, ``RMSNORM``, ``EXP``, ``RECIP``, ``RSQRT`` or ``NONE``), its algorithm and
the number format ``NF`` its arithmetic is rounded to. ``str(logic)`` prints
the canonical shorthand and ``parse_logic(str(logic)) == logic``.

Grammar (spaces ignored, operation and algorithm names case-insensitive)::

    NONE
    SOFTMAX(poly2|base2, int|float32|float16|bfloat16)
    SOFTMAX(base2quake3, float16)
    GELU(poly2, float16)
    LAYERNORM(fallback, NORM, float16)          NORM an integer 0..15
    LAYERNORM(legacy, _, float32|float16|bfloat16)
    LAYERNORM(quake3, _, float16|float32)
    SILU(poly2|base2, int|float32|float16|bfloat16)
    SILU(base2quake3, float16)
    RMSNORM(fallback, NORM, float16)            NORM an integer 0..15
    RMSNORM(legacy, float32|float16|bfloat16)
    RMSNORM(quake3, float16|float32)
    EXP(poly2|base2, int|float32|float16|bfloat16)
    RECIP(quake3, float16)
    RSQRT(quake3, float16|float32)
    SOFTMAX(ibert)  GELU(ibert)  LAYERNORM(ibert)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ShorthandError

#: number formats of the float/int arithmetic, in canonical spelling
NFS = ("int", "float32", "float16", "bfloat16")
_ALL_NF = NFS

#: operation -> algorithm -> accepted NFs (None: the algorithm takes no NF)
ALGORITHMS: dict[str, dict[str, tuple[str, ...] | None]] = {
    "SOFTMAX": {"poly2": _ALL_NF, "base2": _ALL_NF, "base2quake3": ("float16",), "ibert": None},
    "GELU": {"poly2": ("float16",), "ibert": None},
    "LAYERNORM": {
        "fallback": ("float16",),
        "legacy": ("float32", "float16", "bfloat16"),
        "quake3": ("float16", "float32"),
        "ibert": None,
    },
    "EXP": {"poly2": _ALL_NF, "base2": _ALL_NF},
    "RECIP": {"quake3": ("float16",)},
    "RSQRT": {"quake3": ("float16", "float32")},
    "SILU": {"poly2": _ALL_NF, "base2": _ALL_NF, "base2quake3": ("float16",)},
    "RMSNORM": {
        "fallback": ("float16",),
        "legacy": ("float32", "float16", "bfloat16"),
        "quake3": ("float16", "float32"),
    },
}


def all_specs() -> list[str]:
    """Every logic shorthand the grammar accepts, one per (operation, algorithm,
    NF); the fallback layer norm with NORM 0 and 3, the fallback RMS norm with
    NORM 0 and 8."""
    out = []
    for op, algos in ALGORITHMS.items():
        for alg, nfs in algos.items():
            if nfs is None:
                out.append(f"{op}({alg})")
            elif op == "RMSNORM" and alg == "fallback":
                out += [f"RMSNORM(fallback,{norm},{nf})" for nf in nfs for norm in (0, 8)]
            elif op == "LAYERNORM":
                for nf in nfs:
                    if alg == "fallback":
                        out += [f"LAYERNORM(fallback,0,{nf})", f"LAYERNORM(fallback,3,{nf})"]
                    else:
                        out.append(f"LAYERNORM({alg},_,{nf})")
            else:
                out.extend(f"{op}({alg},{nf})" for nf in nfs)
    return out

#: the NORM of LAYERNORM / RMSNORM(fallback, NORM, float16): 2^NORM must be a float16 number
NORM_RANGE = (0, 15)

_GRAMMAR = (
    "NONE | SOFTMAX(poly2|base2,int|float32|float16|bfloat16) | SOFTMAX(base2quake3,float16) | "
    "GELU(poly2,float16) | LAYERNORM(fallback,NORM,float16) | LAYERNORM(legacy,_,float32|float16|bfloat16) | "
    "LAYERNORM(quake3,_,float16|float32) | SILU(poly2|base2,int|float32|float16|bfloat16) | "
    "SILU(base2quake3,float16) | RMSNORM(fallback,NORM,float16) | RMSNORM(legacy,float32|float16|bfloat16) | "
    "RMSNORM(quake3,float16|float32) | EXP(poly2|base2,NF) | RECIP(quake3,float16) | "
    "RSQRT(quake3,float16|float32) | SOFTMAX(ibert) | GELU(ibert) | LAYERNORM(ibert)"
)


@dataclass(frozen=True)
class Logic:
    """One approximation: ``op`` (``"SOFTMAX"``, ...), ``algorithm``, ``nf`` and, for
    ``LAYERNORM(fallback, NORM, float16)`` and ``RMSNORM(fallback, NORM, float16)``, ``norm``.

    ``nf`` is ``None`` for the I-BERT algorithms and for ``NONE``; ``norm`` is
    ``None`` except for the fallback layer and RMS norms. Construction validates the
    combination and raises :class:`~dmxnum.errors.ShorthandError` listing the
    valid choices. Calling the value applies it: ``logic(x, **args)`` is
    ``dmxnum.approximate(x, logic, **args)``.
    """

    op: str
    algorithm: str | None = None
    nf: str | None = None
    norm: int | None = None

    def __post_init__(self) -> None:
        _validate(self.op, self.algorithm, self.nf, self.norm, text=None)

    def __str__(self) -> str:
        if self.op == "NONE":
            return "NONE"
        if self.nf is None:
            return f"{self.op}({self.algorithm})"
        if self.op == "LAYERNORM":
            middle = "_" if self.norm is None else str(self.norm)
            return f"LAYERNORM({self.algorithm},{middle},{self.nf})"
        if self.norm is not None:
            return f"{self.op}({self.algorithm},{self.norm},{self.nf})"
        return f"{self.op}({self.algorithm},{self.nf})"

    def __call__(self, x: Any, **args: Any) -> Any:
        """Apply this logic to ``x``; same as ``dmxnum.approximate(x, self, **args)``."""
        from .api import approximate

        return approximate(x, self, **args)



def _fail(text: str | None, message: str) -> None:
    quoted = f"logic {text!r}: " if text is not None else "logic: "
    raise ShorthandError(f"{quoted}{message}; grammar: {_GRAMMAR}")


def _validate(op: str, algorithm: str | None, nf: str | None, norm: int | None, text: str | None) -> None:
    if op == "NONE":
        if algorithm is not None or nf is not None or norm is not None:
            _fail(text, "NONE takes no arguments")
        return
    if op not in ALGORITHMS:
        _fail(text, f"unknown operation {op!r}; valid: NONE, {', '.join(ALGORITHMS)}")
    algos = ALGORITHMS[op]
    if algorithm not in algos:
        _fail(text, f"unknown {op} algorithm {algorithm!r}; valid: {', '.join(algos)}")
    accepted = algos[algorithm]
    if accepted is None:
        if nf is not None or norm is not None:
            _fail(text, f"{op}({algorithm}) takes no number format; write {op}({algorithm})")
        return
    if nf not in accepted:
        _fail(text, f"number format {nf!r} is not accepted by {op}({algorithm}); valid: {', '.join(accepted)}")
    if op in ("LAYERNORM", "RMSNORM") and algorithm == "fallback":
        if not isinstance(norm, int) or isinstance(norm, bool) or not NORM_RANGE[0] <= norm <= NORM_RANGE[1]:
            _fail(
                text,
                f"NORM of {op}(fallback,NORM,float16) must be an integer in "
                f"{NORM_RANGE[0]}..{NORM_RANGE[1]} (2^NORM a float16 number), got {norm!r}",
            )
    elif norm is not None:
        if op == "LAYERNORM":
            _fail(text, f"LAYERNORM({algorithm},...) takes '_' as its second argument, got {norm!r}")
        _fail(text, f"{op}({algorithm},NF) takes no NORM, got {norm!r}")


NONE = Logic("NONE")

_CALL = re.compile(r"^([A-Za-z0-9_]+)\((.*)\)$")


def parse_logic(spec: "str | Logic") -> Logic:
    """Parse a logic shorthand (or return a :class:`Logic` unchanged).

    ``parse_logic("SOFTMAX(base2, float16)") == Logic("SOFTMAX", "base2", "float16")``.
    Raises :class:`~dmxnum.errors.ShorthandError` (a ``ValueError``) naming
    the bad part and listing the valid choices; ``TypeError`` for a value
    that is neither a string nor a logic.
    """
    if isinstance(spec, Logic):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"a logic is a shorthand string or a Logic value, got {type(spec).__name__}")
    text = spec
    compact = "".join(spec.split())
    if compact.upper() == "NONE":
        return NONE
    m = _CALL.match(compact)
    if m is None:
        _fail(text, "expected OP(args...) or NONE")
    op = m.group(1).upper()
    if op not in ALGORITHMS:
        _fail(text, f"unknown operation {m.group(1)!r}; valid: NONE, {', '.join(ALGORITHMS)}")
    parts = m.group(2).split(",")
    algorithm = parts[0].lower()
    if algorithm not in ALGORITHMS[op]:
        _fail(text, f"unknown {op} algorithm {parts[0]!r}; valid: {', '.join(ALGORITHMS[op])}")
    accepted = ALGORITHMS[op][algorithm]
    if accepted is None:
        if len(parts) != 1:
            _fail(text, f"{op}({algorithm}) takes no further arguments; write {op}({algorithm})")
        return Logic(op, algorithm)
    if op == "LAYERNORM":
        if len(parts) != 3:
            _fail(text, f"LAYERNORM({algorithm},...) takes 3 arguments: algorithm, NORM or '_', number format")
        middle = parts[1]
        norm: int | None
        if algorithm == "fallback":
            if not re.fullmatch(r"[+-]?\d+", middle):
                _fail(text, f"NORM {middle!r} is not an integer; valid: {NORM_RANGE[0]}..{NORM_RANGE[1]}")
            norm = int(middle)
        else:
            if middle != "_":
                _fail(text, f"LAYERNORM({algorithm},...) takes '_' as its second argument, got {middle!r}")
            norm = None
        nf = parts[2].lower()
    elif op == "RMSNORM":
        if algorithm == "fallback":
            if len(parts) != 3:
                _fail(text, "RMSNORM(fallback,...) takes 3 arguments: write RMSNORM(fallback,NORM,float16)")
            if not re.fullmatch(r"[+-]?\d+", parts[1]):
                _fail(text, f"NORM {parts[1]!r} is not an integer; valid: {NORM_RANGE[0]}..{NORM_RANGE[1]}")
            norm, nf = int(parts[1]), parts[2].lower()
        else:
            if len(parts) != 2:
                valid = "|".join(accepted)
                _fail(
                    text,
                    f"RMSNORM({algorithm},NF) takes 2 arguments: algorithm and number format "
                    f"(write RMSNORM({algorithm},{valid}); only RMSNORM(fallback,NORM,float16) takes a NORM)",
                )
            nf, norm = parts[1].lower(), None
    else:
        if len(parts) != 2:
            _fail(text, f"{op}({algorithm},NF) takes 2 arguments: algorithm and number format")
        nf, norm = parts[1].lower(), None
    _validate(op, algorithm, nf, norm, text)
    return Logic(op, algorithm, nf, norm)
