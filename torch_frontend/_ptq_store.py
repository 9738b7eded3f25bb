"""Where a wrapped model keeps its post-training quantization state.

``Model.dmx_ptq`` is a :class:`PTQStore`, an ``nn.Module`` whose children
mirror the network's module paths, so that its tensors follow the wrapper
(``model.to(device)``, ``state_dict``, ``load_state_dict``, copies) under
keys such as ``dmx_ptq.model.layers.0.mlp.down_proj.input_scale``. Per
module it may hold:

``input_scale`` / ``weight_scale`` (buffers)
    calibrated static scales (``dmx.calibrate``);
``smooth`` (buffer)
    SmoothQuant factors ``f`` (``dmx.smoothquant``): the input is divided
    by ``f`` and the weight multiplied by it along the input features;
``weight`` (parameter)
    GPTQ's quantized weight (``dmx.gptq``), in the slot layout ``(out, in,
    ...)``; it replaces the network's weight in the wrapped forward and
    trains like any parameter.

Loading a state dict creates the entries it holds, so a fresh
``dmx.Model(net).transform(cfg)`` loads a calibrated model's state.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn

#: the tensors a module's entry may hold (``weight`` is a parameter, the rest buffers)
KEYS = ("input_scale", "weight_scale", "smooth", "weight")


class _Node(nn.Module):
    """One level of the module path (children) with that module's entries."""

    def forward(self, *args: Any) -> None:  # pragma: no cover - never called
        raise RuntimeError("the PTQ store holds tensors; it is not a layer")


class PTQStore(_Node):
    """The PTQ tensors of a wrapped model, by module name and key (module docs)."""

    def _node(self, path: str, create: bool) -> nn.Module | None:
        node: nn.Module = self
        for part in path.split(".") if path else ():
            child = node._modules.get(part)
            if child is None:
                if not create:
                    return None
                if part in KEYS:
                    raise ValueError(f"module path {path!r} has a part named {part!r}, which the PTQ store reserves")
                child = _Node()
                node.add_module(part, child)
            node = child
        return node

    def get(self, name: str, key: str) -> torch.Tensor | None:
        """The ``key`` tensor of module ``name``, or None."""
        node = self._node(name, False)
        if node is None:
            return None
        return node._parameters.get(key) if key == "weight" else node._buffers.get(key)

    def set(self, name: str, key: str, value: torch.Tensor) -> torch.Tensor:
        """Store ``value`` as module ``name``'s ``key`` (a parameter for
        ``weight``, else a buffer) and return what is stored."""
        if key not in KEYS:
            raise ValueError(f"unknown PTQ entry {key!r}; entries: {', '.join(KEYS)}")
        node = self._node(name, True)
        value = value.detach()
        if key == "weight":
            node.register_parameter(key, nn.Parameter(value.clone(), requires_grad=True))
            return node._parameters[key]
        node.register_buffer(key, value.clone())
        return node._buffers[key]

    def drop(self, name: str, key: str) -> bool:
        """Remove module ``name``'s ``key``; True if there was one."""
        node = self._node(name, False)
        if node is None:
            return False
        table = node._parameters if key == "weight" else node._buffers
        return table.pop(key, None) is not None

    def items(self) -> Iterator[tuple[str, str, torch.Tensor]]:
        """``(module name, key, tensor)`` for every entry."""
        def walk(node: nn.Module, prefix: str) -> Iterator[tuple[str, str, torch.Tensor]]:
            for key in KEYS:
                t = node._parameters.get(key) if key == "weight" else node._buffers.get(key)
                if t is not None:
                    yield prefix, key, t
            for part, child in node._modules.items():
                yield from walk(child, f"{prefix}.{part}" if prefix else part)

        yield from walk(self, "")

    def of(self, name: str) -> dict[str, torch.Tensor]:
        """``{key: tensor}`` of module ``name``."""
        return {k: t for k in KEYS if (t := self.get(name, k)) is not None}

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        # create the entries the state dict holds; the children then load them
        for full, value in state_dict.items():
            if not full.startswith(prefix) or not isinstance(value, torch.Tensor):
                continue
            name, _, key = full[len(prefix):].rpartition(".")
            if key in KEYS and name and self.get(name, key) is None:
                self.set(name, key, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
