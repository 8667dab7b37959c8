"""The small web app behind ``feedletter web``: subscribe, confirm, one-click unsubscribe, the archive.

Routes:

- ``POST /unsubscribe/{token}``: unsubscribes at once and answers 200. Mail providers send it for
  RFC 8058 one-click (body ``List-Unsubscribe=One-Click``); the confirm page's button sends it too.
  The signed token is the authority, so the body's encoding (urlencoded or multipart) does not matter.
- ``GET /unsubscribe/{token}``: a page asking to confirm, with an Unsubscribe button. It changes
  nothing, because mail scanners open every link in a message.
- ``GET|POST /unsubscribe/test-send``: the link of test sends and previews; says nobody was unsubscribed.
- ``GET /confirm/{token}``: activates a pending subscriber (double opt-in).
- ``GET /subscribe?newsletter=NAME`` shows the newsletter's form (title, logo, description, schedule);
  without ``newsletter``, the only newsletter's, or a choice of them. ``POST /subscribe`` (``email``,
  ``newsletter``, optional ``name``) records a pending subscriber and mails the confirm link.
- everything else: the static archive from ``site.archive_dir``.

Pages come from the ``web/`` templates (staff may override them like the archive's). A refused
request is a whole page with the right status and links on: a bad address shows the form again,
filled in; an unknown newsletter lists the known ones.

Token URLs are never cached and never leak as a Referer.
"""

from __future__ import annotations

import contextlib
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feedletter import subscribers
from feedletter.config import Config
from feedletter.errors import ConfigError, DeliveryError
from feedletter.publish.about import About
from feedletter.publish.about import about as describe
from feedletter.publish.archive import environment
from feedletter.store import Store
from feedletter.subscribers import SubscriberError
from feedletter.web import optin

MAX_FORM_BYTES = 16 * 1024
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
# Where each route's page sits below the app's root, as a prefix for its relative links.
_AT_ROOT, _ONE_DOWN = "", "../"


def content_security_policy(config: Config) -> str:
    """Nothing but inline styles, forms to ourselves and the newsletters' logos."""
    logos = sorted({f"{urlsplit(n.logo.url).scheme}://{urlsplit(n.logo.url).netloc}"
                    for n in config.newsletters if n.logo})
    images = f"img-src {' '.join(logos)}; " if logos else ""
    return (f"default-src 'none'; style-src 'unsafe-inline'; {images}form-action 'self'; "
            "frame-ancestors 'none'")


