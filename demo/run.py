"""`make demo`: serve the demo site and a mail server on loopback, run both flows, say where things went.

Everything the demo writes lives under build/demo/, which is wiped at the start of each run.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "demo"
SITE_PORT, SMTP_PORT = 8089, 8025


def main() -> int:
    from feedletter.sitehost import port_free

    for port in (SITE_PORT, SMTP_PORT):
        if not port_free(port):
            print(f"demo: port {port} on 127.0.0.1 is in use; stop what holds it and run `make demo` again",
                  file=sys.stderr)
            return 1
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    os.environ.update({
        "FEEDLETTER_SMTP_URL": f"smtp://127.0.0.1:{SMTP_PORT}",
        "PREFECT_HOME": str(ROOT / "build" / "prefect"),
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    })
    from feedletter.tokens import DEMO_ENV, DEMO_SECRET

    # The demo's secret is published here, so it is refused anywhere FEEDLETTER_DEMO is not 1.
    os.environ.setdefault("FEEDLETTER_SECRET", DEMO_SECRET)
    os.environ[DEMO_ENV] = "1"
    os.chdir(ROOT)

    from feedletter import subscribers
    from feedletter.config import load_config
    from feedletter.issue.digest import prepare_digest, write_preview
    from feedletter.mailsink import MailSink
    from feedletter.sitehost import SiteHost
    from feedletter.store import Store

    config = load_config(ROOT / "sources.yaml")
    newsletter = config.newsletters[0]
    started = time.monotonic()
    with SiteHost(ROOT / "demo" / "site", port=SITE_PORT) as site, \
            MailSink(port=SMTP_PORT, save_dir=OUT / "mail") as sink:
        store = Store.open(config.store_url())
        result = subscribers.import_csv(store, newsletter.name,
                                        (ROOT / "demo" / "subscribers.csv").read_text(encoding="utf-8"))
        print(f"demo site   {site.base}  ({len(config.sources)} feeds)     mail server  {sink.url}")
        print(f"subscribers {result.added} imported into {newsletter.name}")
        print("starting Prefect (the first run creates its local database: ~20 s) …", flush=True)
        from feedletter_flows.digest import digest_flow
        from feedletter_flows.gather import gather_flow

        first = gather_flow(config_path="sources.yaml")
        # The same post under another feed's URL (a carrier), and near-identical copies (stored, marked).
        dups = first.carried + first.near_duplicates
        print(f"gather #1   {first.fetched} sources fetched · {first.new} new articles · "
              f"{dups} duplicate{'' if dups == 1 else 's'} · {first.extracted} full texts extracted · "
              f"{first.stories_new} stories")
        second = gather_flow(config_path="sources.yaml")
        print(f"gather #2   {second.not_modified} not modified (HTTP 304) · {second.new} new articles")
        prepared = prepare_digest(config, store, newsletter)
        if prepared is None:
            print("demo: no stories to send", file=sys.stderr)
            return 1
        preview = write_preview(prepared, OUT / "preview")
        sent = digest_flow(newsletter=newsletter.name, config_path="sources.yaml")
        store.close()
        received = sink.received
        print(f"digest      \"{sent.subject}\" · {sent.stories} stories · {sent.sent} sent · "
              f"the mail server received {len(received)}")
    archive = OUT / "public" / newsletter.name
    rel = lambda p: os.path.relpath(p, ROOT)  # noqa: E731
    print(f"email       {rel(sorted((OUT / 'mail').glob('*.eml'))[0])}  (one .eml per subscriber)")
    print(f"preview     {rel(preview[0])}  (+ digest.txt, digest.mjml, digest.json)")
    print(f"feeds       {rel(archive / 'rss.xml')}  (+ atom.xml, feed.json; stories/: a feed, a page a story)")
    print(f"archive     {rel(archive / 'index.html')}")
    print(f"done in {time.monotonic() - started:.1f} s; servers stopped")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
