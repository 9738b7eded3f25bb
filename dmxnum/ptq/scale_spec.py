"""The values of the ``input_scale`` and ``weight_scale`` configuration slots.

Grammar (SPEC section 6, static scales)::

    NONE | MINMAX | MSE | PERCENTILE(p)      optionally followed by {axis}

``NONE`` (the default) means no static scale; the others name the
calibration observer (:func:`dmxnum.ptq.observer`) that sets the scale, per
tensor, or per index of ``axis`` (an integer, negative counting from the
end, in PyTorch layout: ``weight_scale: MSE{0}`` is one scale per output
channel of a ``Linear`` or ``Conv`` weight). ``p`` is in ``(0, 100]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ShorthandError

#: the observer kinds, by shorthand name (NONE has none)
KIND_OF = {"MINMAX": "minmax", "PERCENTILE": "percentile", "MSE": "mse"}
_PATTERN = re.compile(
    r"^(?P<name>[A-Z]+)(?:\((?P<p>[^()]*)\))?(?:\{(?P<axis>[^{}]*)\})?$"
)
_VALID = "NONE, MINMAX, MSE or PERCENTILE(p), each optionally followed by {axis} (e.g. MSE{0})"


@dataclass(frozen=True)
class StaticScaleSpec:
    """A parsed ``input_scale`` / ``weight_scale`` value.

    ``name``: ``NONE``, ``MINMAX``, ``PERCENTILE`` or ``MSE``; ``p``: the
    percentile (``PERCENTILE`` only); ``axis``: None for one scale per
    tensor, else the axis whose every index gets its own scale.
    """

    name: str
    p: float | None = None
    axis: int | None = None

    @property
    def is_none(self) -> bool:
        """True for ``NONE`` (no static scale)."""
        return self.name == "NONE"

    @property
    def kind(self) -> str:
        """The observer kind (``minmax``, ``percentile``, ``mse``); ``ValueError`` for NONE."""
        if self.is_none:
            raise ValueError("NONE takes no observer")
        return KIND_OF[self.name]

    def observer(self, fmt, **options):
        """A new :class:`~dmxnum.ptq.Observer` for ``fmt`` with this kind, ``p``
        and ``axis`` (``options`` go to :func:`dmxnum.ptq.observer`)."""
        from .observers import observer

        return observer(self.kind, fmt, self.axis, p=self.p, **options)

    def __str__(self) -> str:
        text = self.name
        if self.p is not None:
            text += f"({self.p:g})" if float(self.p).is_integer() else f"({self.p!r})"
        if self.axis is not None:
            text += f"{{{self.axis}}}"
        return text


def parse_scale_spec(text: str) -> StaticScaleSpec:
    """Parse an ``input_scale`` / ``weight_scale`` shorthand (module
    docstring). Raises ``ShorthandError`` naming the text and the valid forms."""
    if isinstance(text, StaticScaleSpec):
        return text
    if not isinstance(text, str):
        raise ShorthandError(f"a static scale is a shorthand string ({_VALID}), got {text!r}")
    m = _PATTERN.match(text.strip())
    if m is None:
        raise ShorthandError(f"{text!r} is not a static scale; valid: {_VALID}")
    name, p_text, axis_text = m.group("name"), m.group("p"), m.group("axis")
    if name != "NONE" and name not in KIND_OF:
        raise ShorthandError(f"{text!r}: unknown static scale {name!r}; valid: {_VALID}")
    p = None
    if name == "PERCENTILE":
        try:
            p = float(p_text) if p_text is not None else None
        except ValueError:
            p = None
        if p is None or not 0 < p <= 100:
            raise ShorthandError(f"{text!r}: PERCENTILE(p) needs a number p in (0, 100], e.g. PERCENTILE(99.9)")
    elif p_text is not None:
        raise ShorthandError(f"{text!r}: only PERCENTILE takes an argument in parentheses; valid: {_VALID}")
    axis = None
    if axis_text is not None:
        if name == "NONE":
            raise ShorthandError(f"{text!r}: NONE takes no axis")
        if not re.fullmatch(r"-?\d+", axis_text.strip()):
            raise ShorthandError(f"{text!r}: the axis in braces must be an integer, e.g. MSE{{0}}")
        axis = int(axis_text)
    return StaticScaleSpec(name, p, axis)
