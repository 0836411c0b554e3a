from __future__ import annotations

from collections.abc import Hashable, Sequence

import torch
from torch import Tensor, nn

Logs = dict[str, float]
IdsLike = Tensor | Sequence[Hashable]


class LossTerm(nn.Module):
    """One weighted, switchable loss term. ``forward`` returns (weight × loss, logs).

    Disabled: a zero scalar that requires no grad and empty logs (nothing is computed). Logs hold detached floats,
    the unweighted value under the term's ``name``.
    """

    name = "loss"

    def __init__(self, weight: float = 1.0, enabled: bool = True) -> None:
        super().__init__()
        self.weight = float(weight)
        self.enabled = bool(enabled)

    @property
    def active(self) -> bool:
        return self.enabled and self.weight != 0.0

    def _off(self, like: Tensor) -> tuple[Tensor, Logs]:
        return torch.zeros((), device=like.device, dtype=like.dtype), {}

    def extra_repr(self) -> str:
        return f"weight={self.weight}, enabled={self.enabled}"


def ids_to_tensor(ids: IdsLike, device: torch.device | None = None) -> Tensor:
    """Ids (a 1-D integer tensor or any sequence of hashables: strings, ints) → int64 codes, equal iff equal."""
    if isinstance(ids, Tensor):
        return ids.to(device=device, dtype=torch.long).reshape(-1)
    codes: dict[Hashable, int] = {}
    return torch.tensor([codes.setdefault(x, len(codes)) for x in ids], dtype=torch.long, device=device)


def same_id_matrix(a: IdsLike, b: IdsLike | None = None, device: torch.device | None = None) -> Tensor:
    """(len(a), len(b)) bool: a[i] == b[j]. Mixed sequences are coded jointly."""
    if b is None:
        ta = ids_to_tensor(a, device)
        return ta[:, None] == ta[None, :]
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        ta, tb = ids_to_tensor(a, device), ids_to_tensor(b, device)
    else:
        la = a.tolist() if isinstance(a, Tensor) else list(a)
        lb = b.tolist() if isinstance(b, Tensor) else list(b)
        joint = ids_to_tensor(la + lb, device)
        ta, tb = joint[: len(la)], joint[len(la) :]
    return ta[:, None] == tb[None, :]


def zero_with_grad(*tensors: Tensor) -> Tensor:
    """A zero that still belongs to the graph of ``tensors`` (so backward() works and gives zero grads)."""
    return sum((t.sum() * 0.0 for t in tensors), start=torch.zeros((), device=tensors[0].device))
