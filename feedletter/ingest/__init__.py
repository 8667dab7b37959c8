"""Ingest: getting posts in. The stages, in order, and what callers use:

- ``gather.fetch_sources`` (fetch and parse every due source), ``storing.store_entries`` (new
  articles once each), ``pages.extract_articles`` (full text of teaser posts);
- ``fetch.Fetcher`` / ``fetch.make_fetcher`` (HTTP), ``parse.feeds.parse_feed`` (any feed format),
  ``extract.extract`` (an article page), ``health`` (each source's state and back-off),
  ``identity`` (keys and canonical URLs).

The rest (connections, chrome, entries' preparation in worker processes) is private to it.
"""
