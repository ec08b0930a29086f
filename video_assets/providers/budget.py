"""The budget cap: estimated before any paid call, enforced on every one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class BudgetExceeded(RuntimeError):
    """The job would cost more than its cap; nothing more is spent."""


def refuse_if_over(job_id: str, cap_usd: float, spent_usd: float,
                   items: list[tuple[str, float]]) -> float:
    """Fail fast, before spending anything more, when ``spent + sum(items)`` exceeds the cap.
    Returns the estimate. The message breaks the estimate down."""
    estimate = round(sum(usd for _, usd in items), 6)
    if spent_usd + estimate > cap_usd + 1e-9:
        lines = "\n".join(f"  {label}: ${usd:.4f}" for label, usd in items if usd)
        raise BudgetExceeded(
            f"job {job_id}: estimated ${estimate:.4f} more (already spent ${spent_usd:.4f}) is over "
            f"the budget of ${cap_usd:.2f}:\n{lines}\nfix: raise budget_usd in the request, use "
            "cheaper models (see video_assets/providers/prices.json) or providers: offline")
    return estimate


class Spend:
    """Thread-safe running total: each paid call reserves its price first and never overshoots."""

    def __init__(self, job_id: str, cap_usd: float, spent_usd: float) -> None:
        self.job_id, self.cap_usd, self.spent_usd = job_id, cap_usd, spent_usd
        self.lock = threading.Lock()

    def reserve(self, label: str, usd: float) -> None:
        with self.lock:
            refuse_if_over(self.job_id, self.cap_usd, self.spent_usd, [(label, usd)])
            self.spent_usd += usd

    def release(self, usd: float) -> None:
        with self.lock:
            self.spent_usd -= usd

    def pay(self, label: str, price_usd: float, work: Callable[[], T],
            charged_usd: Callable[[], float]) -> T:
        """Reserve ``price_usd``, then run ``work``. If it fails, give back only what it did not
        charge (``charged_usd()``: the caller's ledger total, read before and after): a
        prediction that succeeded is paid even when its output could not be fetched."""
        self.reserve(label, price_usd)
        before_usd = charged_usd()
        try:
            return work()
        except Exception:
            self.release(max(0.0, price_usd - (charged_usd() - before_usd)))
            raise
