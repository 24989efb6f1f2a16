from __future__ import annotations

import pytest

from watchword.config import load_settings
from watchword.errors import RedisUnavailable
from watchword.runtime import Runtime


async def test_unreachable_redis_names_the_redacted_url_and_the_reason() -> None:
    settings = load_settings(
        environ={},
        database={"url": "sqlite+aiosqlite:///:memory:", "connect_timeout": "2s"},
        redis={"url": "redis://:r3dis@127.0.0.1:1/0"},
    )
    runtime = Runtime.create(settings)
    try:
        with pytest.raises(RedisUnavailable) as info:
            await runtime.check_redis()
    finally:
        await runtime.close()
    detail = info.value.detail
    assert "127.0.0.1:1" in detail and "r3dis" not in detail
    assert "connect" in detail.partition("unreachable: ")[2].lower()  # the reason, not a class
