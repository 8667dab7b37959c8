"""bench/bench_subscribe.py, smaller: 200 posts from 20 clients for 5 victims over loopback uvicorn."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_subscribe.py"


@pytest.mark.slow
def test_a_mail_bomb_attempt_sends_no_more_than_the_limits_allow(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_subscribe", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    figures = bench.run(tmp_path, posts=200, threads=20, victims=5)
    print(figures)
    assert figures.statuses == {"200": 200}  # never a 500, whatever arrives at once
    assert figures.queued == figures.queued_allowed == 15  # 3 requests a day for each victim
    assert figures.sent == 5 and figures.most_to_one_victim == 1  # one confirmation per victim an hour
    assert figures.rss_growth_mb < 200
