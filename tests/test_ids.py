from __future__ import annotations

import time

import pytest

from watchword.ids import is_id, new_id


def test_new_id_has_prefix_and_validates() -> None:
    value = new_id("org")
    assert value.startswith("org_") and is_id(value, "org")
    assert not is_id(value, "prj")


def test_new_ids_sort_by_creation_time() -> None:
    first = new_id("tok")
    time.sleep(0.002)
    second = new_id("tok")
    assert first < second


def test_new_id_rejects_bad_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        new_id("Bad-Prefix")


def test_new_ids_are_unique() -> None:
    assert len({new_id("x") for _ in range(2000)}) == 2000


def test_new_ids_in_one_process_sort_in_creation_order_within_a_millisecond() -> None:
    made = [new_id("tok") for _ in range(5000)]
    assert made == sorted(made)
