"""The process-wide ``dmx.aware()`` switch."""

from __future__ import annotations

_STATE = {"aware": False}


def aware(enable: bool = True) -> None:
    """Install (``True``) or remove (``False``) the functional-op interception.

    With it installed, every ``dmx.Model`` forward runs inside a
    ``torch.overrides.TorchFunctionMode`` that names and configures the
    functional calls (``F.softmax``, ``F.gelu``, ``F.silu``, ``F.layer_norm``,
    ``torch.matmul``/``bmm``/``@``, ``F.scaled_dot_product_attention``,
    tensor ``+``) made inside the wrapped network; the mode is entered only
    around a ``dmx.Model`` forward, so it is inert everywhere else, and with
    no configuration it passes every call through unchanged (outputs and
    gradients are bitwise those of native PyTorch). Nothing in ``torch`` is
    patched. Idempotent; ``aware(False)`` removes it, after which configured
    functional ops are no longer applied (module-level slots still are).
    """
    _STATE["aware"] = bool(enable)


def is_aware() -> bool:
    """True while ``dmx.aware()`` is installed."""
    return _STATE["aware"]
