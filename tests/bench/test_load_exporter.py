"""The exporter under 100 concurrent scrapers and 1,200 hostile connections, bounded for CI (issue 11).

Real processes (a counting target, ``python -m exporter``) on loopback for a few seconds; the
full run is ``bench/load_exporter.py --seconds 60``. What must hold: no collection is lost (the
target saw every cycle's scrape; the exporter logged no overrun or failed scrape), every scraper
is answered with fresh values, the hostile connections are closed by the exporter, and its memory
does not grow with them.
"""

from __future__ import annotations

from bench import load_exporter


def test_scrapers_and_hostile_connections_cost_no_collection() -> None:
    result = load_exporter.run(scrapers=100, hostile=1200, seconds=5.0, interval=1.0)
    assert result.log_problems == []
    assert result.target_scrapes >= result.collections_expected - 1, result.rows()
    assert result.scrapes_ok >= 100 and result.scrapes_stale == 0, result.rows()
    assert result.scrapes_failed <= result.scrapes_ok // 100, result.rows()
    assert result.hostile_closed_by_server >= 1200 - 256, result.rows()  # over the cap, or after the idle timeout
    assert result.rss_after - result.rss_before < 64 << 20, result.rows()  # issue: 64 -> 447 MiB and stayed
