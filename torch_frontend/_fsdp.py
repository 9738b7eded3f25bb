"""FSDP2 (``torch.distributed.fsdp.fully_shard``): weight casts inside the
forward of the module that owns the weight.

Between forwards FSDP2 holds a managed module's parameters as sharded
``DTensor``s; the pre-forward hook of the module's FSDP unit all-gathers them
and sets the unsharded parameters on the modules, and its post-forward hook
sets the shards back. Effective parameters swapped in by ``functional_call``
before the forward would be replaced by that all-gather (the casts silently
lost), and casting the shards would gather them a second time wherever a
block of a blocked format spans shards. So the wrapper casts an FSDP-managed parameter
in its owner module's own forward: a pre-hook appended after FSDP's (which
FSDP prepends) casts the unsharded parameter and sets the result on the
module for the module's call, and a forward hook prepended before FSDP's
reshard sets FSDP's parameter back. Gradients flow through the cast to
FSDP's unsharded parameter, which FSDP reduce-scatters as usual.

Nothing here runs unless ``torch.distributed`` is initialized and the
network holds an ``FSDPModule``.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn


def managed(wrapper: nn.Module, net: nn.Module) -> tuple[str, ...]:
    """The module paths of ``net``'s FSDP2 units (``fully_shard``-ed modules;
    ``("",)`` when the ``wrapper`` holding ``net`` is one): a unit manages the
    parameters of its subtree outside nested units. Empty unless
    ``torch.distributed`` is initialized."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return ()
    from torch.distributed.fsdp import FSDPModule

    if isinstance(wrapper, FSDPModule):
        return ("",)
    return tuple(name for name, module in net.named_modules() if isinstance(module, FSDPModule))


def is_managed(path: str, units: tuple[str, ...]) -> bool:
    """Whether the module at ``path`` lies in (or is) one of the ``units``."""
    return any(u == "" or path == u or path.startswith(u + ".") for u in units)


@contextlib.contextmanager
def cast_in_forward(
    net: nn.Module, jobs: dict[str, list[tuple[str, Callable[[], torch.Tensor]]]]
) -> Iterator[None]:
    """While open, each module ``net.get_submodule(path)`` of ``jobs`` (path ->
    ``[(parameter attribute, effective value thunk)]``) runs with its
    parameters replaced by their thunks' values, computed after FSDP's
    all-gather (on the unsharded parameters) and set back before FSDP's
    reshard."""
    handles = []
    for path, entries in jobs.items():
        module = net.get_submodule(path)
        saved: list[list[tuple[str, torch.Tensor, torch.Tensor]]] = []

        def pre(module: nn.Module, args: tuple, entries=entries, saved=saved, path=path) -> None:
            for attr, _ in entries:
                if _is_dtensor(module._parameters[attr]):
                    raise RuntimeError(
                        f"{_join(path, attr)} is still sharded when {path or 'the network'} runs: "
                        "FSDP2 unshards a unit's parameters in the unit's own forward, so run the "
                        "unit (or the whole network), not a module inside it alone"
                    )
            values = [(attr, thunk()) for attr, thunk in entries]
            # the same swap functional_call makes: a tensor in the parameter's slot
            saved.append([(attr, module._parameters[attr], v) for attr, v in values])
            for attr, v in values:
                module._parameters[attr] = v

        def post(module: nn.Module, args: tuple, output: object, saved=saved) -> None:
            if not saved:
                return
            for attr, original, value in saved.pop():
                if module._parameters.get(attr) is value:
                    module._parameters[attr] = original

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post, prepend=True, always_call=True))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _is_dtensor(t: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def _join(prefix: str, suffix: str) -> str:
    return f"{prefix}.{suffix}" if prefix else suffix
