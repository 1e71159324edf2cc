"""Learning-rate schedules, stepped once per epoch (PyTorch's ``scheduler.step()``).

Each sets ``group["lr"]`` of every parameter group of its optimizer from the epoch
count e (0 before the first ``step()``) and the group's initial rate η₀.
"""

from __future__ import annotations

import math


class LRScheduler:
    """Base: ``step()`` advances the epoch and writes ``lr_at(epoch, η₀)`` into the groups."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def lr_at(self, epoch: int, base_lr: float) -> float:
        raise NotImplementedError

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(self.last_epoch, base)

    def step(self) -> None:
        self.last_epoch += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        self.last_epoch = int(state["last_epoch"])
        self.base_lrs = list(state["base_lrs"])
        self._apply()


class StepLR(LRScheduler):
    """η = η₀ · γ^⌊e / step_size⌋."""

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1):
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """η = η₀ · γ^e."""

    def __init__(self, optimizer, gamma: float):
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        return base_lr * self.gamma**epoch


class PiecewiseConstantLR(LRScheduler):
    """The books' table of rates: ``{0: 0.1, 10: 0.01, 20: 0.001}`` uses 0.1 for epochs
    0–9, 0.01 for 10–19 and 0.001 from 20 on. η = table[max{k ≤ e}], whatever η₀ is;
    before the table's first epoch η₀ is kept.
    """

    def __init__(self, optimizer, table: dict):
        if not table:
            raise ValueError("PiecewiseConstantLR: the epoch → rate table is empty")
        self.table = sorted((int(k), float(v)) for k, v in table.items())
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        rate = base_lr
        for start, value in self.table:
            if epoch >= start:
                rate = value
        return rate


class CosineAnnealingLR(LRScheduler):
    """PyTorch's cosine annealing: η = η_min + (η₀ − η_min)·(1 + cos(π·e / T_max)) / 2,
    from η₀ at e = 0 down to η_min at e = T_max."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0):  # noqa: N803 (PyTorch's name)
        if T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be >= 1, got {T_max}")
        self.T_max, self.eta_min = int(T_max), float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, epoch, base_lr):
        cosine = (1.0 + math.cos(math.pi * epoch / self.T_max)) / 2.0
        return self.eta_min + (base_lr - self.eta_min) * cosine
