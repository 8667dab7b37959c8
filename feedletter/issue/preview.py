"""See the next issue before it goes out: the exact message, a test send, a desktop/mobile page.

Nothing here records anything: no issue is saved, no outbox row written, no story marked used,
so the real issue that follows carries the same stories. The messages' unsubscribe link carries the
test token, which unsubscribes nobody (the web app answers it with a page saying it was a test). A
test send's "view in browser" link leads to a copy of the issue written for it under the archive
(``_preview/NEWSLETTER/KEY/``, KEY random; only the latest test's copy is kept), served like the
archive is, e.g. by ``feedletter web``.

The preview page is served by :class:`PreviewServer` (``feedletter preview``); the page itself
comes from :func:`preview_routes`, which another web app can mount as it is.
"""

from __future__ import annotations

import html
import re
import secrets
import shutil
import threading
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from jinja2 import Environment
from jinja2 import select_autoescape as _autoescape

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.deliver import make_mailer
from feedletter.deliver.message import build_message, sender_domain
from feedletter.errors import FeedletterError
from feedletter.issue.digest import Prepared, prepare_again, prepare_digest
from feedletter.models import Subscriber
from feedletter.store import Store
from feedletter.subscribers import TEST_TOKEN

PREVIEW_ADDRESS = "preview@example.invalid"
PREVIEW_DIR = "_preview"  # under the archive; no newsletter's name starts with "_"
WIDTHS = {"desktop": 600, "mobile": 375}
# The headers a reader's mail client shows or acts on; Date and Message-ID change with every send.
SHOWN_HEADERS = ("From", "To", "Subject", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post", "List-Id",
                 "Precedence", "Auto-Submitted", "Content-Type")


def next_issue(config: Config, store: Store, newsletter: Newsletter, *, web_url: str | None = None,
               again: bool = False) -> Prepared:
    """The next issue of ``newsletter``; with ``again``, when nothing new would make one, the last
    issue made again from its stories (:func:`~feedletter.issue.digest.prepare_again`), so that a
    template can be previewed right after an issue went out."""
    prepared = prepare_digest(config, store, newsletter, web_url=web_url)
    if prepared is None and again:
        prepared = prepare_again(config, store, newsletter, web_url=web_url)
    if prepared is None:
        raise FeedletterError(newsletter.name, "nothing to send: " + _why_nothing(store, newsletter))
    return prepared


def again_note(prepared: Prepared) -> str | None:
    """What staff are told of an issue made again: that it is not the next issue, and why."""
    if not prepared.again:
        return None
    return (f"nothing new to send: this is issue {prepared.number} again, made from its stories "
            "with the templates and settings of now")


def _why_nothing(store: Store, newsletter: Newsletter) -> str:
    """Why ``newsletter`` has no next issue, as staff can act on it."""
    from feedletter.stories.work import has_stories

    if not has_stories(store):
        return "the store holds no stories yet (run `feedletter gather` first)"
    need = newsletter.select.min_stories
    what = "no new story matches" if need <= 1 else f"fewer than {need} new stories match"
    return f"{what} the newsletter's select (its sources, tags and since)"


def _unsubscribe(config: Config) -> str:
    return f"{config.site.base_url.rstrip('/')}/unsubscribe/{TEST_TOKEN}"


def issue_message(config: Config, prepared: Prepared, newsletter: Newsletter, *, to: str = PREVIEW_ADDRESS,
                  test: bool = False) -> EmailMessage:
    """The message one subscriber would get, built by the same code the real send uses."""
    domain = sender_domain(newsletter.sender)
    return build_message(sender=newsletter.sender, subscriber=Subscriber(0, newsletter.name, to),
                         subject=prepared.rendered.subject, html=prepared.rendered.html,
                         text=prepared.rendered.text, message_id=f"<fl.test.{uuid.uuid4().hex}@{domain}>",
                         unsubscribe_url=_unsubscribe(config), list_id=newsletter.name,
                         reply_to=newsletter.reply_to, test=test)


def message_headers(msg: EmailMessage) -> dict[str, str]:
    return {name: str(msg[name]) for name in SHOWN_HEADERS if msg[name] is not None}


@dataclass(frozen=True)
class SentTest:
    """A test send: the message, and its "view in browser" page (URL and file)."""

    message: EmailMessage
    web_url: str
    page: Path
    note: str | None = None  # the issue was made again (see again_note)


