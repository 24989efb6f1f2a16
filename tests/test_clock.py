from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from watchword.clock import FakeClock, SystemClock, utc


def test_fake_clock_moves_only_when_advanced() -> None:
    clock = FakeClock(datetime(2026, 5, 1, tzinfo=UTC))
    first = clock.now()
    assert clock.now() == first
    mono = clock.monotonic()
    clock.advance(timedelta(seconds=90))
    assert clock.now() - first == timedelta(seconds=90)
    assert clock.monotonic() - mono == pytest.approx(90)


def test_fake_clock_refuses_to_go_backwards() -> None:
    with pytest.raises(ValueError, match="backwards"):
        FakeClock().advance(timedelta(seconds=-1))


def test_utc_treats_naive_as_utc_and_converts_offsets() -> None:
    assert utc(datetime(2026, 1, 1, 12)).tzinfo is UTC
    plus_two = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert utc(plus_two) == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_system_clock_is_aware_utc() -> None:
    assert SystemClock().now().tzinfo is UTC
