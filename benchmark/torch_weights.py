"""The one rule for what a PyTorch checkpoint must hold: a non-empty state dict of tensors,
bare or under one key.

The PFLD loader asks for its own key (``plfd_backbone``); the asset store, which checks a
file's format before trusting it and knows no model, accepts a state dict under any
top-level key. Both use this function, so they cannot disagree on what a state dict is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _is_state_dict(state: object, tensor_type: type) -> bool:
    return (
        isinstance(state, Mapping)
        and bool(state)
        and all(isinstance(v, tensor_type) for v in state.values())
    )


def state_dict_in(
    checkpoint: object, where: str, tensor_type: type, key: str | None = None
) -> Mapping[str, Any]:
    """The state dict in a loaded checkpoint, or ValueError saying what it holds instead.

    ``key`` given: the state dict under that key, or the checkpoint itself when it is one.
    ``key`` None: the checkpoint itself, or the first top-level value that is one.
    """
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{where}: expected a dict checkpoint, got {type(checkpoint).__name__}")
    if key is not None and key in checkpoint:
        if not _is_state_dict(checkpoint[key], tensor_type):
            raise ValueError(f"{where}: {key!r} is not a state dict of tensors")
        return checkpoint[key]
    if _is_state_dict(checkpoint, tensor_type):
        return checkpoint
    if key is None:
        for value in checkpoint.values():
            if _is_state_dict(value, tensor_type):
                return value
    wanted = f"no {key!r} entry" if key is not None else "no state dict of tensors in it"
    raise ValueError(
        f"{where}: {wanted} and not a bare state dict "
        f"(top-level keys: {sorted(map(str, checkpoint))[:10]})"
    )
