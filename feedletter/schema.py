"""The store's tables (SQLAlchemy Core), one definition for SQLite and PostgreSQL.

What the pipeline must remember between runs: per-source fetch state and health, articles (with the
sources that carried each), stories, cached summaries, digest issues, subscribers, the delivery
outbox, runs and their locks, and the ledger of side effects done once. A column added later is
nullable or has a server default: opening an older store adds it (see :mod:`feedletter.store`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from feedletter.redact import mask

metadata = sa.MetaData()


class MaskedText(sa.types.TypeDecorator[str]):
    """Text that may quote an exception or a remote party (errors, run reports): any secret in it
    is masked as it is written (``feedletter.redact``)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else mask(value)


sources = sa.Table(
    "sources", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("configured_url", sa.Text, nullable=False),
    sa.Column("etag", sa.Text),
    sa.Column("last_modified", sa.Text),
    sa.Column("last_fetch", sa.DateTime(timezone=True)),
    sa.Column("last_success", sa.DateTime(timezone=True)),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", MaskedText),
    sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_fetch", sa.DateTime(timezone=True)),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("new_items", sa.Integer, nullable=False, server_default="0"),
    sa.Column("duplicates", sa.Integer, nullable=False, server_default="0"),
    sa.Column("seconds", sa.Float),
    # What became of the last fetch's entries that were not stored, by reason (health.EntryCounts):
    # "duplicates" alone hid entries lost to a key collision among the normal re-seen ones.
    sa.Column("seen", sa.Integer, nullable=False, server_default="0"),
    sa.Column("repeated", sa.Integer, nullable=False, server_default="0"),
    sa.Column("carried", sa.Integer, nullable=False, server_default="0"),
    sa.Column("removed", sa.Integer, nullable=False, server_default="0"),
    sa.Column("filtered", sa.Integer, nullable=False, server_default="0"),
)


stories = sa.Table(
    "stories", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("lead_id", sa.Integer),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("summary", sa.Text, nullable=False, server_default=""),
    sa.Column("summary_hash", sa.String(64), nullable=False, server_default=""),
)