class WebApp:
    """The endpoints, bound to a config and a store (database calls run in a worker thread)."""

    def __init__(self, config: Config, store: Store,
                 mailers: optin.MailerFactory = optin.confirmation_mailer) -> None:
        self.config = config
        self.store = store
        self.mailers = mailers
        self.env = environment(config)
        self.headers = {**_HEADERS, "Content-Security-Policy": content_security_policy(config)}
        self.newsletters = {n.name: describe(config, n) for n in config.newsletters}

    def _page(self, template: str, heading: str, *, root: str, status: int = 200, about: About | None = None,
              back: list[tuple[str, str]] | None = None, lines: list[str] | None = None,
              **context: Any) -> HTMLResponse:
        home = root or "./"
        if back is None:
            back = [(f"{root}{about.name}/", f"Read past issues of {about.title}")] if about else []
            back.append((home, "All newsletters"))
        document = self.env.get_template(template).render(heading=heading, root=root, about=about, back=back,
                                                          lines=lines or [], **context)
        return HTMLResponse(document, status_code=status, headers=self.headers)

    def _title(self, newsletter: str) -> str:
        found = self.newsletters.get(newsletter)
        return found.title if found else newsletter

    def _form(self, newsletter: About, *, status: int = 200, problem: str = "", email: str = "",
              name: str = "") -> HTMLResponse:
        heading = "Check the address" if problem else newsletter.title
        return self._page("web/subscribe.html.j2", heading, root=_AT_ROOT, status=status, about=newsletter,
                          problem=problem, email=email, name=name)

    def _choose(self, heading: str, lines: list[str], status: int) -> HTMLResponse:
        return self._page("web/choose.html.j2", heading, root=_AT_ROOT, status=status,
                          choices=list(self.newsletters.values()), lines=lines)

    def _unknown(self, name: str) -> HTMLResponse:
        return self._choose("Unknown newsletter", [f"There is no newsletter called “{name}”."]
                            + (["These are the ones you can subscribe to:"] if self.newsletters else []), 404)

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        try:
            person = await run_in_threadpool(subscribers.from_token, self.store, token, "unsubscribe")
        except SubscriberError as exc:
            return self._bad_link(exc)
        title, newsletter = self._title(person.newsletter), self.newsletters.get(person.newsletter)
        if person.status == "unsubscribed":
            return self._unsubscribed(person.email, title, newsletter, "no longer receives")
        return self._page("web/unsubscribe.html.j2", f"Unsubscribe from {title}?", root=_ONE_DOWN,
                          about=newsletter, back=[(f"../{person.newsletter}/", "No, keep my subscription")],
                          lines=[f"Nothing has changed yet. Press the button to stop sending {title} "
                                 f"to {person.email}."])

    async def unsubscribe(self, request: Request) -> Response:
        try:
            person = await run_in_threadpool(subscribers.unsubscribe, self.store, request.path_params["token"])
        except SubscriberError as exc:
            return self._bad_link(exc)
        return self._unsubscribed(person.email, self._title(person.newsletter),
                                  self.newsletters.get(person.newsletter), "will receive no more issues of")

    def _unsubscribed(self, email: str, title: str, newsletter: About | None, words: str) -> HTMLResponse:
        back = [(f"../subscribe?newsletter={newsletter.name}", "Subscribe again")] if newsletter else []
        return self._page("web/page.html.j2", "You are unsubscribed", root=_ONE_DOWN, about=newsletter,
                          back=[*back, ("../", "All newsletters")], lines=[f"{email} {words} {title}."])

    async def confirm(self, request: Request) -> Response:
        try:
            person = await run_in_threadpool(subscribers.confirm, self.store, request.path_params["token"])
        except SubscriberError as exc:
            return self._bad_link(exc)
        return self._page("web/page.html.j2", "Subscription confirmed", root=_ONE_DOWN,
                          about=self.newsletters.get(person.newsletter),
                          lines=[f"{person.email} will receive {self._title(person.newsletter)}. Welcome!"])

    async def subscribe_form(self, request: Request) -> Response:
        asked = request.query_params.get("newsletter")
        if asked is not None and asked in self.newsletters:
            return self._form(self.newsletters[asked])
        if asked:
            return self._unknown(asked)
        if not self.newsletters:
            return self._page("web/page.html.j2", "No newsletters", root=_AT_ROOT, status=404,
                              lines=["There is nothing to subscribe to yet."])
        if len(self.newsletters) == 1:
            return self._form(next(iter(self.newsletters.values())))
        return self._choose("Subscribe", ["Which newsletter would you like?"], 200)

    async def subscribe(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_FORM_BYTES:
            return self._page("web/page.html.j2", "Too large", root=_AT_ROOT, status=413,
                              back=[("subscribe", "Back to the form")], lines=["That form was too large."])
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._page("web/page.html.j2", "Unsupported form", root=_AT_ROOT, status=415,
                              back=[("subscribe", "Back to the form")],
                              lines=["Send the form as application/x-www-form-urlencoded."])
        form = {k: v[0] for k, v in parse_qs((await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace"),
                                             keep_blank_values=True).items()}
        email, name, newsletter = form.get("email", "").strip(), form.get("name", "")[:200], form.get("newsletter", "")
        try:
            await run_in_threadpool(optin.subscribe, self.config, self.store, newsletter, email, name,
                                    mailers=self.mailers)
        except ConfigError:
            return self._unknown(newsletter)
        except SubscriberError:
            return self._form(self.newsletters[newsletter], status=400, email=email, name=name,
                              problem=f"“{email}” is not a valid email address." if email
                              else "Please enter an email address.")
        except DeliveryError:
            return self._page("web/page.html.j2", "Please try again later", root=_AT_ROOT, status=503,
                              about=self.newsletters[newsletter],
                              back=[(f"subscribe?newsletter={newsletter}", "Back to the form")],
                              lines=["We could not send the confirmation email just now."])
        # The same answer whether or not the address was already subscribed: the form must not
        # tell strangers who reads what.
        return self._page("web/page.html.j2", "Check your inbox", root=_AT_ROOT, about=self.newsletters[newsletter],
                          lines=[f"If {email} is not subscribed yet, a message with a confirmation link is on "
                                 "its way."])

    async def test_send_unsubscribe(self, request: Request) -> Response:
        """The unsubscribe link of a test send or preview (``subscribers.TEST_TOKEN``): it names nobody."""
        del request
        return self._page("web/page.html.j2", "This was a test send", root=_ONE_DOWN,
                          lines=["Nobody was unsubscribed: this link came in a test send or preview of the "
                                 "newsletter. In a real issue, it unsubscribes the reader it was sent to."])

    def _bad_link(self, exc: SubscriberError) -> Response:
        if exc.thing != "token":  # about the person, e.g. a confirm link used after unsubscribing
            status, line = 409, f"{exc.thing} {exc.problem}."
        elif "no such subscriber" in exc.problem:
            status, line = 404, "This address is no longer on our list."
        else:
            reason = "has expired" if exc.problem == "expired" else "is not valid"
            status, line = 400, f"The link {reason}. Please use the link from your most recent email."
        return self._page("web/page.html.j2", "This link does not work", root=_ONE_DOWN, status=status,
                          lines=[line])


def create_app(config: Config, store: Store, *,
               mailers: optin.MailerFactory = optin.confirmation_mailer) -> Starlette:
    web = WebApp(config, store, mailers)
    archive = config.resolve(config.site.archive_dir)
    # StaticFiles fails every request when its folder is missing; the archive may simply not be
    # written yet, so make the folder and let it answer 404 until then.
    with contextlib.suppress(OSError):
        archive.mkdir(parents=True, exist_ok=True)
    return Starlette(routes=[
        Route(f"/unsubscribe/{subscribers.TEST_TOKEN}", web.test_send_unsubscribe, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", web.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", web.unsubscribe, methods=["POST"]),
        Route("/confirm/{token}", web.confirm, methods=["GET"]),
        Route("/subscribe", web.subscribe_form, methods=["GET"]),
        Route("/subscribe", web.subscribe, methods=["POST"]),
        Mount("/", StaticFiles(directory=archive, html=True, check_dir=False), name="archive"),
    ])
