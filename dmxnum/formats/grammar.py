"""The shorthand grammar: ``parse(text) -> Format``.

Grammar (SPEC section 3; ``n f s e m b d p`` are decimal integers, an
optional leading ``+`` or ``-`` allowed; letters in parentheses are single
characters)::

    SAME
    XP[n,f](ABR)                    A: C clamp | _ or U unclamped
                                    B: S symmetric | _ or A asymmetric
    FP[s|e|m,b](XY)                 s: 0 unsigned | 1 signed; X: F flush | _ keep
    FP[s|e|m,b](XYZ)                Z: S (default) | I | E | A special values
    BFP[n|8]{b,d}(XY)               X: S symmetric | _ or A asymmetric
    BFP[n|8]{b}(XY)                 {b} alone means d = -1
    MXINTn{b,d}     MXINTn{b}       e.g. MXINT8{32,-1}
    MXFPp[EeMm]{b,d}                p = 1 + e + m, e.g. MXFP8[E4M3]{32,-1}
    MXFPp[EeMm]{b,d}(M)             M: scale mode F FLOOR (default) | C CEIL |
                                    E EVEN | R RCEIL
    NVFP4{b,d}      NVFP4{b,d}(T)   T: two level (a float32 tensor scale)
    SBFP<XP[n,0](CXY)><FP[s|e|m,b](XY[Z])>{b,d}

``R``/``Y`` are rounding letters (N, S, U, D, Z). Every blocked family also
accepts ``{b}`` for ``{b,-1}``. Aliases (``FP16``, ``MXFP4_E2M1``,
``BFP16_64_LD``, ... see :mod:`dmxnum.formats.aliases`) are accepted
anywhere a format is, including inside ``SBFP<...>``. The MXFP aliases take
a scale-mode suffix and ``NVFP4`` takes ``(T)``: ``MXFP4_E2M1(R)`` is
``MXFP4[E2M1]{32,-1}(R)``, ``NVFP4(T)`` is ``NVFP4{16,-1}(T)``.

Case: the whole shorthand is case-insensitive (identifiers, aliases and the
letters in parentheses alike: ``fp[1|5|10,15](fn)`` is ``FP[1|5|10,15](FN)``);
no letter has a distinct lower-case meaning. Whitespace is ignored
everywhere (``"BFP[8|8]{64, -1}(SN)"`` is ``BFP[8|8]{64,-1}(SN)``), as in
the sparsity and logic shorthands; error columns count in the text as given.
Only ASCII is accepted. Canonical output (``str(fmt)``) is upper case,
without spaces or ``+`` signs, and always prints ``{b,d}``.

Errors: every malformed input raises :class:`dmxnum.errors.ShorthandError`
(a ``ValueError``) whose message quotes the input, says which part is wrong
and at which column, shows the expected grammar of the family, and suggests
the closest valid shorthand when an obvious one exists (names are ranked
by :func:`_ranked`: truncations first, then by agreeing digits, shared
prefix and ``difflib`` similarity). Parameter range errors of the format
constructors are re-raised as ``ShorthandError`` with their range message.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from collections import Counter
from typing import Callable, Iterable, NoReturn

from ..errors import FormatParameterError, ShorthandError
from .aliases import ALIASES
from .base import ROUNDINGS, Format
from .block import BlockFloatingPoint, MXInt
from .fixed import FixedPoint
from .floating import SCHEMES, FloatingPoint
from .mx import SCALE_MODES, MXFloat
from .nvfp4 import NVFP4
from .same import Same
from .scaled import ScaledBFP

__all__ = ["parse", "FAMILY_GRAMMAR"]

#: family identifier -> its grammar, as quoted in error messages.
FAMILY_GRAMMAR: dict[str, str] = {
    "SAME": "SAME",
    "XP": "XP[n,f](ABR), e.g. XP[8,0](CSN)",
    "FP": "FP[s|e|m,b](XY) or FP[s|e|m,b](XYZ), e.g. FP[1|5|10,15](_N)",
    "BFP": "BFP[n|8]{b,d}(XY) or BFP[n|8]{b}(XY), e.g. BFP[8|8]{64,-1}(SN)",
    "MXINT": "MXINTn{b,d} or MXINTn{b}, e.g. MXINT8{32,-1}",
    "MXFP": "MXFPp[EeMm]{b,d} or MXFPp[EeMm]{b} with p = 1+e+m, optionally followed by a scale mode "
            "(C), (E) or (R) (FLOOR, the default, prints without one), e.g. MXFP8[E4M3]{32,-1}, "
            "MXFP4[E2M1]{16,-1}(R)",
    "NVFP": "NVFP4, NVFP4{b,d} or NVFP4{b}, optionally followed by (T) for the two-level form, "
            "e.g. NVFP4{16,-1}(T)",
    "SBFP": "SBFP<XP[n,0](CXY)><FP[s|e|m,b](XY[Z])>{b,d}, e.g. SBFP<XP[8,0](CSN)><FP[0|8|0,127](_N)>{16,-1}",
}

_ROUNDING_NAMES = "N nearest-even, S stochastic, U up, D down, Z toward zero"
_ROUNDING = {r: r for r in ROUNDINGS}
_SCALE_MODE = {m: m for m in SCALE_MODES}
_SCALE_MODE_NAMES = ", ".join(f"{k} {v}" for k, v in SCALE_MODES.items())
_MAX_DIGITS = 12  # integers longer than this are rejected (no parameter needs them)
_INT = re.compile(r"[+-]?[0-9]+")
_WORD = re.compile(r"[A-Z][A-Z0-9_]*")
_LETTERS = re.compile(r"[A-Z]+")
_SPACE = re.compile(r"\s+")
_CLOSERS = ")]}>"


class _Fail(Exception):
    """Internal parse failure, turned into a ShorthandError by ``parse``.

    ``pos`` is the 0-based index of the wrong part (None: the whole
    shorthand); ``repairs`` are candidate corrected strings, tried in order
    for a "did you mean"; ``suggestion`` is a ready-made one, preferred.
    """

    def __init__(self, problem: str, family: str | None, pos: int | None = None,
                 repairs: list[str] | None = None, suggestion: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.family, self.pos = problem, family, pos
        self.repairs, self.suggestion = repairs or [], suggestion


class _Cursor:
    """A position in the upper-cased shorthand, bounded by ``end``."""

    def __init__(self, text: str, pos: int, end: int, family: str | None) -> None:
        self.text, self.pos, self.end, self.family = text, pos, end, family

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.end else ""

    def found(self) -> str:
        ch = self.peek()
        return f"{ch!r}" if ch else "end of string"

    def fail(self, problem: str, *, pos: int | None = None, repairs: list[str] | None = None,
             suggestion: str | None = None, anywhere: bool = False) -> NoReturn:
        """Raise ``_Fail`` at ``pos`` (default: here; ``anywhere``: no position)."""
        where = None if anywhere else self.pos if pos is None else pos
        raise _Fail(problem, self.family, where, repairs or [], suggestion)

    def edit(self, pos: int, insert: str, delete: int = 0) -> str:
        """The full text with ``delete`` characters at ``pos`` replaced by ``insert``."""
        return self.text[:pos] + insert + self.text[pos + delete:]

    def expect(self, ch: str, what: str) -> None:
        if self.peek() != ch:
            repairs = [self.edit(self.pos, ch), self.edit(self.pos, ch, 1)]
            self.fail(f"expected {ch!r} {what}, found {self.found()}", repairs=repairs)
        self.pos += 1

    def integer(self, what: str) -> int:
        match = _INT.match(self.text, self.pos, self.end)
        if match is None:
            self.fail(f"expected an integer {what}, found {self.found()}")
        digits = match.group().lstrip("+-")
        if len(digits) > _MAX_DIGITS:
            self.fail(f"integer {what} has {len(digits)} digits; at most {_MAX_DIGITS} are accepted")
        self.pos = match.end()
        return int(match.group())

    def letter(self, choices: dict[str, object], what: str, legend: str) -> object:
        ch = self.peek()
        if ch in choices:
            self.pos += 1
            return choices[ch]
        options = ", ".join(choices)
        if ch == "" or ch in _CLOSERS:
            self.fail(f"missing {what} (found {self.found()}), expected one of {options} ({legend})",
                      repairs=[self.edit(self.pos, next(iter(choices)))])
        self.fail(f"bad {what} {ch!r}, expected one of {options} ({legend})")

    def block(self) -> tuple[int, int]:
        """``{b,d}`` or ``{b}`` (d = -1)."""
        self.expect("{", "to open the block {b,d}")
        size = self.integer("block size b")
        axis = -1
        if self.peek() == ",":
            self.pos += 1
            axis = self.integer("block axis d")
        self.expect("}", "to close the block {b,d}")
        return size, axis

    def done(self) -> None:
        if self.pos < self.end:
            rest = self.text[self.pos:self.end]
            self.fail(f"unexpected trailing text {rest!r}", repairs=[self.text[:self.pos] + self.text[self.end:]])


def _build(cur: _Cursor, start: int, ctor: Callable[..., Format], *args: object) -> Format:
    """Call a format constructor, turning its range error into a parse failure."""
    try:
        return ctor(*args)
    except FormatParameterError as err:
        cur.fail(str(err), anywhere=True)


# --------------------------------------------------------------------------
# one function per family; each starts just after the family identifier


def _same(cur: _Cursor, start: int) -> Format:
    return Same()


def _xp(cur: _Cursor, start: int) -> Format:
    cur.expect("[", "after XP")
    bits = cur.integer("width n")
    cur.expect(",", "between n and f")
    frac = cur.integer("fraction bits f")
    cur.expect("]", "to close XP[n,f]")
    cur.expect("(", "to open the letters (ABR)")
    clamp = cur.letter({"C": True, "_": False, "U": False}, "clamp letter A", "C clamp, _ or U unclamped")
    symmetric = cur.letter({"S": True, "_": False, "A": False}, "symmetry letter B",
                           "S symmetric, _ or A asymmetric")
    rounding = cur.letter(_ROUNDING, "rounding letter R", _ROUNDING_NAMES)
    cur.expect(")", "to close the letters (ABR)")
    return _build(cur, start, FixedPoint, bits, frac, clamp, symmetric, rounding)


def _fp(cur: _Cursor, start: int) -> Format:
    cur.expect("[", "after FP")
    sign_pos = cur.pos
    signed = cur.integer("sign field s")
    if signed not in (0, 1):
        cur.fail(f"sign field s must be 0 (unsigned) or 1 (signed), got {signed}", pos=sign_pos)
    cur.expect("|", "between s and e")
    exp_bits = cur.integer("exponent bits e")
    cur.expect("|", "between e and m")
    man_bits = cur.integer("mantissa bits m")
    cur.expect(",", "between m and the bias b")
    bias = cur.integer("bias b")
    cur.expect("]", "to close FP[s|e|m,b]")
    cur.expect("(", "to open the letters (XY) or (XYZ)")
    flush = cur.letter({"F": True, "_": False}, "flush letter X", "F flush subnormals, _ keep them")
    rounding = cur.letter(_ROUNDING, "rounding letter Y", _ROUNDING_NAMES)
    scheme = "S"
    if cur.peek() != ")":
        scheme = cur.letter({z: z for z in SCHEMES}, "scheme letter", "S saturating, I IEEE 754, "
                            "E OCP E4M3-style, A all codes finite")
    cur.expect(")", "to close the letters (XY) or (XYZ)")
    return _build(cur, start, FloatingPoint, bool(signed), exp_bits, man_bits, bias, flush, rounding, scheme)


def _bfp(cur: _Cursor, start: int) -> Format:
    cur.expect("[", "after BFP")
    man_bits = cur.integer("mantissa width n")
    cur.expect("|", "between n and the shared exponent width 8")
    exp_pos = cur.pos
    exp_bits = cur.integer("shared exponent width (always 8)")
    if exp_bits != 8:
        cur.fail(f"shared exponent width must be 8 (only |8 is accepted), got {exp_bits}", pos=exp_pos,
                 repairs=[cur.edit(exp_pos, "8", cur.pos - exp_pos)])
    cur.expect("]", "to close BFP[n|8]")
    size, axis = cur.block()
    cur.expect("(", "to open the letters (XY)")
    symmetric = cur.letter({"S": True, "_": False, "A": False}, "symmetry letter X",
                           "S symmetric, _ or A asymmetric")
    rounding = cur.letter(_ROUNDING, "rounding letter Y", _ROUNDING_NAMES)
    cur.expect(")", "to close the letters (XY)")
    return _build(cur, start, BlockFloatingPoint, man_bits, size, axis, symmetric, rounding)


def _mxint(cur: _Cursor, start: int) -> Format:
    bits = cur.integer("width n right after MXINT")
    size, axis = cur.block()
    return _build(cur, start, MXInt, bits, size, axis)


def _mxfp(cur: _Cursor, start: int) -> Format:
    p_pos = cur.pos
    width = cur.integer("total width p right after MXFP")
    p_end = cur.pos
    cur.expect("[", "to open the element [EeMm]")
    cur.expect("E", "before the exponent bits e")
    exp_bits = cur.integer("exponent bits e")
    cur.expect("M", "before the mantissa bits m")
    man_bits = cur.integer("mantissa bits m")
    cur.expect("]", "to close the element [EeMm]")
    size, axis = cur.block()
    mode = "F"
    if cur.peek() == "(":
        cur.pos += 1
        mode = cur.letter(_SCALE_MODE, "scale mode letter M", _SCALE_MODE_NAMES)
        cur.expect(")", "to close the scale mode (M)")
    fmt = _build(cur, start, MXFloat, exp_bits, man_bits, size, axis, mode)
    if width != 1 + exp_bits + man_bits:
        cur.fail(f"total width p = {width} must equal 1 + e + m = {1 + exp_bits + man_bits}", pos=p_pos,
                 repairs=[cur.edit(p_pos, str(1 + exp_bits + man_bits), p_end - p_pos)])
    return fmt


def _nvfp(cur: _Cursor, start: int) -> Format:
    width_pos = cur.pos
    width = cur.integer("element width right after NVFP (always 4)")
    if width != 4:
        cur.fail(f"NVFP has 4-bit elements only (NVFP4), got NVFP{width}", pos=width_pos,
                 repairs=[cur.edit(width_pos, "4", cur.pos - width_pos)])
    size, axis = cur.block() if cur.peek() == "{" else (16, -1)
    two_level = False
    if cur.peek() == "(":
        cur.pos += 1
        two_level = cur.letter({"T": True}, "NVFP4 level letter", "T two level (a float32 tensor scale); "
                               "omit (T) for the single-level form")
        cur.expect(")", "to close (T)")
    return _build(cur, start, NVFP4, size, axis, bool(two_level))


def _part(cur: _Cursor, role: str, family: str, cls: type) -> Format:
    """One ``<...>`` part of SBFP: a shorthand or alias of the given family."""
    cur.expect("<", f"to open the {role} <{family}[...]>")
    close = cur.text.find(">", cur.pos, cur.end)
    if close < 0:
        cur.fail(f"missing '>' to close the {role} <...>", pos=cur.end,
                 repairs=[cur.edit(cur.end, ">")])
    inner = cur.text[cur.pos:close]
    if inner in ALIASES:
        fmt = ALIASES[inner]
    else:
        sub = _Cursor(cur.text, cur.pos, close, family)
        try:
            word = _LETTERS.match(cur.text, sub.pos, close)
            if word is None or word.group() != family:
                sub.fail(f"expected an {family} shorthand, found {inner!r}")
            sub.pos = word.end()
            fmt = _FAMILIES[family](sub, word.start())
            if sub.pos < close:
                sub.fail(f"unexpected text {cur.text[sub.pos:close]!r} before '>'",
                         repairs=[cur.edit(sub.pos, ">"), cur.edit(sub.pos, "", close - sub.pos)])
        except _Fail as fail:
            fail.problem = f"in the SBFP {role} <{inner}>: {fail.problem}"
            fail.family = "SBFP"
            raise
    if not isinstance(fmt, cls):
        cur.fail(f"the SBFP {role} must be an {family} format, got {inner!r} = {fmt}")
    cur.pos = close + 1
    return fmt


def _sbfp(cur: _Cursor, start: int) -> Format:
    block = _part(cur, "block format", "XP", FixedPoint)
    scaler = _part(cur, "scaler format", "FP", FloatingPoint)
    size, axis = cur.block()
    return _build(cur, start, ScaledBFP, block, scaler, size, axis)


_FAMILIES: dict[str, Callable[[_Cursor, int], Format]] = {
    "SAME": _same, "XP": _xp, "FP": _fp, "BFP": _bfp, "MXINT": _mxint, "MXFP": _mxfp, "SBFP": _sbfp,
    "NVFP": _nvfp,
}


# --------------------------------------------------------------------------


def _parse_upper(text: str) -> Format:
    """Parse an upper-case ASCII shorthand without whitespace; raise ``_Fail`` on error."""
    start, end = 0, len(text)
    cur = _Cursor(text, start, end, None)
    if start >= end:
        cur.fail("the shorthand is empty", anywhere=True)
    word = _WORD.match(text, start, end)
    if word is None:
        cur.fail(f"a shorthand starts with a format name, found {cur.found()}")
    name = word.group()
    if word.end() == end and name in ALIASES:
        return ALIASES[name]
    if word.end() == end and name != "SAME":
        _unknown_word(cur, name)
    if name in ALIASES and isinstance(ALIASES[name], (MXFloat, NVFP4)) and text[word.end()] == "(":
        return _suffixed_alias(cur, name, word.end())
    family = _LETTERS.match(text, start, end).group()  # type: ignore[union-attr]
    parser = _FAMILIES.get(family)
    if parser is None and name in ALIASES:
        cur.fail(f"the alias {name} takes no parameters, found {text[word.end():end]!r}", pos=word.end(),
                 suggestion=name)
    if parser is None:
        repairs = [cur.edit(start, other, len(family)) for other in _ranked(family, _FAMILIES)[:3]]
        cur.fail(f"unknown format identifier {family!r} (known: {', '.join(_FAMILIES)})", repairs=repairs)
    cur.family = family
    cur.pos = start + len(family)
    try:
        fmt = parser(cur, start)
        cur.done()
    except _Fail as fail:
        # "FP16(FN)": the alias name itself fails to parse as its family
        if name not in ALIASES or fail.pos is None or not start < fail.pos < word.end():
            raise
        cur.fail(f"the alias {name} takes no parameters, found {text[word.end():end]!r}", pos=word.end(),
                 suggestion=name)
    return fmt


def _suffixed_alias(cur: _Cursor, name: str, pos: int) -> Format:
    """An MXFP alias with a scale-mode suffix (``MXFP4_E2M1(R)``) or ``NVFP4(T)``."""
    base = ALIASES[name]
    cur.pos = pos
    if isinstance(base, MXFloat):
        cur.family = "MXFP"
        cur.expect("(", f"to open the scale mode after {name}")
        mode = cur.letter(_SCALE_MODE, "scale mode letter M", _SCALE_MODE_NAMES)
        cur.expect(")", "to close the scale mode (M)")
        cur.done()
        return _build(cur, 0, MXFloat, base.exp_bits, base.man_bits, base.block_size, base.axis, mode)
    cur.family = "NVFP"
    cur.expect("(", f"to open (T) after {name}")
    cur.letter({"T": True}, "NVFP4 level letter", "T two level (a float32 tensor scale); "
               "omit (T) for the single-level form")
    cur.expect(")", "to close (T)")
    cur.done()
    return NVFP4(base.block_size, base.axis, True)


def _unknown_word(cur: _Cursor, name: str) -> NoReturn:
    """Fail on a bare word that is neither SAME nor an alias."""
    family = _LETTERS.match(name).group()  # type: ignore[union-attr]
    if family in _FAMILIES and (name == family or family == "MXINT"):
        cur.family = family
        repairs = [cur.edit(cur.end, "{32,-1}")] if family == "MXINT" else []
        cur.fail(f"{name} needs its parameters", pos=cur.end, repairs=repairs)
    ranked = _ranked(name, [*ALIASES, "SAME"])
    suggestion = ranked[0] if ranked else None
    prefixed = [alias for alias in ALIASES if alias.startswith(name)]
    if len(prefixed) > 1:
        shown = ", ".join(prefixed[:6]) + (f", ... ({len(prefixed)} in all)" if len(prefixed) > 6 else "")
        cur.fail(f"unknown format name or alias {name!r}; aliases starting with {name}: {shown}",
                 suggestion=suggestion)
    cur.fail(f"unknown format name or alias {name!r}", suggestion=suggestion)


def _ranked(name: str, candidates: Iterable[str]) -> list[str]:
    """The ``candidates`` close to ``name``, closest first.

    Ranked by, in order: starting with ``name`` (``MXFP4`` is a truncated
    ``MXFP4_E2M1``); agreeing digits (digits in common, counted with
    repetition, minus the candidate's other digits: ``FP61`` is a swapped
    ``FP16``); the longest shared prefix; ``difflib`` similarity. Kept when
    they share a prefix of two characters or more or are ``difflib``-close
    (ratio at least 0.5).
    """
    digits = Counter(ch for ch in name if ch.isdigit())

    def rank(other: str) -> tuple[bool, int, int, float]:
        theirs = Counter(ch for ch in other if ch.isdigit())
        common = sum((digits & theirs).values())
        agree = common - (sum(theirs.values()) - common)
        prefix = len(os.path.commonprefix([name, other]))
        return other.startswith(name), agree, prefix, difflib.SequenceMatcher(None, name, other).ratio()

    scored = sorted(((rank(c), c) for c in candidates), key=lambda item: item[0], reverse=True)
    return [c for (_, _, prefix, ratio), c in scored if prefix >= 2 or ratio >= 0.5]


def _try(text: str) -> Format | None:
    try:
        return _parse_upper(text)
    except _Fail:
        return None


def _suggest(fail: _Fail) -> str | None:
    if fail.suggestion is not None:
        return fail.suggestion
    for candidate in fail.repairs[:4]:
        fmt = _try(candidate)
        if fmt is not None:
            return str(fmt)
    return None


def _expected(family: str | None) -> str:
    if family is not None:
        return FAMILY_GRAMMAR[family]
    return "; ".join(g.split(", e.g.")[0] for g in FAMILY_GRAMMAR.values()) + \
        "; or an alias such as FP16, BF16, MXFP4_E2M1, BFP16_64_LD"


@functools.lru_cache(maxsize=2048)
def _parse_text(text: str) -> Format:
    bad = next((i for i, ch in enumerate(text) if not ch.isascii()), None)
    kept = [i for i, ch in enumerate(text) if not ch.isspace()]  # compact index -> index in text
    fail: _Fail
    try:
        if bad is not None:
            raise _Fail(f"non-ASCII character {text[bad]!r}", None, bad)
        return _parse_upper(_SPACE.sub("", text).upper())
    except _Fail as caught:
        fail = caught
    if fail.pos is not None and bad is None:
        fail.pos = kept[fail.pos] if fail.pos < len(kept) else (kept[-1] + 1 if kept else 0)
    where = f" (column {fail.pos + 1})" if fail.pos is not None else ""
    quoted = repr(text) if len(text) <= 300 else f"{text[:100]!r}... ({len(text)} characters)"
    message = f"invalid format shorthand {quoted}: {fail.problem}{where}; expected {_expected(fail.family)}"
    suggestion = _suggest(fail)
    if suggestion is not None:
        alias = ALIASES.get(suggestion)
        shown = f"{suggestion} (= {alias})" if alias is not None else suggestion
        message += f"; did you mean {shown}?"
    raise ShorthandError(message)


def parse(text: str | Format) -> Format:
    """Read a format shorthand (or alias) and return its format value.

    ``text`` is a shorthand in the grammar of this module's docstring, or an
    alias (``FP16``, ``MXFP8_E4M3``, ``BFP12A_32_FD``, ...), case-insensitive,
    whitespace ignored (anywhere). A :class:`Format` is returned
    unchanged. ``parse(str(fmt)) == fmt`` for every format.

    Raises:
        ShorthandError: (a ``ValueError``) for anything else, including
            non-string input and parameters out of range; the message quotes
            the input, names the wrong part and the expected grammar, and
            suggests the closest valid form where one is obvious. No other
            exception escapes for any input.
    """
    if isinstance(text, Format):
        return text
    if not isinstance(text, str):
        raise ShorthandError(
            f"a format shorthand must be a string or a Format value, got {type(text).__name__} "
            f"{text!r:.80}; expected {_expected(None)}"
        )
    return _parse_text(text)
