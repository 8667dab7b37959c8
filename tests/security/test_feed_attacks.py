"""Attacks through feeds (issue 19): SSRF through IPv6 forms that carry an IPv4 address, and a feed
of tens of thousands of entries. The guard's other address forms are in tests/test_fetch.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feedletter.errors import FetchError
from feedletter.ingest.connections import check_address
from feedletter.ingest.entries import EntryRules, prepare_feed

# NAT64 (well-known and local-use prefixes), 6to4 and IPv4-compatible forms of loopback, a private
# network, the cloud metadata address and this host.
CARRIED = ["[64:ff9b::7f00:1]", "[64:ff9b::a9fe:a9fe]", "[64:ff9b:1::c0a8:101]", "[2002:7f00:1::1]",
           "[2002:a9fe:a9fe::]", "[::7f00:1]", "[::a00:1]", "[::ffff:a9fe:a9fe]"]


@pytest.mark.parametrize("host", CARRIED)
def test_an_ipv6_address_carrying_a_private_ipv4_address_is_refused(host: str) -> None:
    with pytest.raises(FetchError, match=r"refused: .* non-public address"):
        check_address(f"http://{host}/feed.xml", allow_private=False)


def test_a_feed_of_46000_entries_keeps_the_newest_thousand() -> None:
    """It took 63 s and 897 MB; now the fast engine reads it whole and only the newest are prepared."""
    items = "".join(f"<item><title>Post {i}</title><link>https://ex.com/{i}</link><guid>g{i}</guid>"
                    f"<pubDate>Mon, 0{1 + i % 9} Jan 2024 {i % 24:02d}:00:00 GMT</pubDate>"
                    f"<description>x</description></item>" for i in range(46_000))
    doc = f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{items}</channel></rss>".encode()
    done = prepare_feed(doc, "https://ex.com/feed.xml", "application/rss+xml", EntryRules("s", max_entries=1000),
                        (), datetime(2024, 7, 1, tzinfo=UTC))
    assert not isinstance(done, str)
    feed, prepared, filtered = done
    assert len(prepared) == 1000 and feed.capped == 45_000 and filtered == 0
    newest = max(p.published for p in prepared if p.published is not None)
    assert newest.day == 9  # the feed's newest day is among those kept
