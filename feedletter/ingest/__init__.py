"""Ingest: getting posts in. Fetching (fetch: conditional GET, caps, the SSRF guard), each source's
health (health), feeds read (parse/), entries prepared in worker processes (entries), full text
from article pages (extract), keys and canonical URLs (identity), and the gather stages (gather)."""
