"""The budget reservation of a paid call: a failure gives back only what it did not charge."""

from __future__ import annotations

import pytest

from video_assets.providers.budget import BudgetExceeded, Spend
from video_assets.providers.retry import ProviderError


def test_a_failed_call_that_charged_keeps_its_reservation():
    """A prediction that succeeded is paid even when its output cannot be fetched: the next call
    may not spend that money again."""
    spend, ledger_usd = Spend("j", cap_usd=1.0, spent_usd=0.0), [0.0]

    def paid_then_lost() -> None:
        ledger_usd[0] += 0.8  # the ledger row of the succeeded prediction
        raise ProviderError("output download got HTTP 404")

    with pytest.raises(ProviderError):
        spend.pay("clip 1", 0.8, paid_then_lost, lambda: ledger_usd[0])
    assert spend.spent_usd == pytest.approx(0.8)
    with pytest.raises(BudgetExceeded):
        spend.reserve("clip 2", 0.8)


def test_a_failed_call_that_charged_nothing_gives_its_reservation_back():
    spend = Spend("j", cap_usd=1.0, spent_usd=0.0)

    def refused() -> None:
        raise ProviderError("HTTP 422: bad input")

    with pytest.raises(ProviderError):
        spend.pay("clip 1", 0.8, refused, lambda: 0.0)
    assert spend.spent_usd == 0.0
    spend.reserve("clip 2", 0.8)