articles = sa.Table(
    "articles", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("source", sa.String(64), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("canonical", sa.Text, nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("author", sa.Text),
    sa.Column("published", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("fetched", sa.DateTime(timezone=True), nullable=False),
    sa.Column("html", sa.Text, nullable=False, server_default=""),
    sa.Column("text", sa.Text, nullable=False, server_default=""),
    sa.Column("content_hash", sa.String(64), nullable=False, server_default=""),
    sa.Column("needs_text", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("clustered", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("duplicate_of", sa.Integer, sa.ForeignKey("articles.id")),
    sa.Column("story_id", sa.Integer, sa.ForeignKey("stories.id"), index=True),
    # The MinHash signature of title + text (feedletter.stories.minhash.document_signature) packed as int64s,
    # so that grouping hashes each text once; NULL until computed, and again when the text changes.
    sa.Column("signature", sa.LargeBinary),
    # The same-story features (feedletter.stories.features) as a JSON list, for the same reason:
    # every grouping compares the new articles with those of the whole window.
    sa.Column("features", sa.Text),
    # The article's picture (the feed item's media or first image, else the page's og:image).
    sa.Column("image", sa.Text),
    sa.Column("image_alt", sa.Text, nullable=False, server_default=""),
)


# The same article met again under another feed: kept so a story can say who carried it.
carriers = sa.Table(
    "carriers", metadata,
    sa.Column("article_id", sa.Integer, sa.ForeignKey("articles.id"), primary_key=True),
    sa.Column("source", sa.String(64), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("seen", sa.DateTime(timezone=True), nullable=False),
)


tombstones = sa.Table(
    "tombstones", metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)


summaries = sa.Table(
    "summaries", metadata,
    sa.Column("content_hash", sa.String(64), primary_key=True),
    sa.Column("summarizer", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(32), primary_key=True),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
)


pages = sa.Table(
    "pages", metadata,
    sa.Column("url", sa.Text, primary_key=True),
    sa.Column("fetched", sa.DateTime(timezone=True), nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("error", MaskedText),
    sa.Column("image", sa.Text),  # the page's og:image, absolute http(s)
)


issues = sa.Table(
    "issues", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("newsletter", sa.String(64), nullable=False, index=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("issued", sa.DateTime(timezone=True), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("preheader", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("mjml", sa.Text, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    # Why delivery stopped with messages still queued (the provider was unreachable): the next
    # digest run resumes it. NULL while it is being sent or once it is delivered.
    sa.Column("paused", sa.Text),
    sa.UniqueConstraint("newsletter", "number"),
)


issue_stories = sa.Table(
    "issue_stories", metadata,
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), primary_key=True),
    sa.Column("story_id", sa.Integer, sa.ForeignKey("stories.id"), primary_key=True),
    sa.Column("newsletter", sa.String(64), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    # Set for a story the issue listed under another entry's "More on this" (its subject): the
    # entry's story id. Such a story is carried, so it never comes back, but it is not an entry.
    sa.Column("more_of", sa.Integer, nullable=True),
    sa.UniqueConstraint("newsletter", "story_id"),
)


subscribers = sa.Table(
    "subscribers", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("newsletter", sa.String(64), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("confirmed", sa.DateTime(timezone=True)),
    sa.Column("unsubscribed", sa.DateTime(timezone=True)),
    sa.Column("bounces", sa.Integer, nullable=False, server_default="0"),
    # The confirmation the person may still click (the nonce in its link; NULL: none open), and when
    # the last confirmation mail went out (at most one an hour; one a day after an unsubscribe).
    sa.Column("confirm_nonce", sa.String(32)),
    sa.Column("confirm_sent", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("newsletter", "email"),
)


# Subscribe requests from the web form, waiting for their confirmation mail (see web/optin.py): the
# request only queues, so its answer takes the same time whoever the address belongs to. A row is
# claimed under a lease; ``approved`` once its mail passed the once-an-hour check, so a retry after a
# failed send does not ask again.
subscribe_requests = sa.Table(
    "subscribe_requests", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("newsletter", sa.String(64), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("name", sa.Text, nullable=False, server_default=""),
    sa.Column("requested", sa.DateTime(timezone=True), nullable=False),
    sa.Column("approved", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("error", sa.Text),
)


# Rate-limit counters shared by every process on the store (see web/limits.py): one row per thing
# (an address, a client, a newsletter; keyed by an HMAC, not in clear) and time window.
rate_limits = sa.Table(
    "rate_limits", metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("hits", sa.Integer, nullable=False),
    sa.Column("expires", sa.DateTime(timezone=True), nullable=False, index=True),
)


outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("issue_id", sa.Integer, sa.ForeignKey("issues.id"), nullable=False),
    sa.Column("subscriber_id", sa.Integer, sa.ForeignKey("subscribers.id"), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("not_before", sa.DateTime(timezone=True)),
    sa.Column("error", MaskedText),
    sa.Column("sent", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("issue_id", "subscriber_id"),
)


runs = sa.Table(
    "runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow", sa.String(32), nullable=False),
    sa.Column("target", sa.String(64), nullable=False, server_default=""),
    sa.Column("started", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished", sa.DateTime(timezone=True)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("counts", MaskedText, nullable=False, server_default="{}"),
    # Where it ran: "prefect" (a Prefect flow run) or "in-process" (a one-off command, no Prefect API).
    sa.Column("mode", sa.String(16), nullable=False, server_default="prefect"),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
)


# Who holds each run lock (see locks.py): the holder's process, so that others can wait for it,
# name it, and take over from it once it is gone.
locks = sa.Table(
    "locks", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("boot", sa.String(64)),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("pid_start", sa.String(32)),
    sa.Column("started", sa.DateTime(timezone=True), nullable=False),
    sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.Integer),
)


# Side effects done once (campaigns, WebSub pings, an output's posts): each keyed thing is claimed
# under a lease before the effect and recorded after it, so a rerun neither repeats nor loses it
# (see ledger.py). ``ref`` is the remote thing's id, such as a campaign's.
ledger = sa.Table(
    "ledger", metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("ref", sa.String(255)),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    sa.Column("done", sa.DateTime(timezone=True)),
    sa.Column("error", MaskedText),
)


# Something operators were told about: open until it is resolved, so it is alerted only once.
incidents = sa.Table(
    "incidents", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("opened", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", MaskedText, nullable=False, server_default=""),
    sa.Column("alerted", sa.DateTime(timezone=True)),
    sa.Column("alert_error", MaskedText),
    sa.Column("closed", sa.DateTime(timezone=True)),
    sa.Column("open_key", sa.String(100), unique=True),
)