def send_test(config: Config, store: Store, newsletter: Newsletter, to: str) -> SentTest:
    """Send the next issue to ``to`` with ``[TEST]`` in the subject; record nothing.

    Its "view in browser" link leads to a copy of the issue written under the archive first.
    """
    if "@" not in to or any(c.isspace() for c in to):
        raise FeedletterError("send-test", f"{to!r} is not an email address")
    key = secrets.token_urlsafe(12)  # unguessable: the copy shows stories before the issue is out
    web_url = f"{config.site.base_url.rstrip('/')}/{PREVIEW_DIR}/{newsletter.name}/{key}/"
    prepared = next_issue(config, store, newsletter, web_url=web_url, again=True)
    msg = issue_message(config, prepared, newsletter, to=to, test=True)
    page = write_web_copy(config, newsletter, key, msg, prepared.number, again=prepared.again)
    mailer = make_mailer(config, newsletter)
    try:
        # A test send has no outbox row to record, so the record step always agrees.
        mailer.send(msg, newsletter.sender, to, lambda: True)
    finally:
        mailer.close()
    return SentTest(msg, web_url, page, again_note(prepared))


def write_web_copy(config: Config, newsletter: Newsletter, key: str, msg: EmailMessage, number: int, *,
                   again: bool = False) -> Path:
    """Write the HTML of a test message as ``_preview/NEWSLETTER/KEY/index.html`` under the archive,
    marked as a test and kept out of search engines; earlier tests' copies are removed."""
    part = msg.get_body(("html",))
    assert part is not None  # build_message always writes both parts
    banner = (f'<div style="background:#fff4ce;color:#222;font:14px sans-serif;padding:8px;text-align:center">'
              f"Test send of {html.escape(newsletter.title)} issue {number}{' again' if again else ''}: "
              "not sent to subscribers</div>")
    page = re.sub(r"(<body\b[^>]*>)", lambda m: m.group(1) + banner, str(part.get_content()), count=1)
    page = re.sub(r"(<head\b[^>]*>)", lambda m: m.group(1) + '<meta name="robots" content="noindex">', page,
                  count=1)
    folder = config.resolve(config.site.archive_dir) / PREVIEW_DIR / newsletter.name
    try:
        for old in folder.iterdir() if folder.is_dir() else ():
            if old.is_dir() and old.name != key:
                shutil.rmtree(old)
        (folder / key).mkdir(parents=True, exist_ok=True)
        (folder / key / "index.html").write_text(page, encoding="utf-8")
    except OSError as exc:
        raise FeedletterError("send-test", f"{folder}: cannot write the issue's web copy: "
                                           f"{exc.strerror or exc}") from None
    return folder / key / "index.html"


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {{ subject }}</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 16px; background: #eef0f3; color: #222; }
 .frames { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
 figure { margin: 0; } figcaption { margin: 0 0 6px; font-weight: 600; }
 iframe { border: 1px solid #bbb; background: #fff; height: 1400px; }
 table { border-collapse: collapse; margin: 8px 0 16px; } td { padding: 2px 8px; vertical-align: top; }
 td:first-child { color: #666; white-space: nowrap; }
</style></head><body>
<h1>{{ newsletter }} · issue {{ number }} (not sent)</h1>
{% if note %}<p>ℹ {{ note }}</p>{% endif %}
<table>{% for name, value in headers.items() %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>{% endfor %}</table>
{% for problem in checks %}<p>⚠ {{ problem }}</p>{% endfor %}
<p><a href="email.txt">plain-text part</a> · <a href="email.html">HTML alone</a></p>
<div class="frames">
{% for label, width in widths.items() %}<figure><figcaption>{{ label }} · {{ width }} px</figcaption>
<iframe src="email.html" width="{{ width }}" title="{{ label }} preview"></iframe></figure>
{% endfor %}</div>
</body></html>
"""


def preview_routes(config: Config, prepared: Prepared, newsletter: Newsletter) -> dict[str, tuple[str, bytes]]:
    """The preview's pages by path (``index.html``, ``email.html``, ``email.txt``): content type, body."""
    msg = issue_message(config, prepared, newsletter)
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and text is not None  # build_message always writes both parts
    env = Environment(autoescape=_autoescape(default_for_string=True))
    page = env.from_string(PAGE).render(subject=prepared.rendered.subject, newsletter=newsletter.title,
                                        number=prepared.number, headers=message_headers(msg),
                                        checks=prepared.checks, widths=WIDTHS, note=again_note(prepared))
    return {"index.html": ("text/html; charset=utf-8", page.encode()),
            "email.html": ("text/html; charset=utf-8", str(html.get_content()).encode()),
            "email.txt": ("text/plain; charset=utf-8", str(text.get_content()).encode())}


class PreviewServer:
    """The preview pages on 127.0.0.1, in a background thread."""

    def __init__(self, routes: dict[str, tuple[str, bytes]], *, port: int = 0) -> None:
        self.routes = routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = urlsplit(self.path).path.strip("/") or "index.html"
                found = routes.get(path)
                if found is None:
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                ctype, body = found
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                del format, args

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="preview", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> PreviewServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
