"""The small web app behind ``feedletter web``: subscribe, confirm, one-click unsubscribe, the archive.

Routes:

- ``POST /unsubscribe/{token}``: unsubscribes at once and answers 200. Mail providers send it for
  RFC 8058 one-click (body ``List-Unsubscribe=One-Click``); the confirm page's button sends it too.
  The signed token is the authority, so the body's encoding (urlencoded or multipart) does not matter.
- ``GET /unsubscribe/{token}``: a page asking to confirm, with an Unsubscribe button. It changes
  nothing, because mail scanners open every link in a message.
- ``GET|POST /unsubscribe/test-send``: the link of test sends and previews; says nobody was unsubscribed.
- ``GET /confirm/{token}``: a page with a Confirm button, which POSTs to the same address; only that
  POST activates the subscriber (double opt-in). A confirm link works once.
- ``GET /subscribe?newsletter=NAME`` shows the newsletter's form (title, logo, description, schedule);
  without ``newsletter``, the only newsletter's, or a choice of them. ``POST /subscribe`` (``email``,
  ``newsletter``, optional ``name``) queues the request within the rate limits (``optin.request``);
  a background thread mails the confirm link. The answer is the same page whatever happened.
- everything else: the static archive from ``site.archive_dir``.

Form posts from other sites are refused (``Origin``/``Referer``), except the RFC 8058 one-click
body, which mail providers post from anywhere. Bodies are cut off at MAX_FORM_BYTES as they stream
in; redirects point at ``site.base_url``, never at the ``Host`` header (see :mod:`feedletter.web.guards`).

Pages come from the ``web/`` templates (staff may override them like the archive's). A refused
request is a whole page with the right status and links on: a bad address shows the form again,
filled in; an unknown newsletter lists the known ones.

Token URLs are never cached and never leak to other sites as a Referer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from feedletter import subscribers
from feedletter.config import Config
from feedletter.errors import ConfigError
from feedletter.models import Subscriber
from feedletter.publish.about import About
from feedletter.publish.about import about as describe
from feedletter.publish.archive import environment
from feedletter.store import Store
from feedletter.subscribers import SubscriberError
from feedletter.web import guards, optin

MAX_FORM_BYTES = 16 * 1024
# same-origin, not no-referrer: with no-referrer, browsers post our own forms with "Origin: null".
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "same-origin", "X-Robots-Tag": "noindex",
            "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}
# Where each route's page sits below the app's root, as a prefix for its relative links.
_AT_ROOT, _ONE_DOWN = "", "../"


def content_security_policy(config: Config) -> str:
    """Nothing but inline styles, forms to ourselves and the newsletters' logos."""
    logos = sorted({f"{urlsplit(n.logo.url).scheme}://{urlsplit(n.logo.url).netloc}"
                    for n in config.newsletters if n.logo})
    images = f"img-src {' '.join(logos)}; " if logos else ""
    return (f"default-src 'none'; style-src 'unsafe-inline'; {images}form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")


class WebApp:
    """The endpoints, bound to a config and a store (database calls run in a worker thread)."""

    def __init__(self, config: Config, store: Store,
                 mailers: optin.MailerFactory = optin.confirmation_mailer) -> None:
        self.config = config
        self.store = store
        self.mailers = mailers
        self.origin = guards.origin(config.site.base_url)
        self.sender = optin.ConfirmationSender(config, store, mailers)
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
        # The token is the authority; a cross-site post must at least be the RFC 8058 one-click one,
        # which mail providers send from their own sites.
        if guards.cross_site(request, self.origin) and not _one_click(await guards.read_body(request, MAX_FORM_BYTES)):
            return self._cross_site(_ONE_DOWN, request.path_params["token"])
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

    async def confirm_page(self, request: Request) -> Response:
        try:
            person = await run_in_threadpool(subscribers.confirmation, self.store, request.path_params["token"])
        except SubscriberError as exc:
            return self._bad_link(exc)
        if person.status == "active":
            return self._confirmed(person)
        title = self._title(person.newsletter)
        return self._page("web/confirm.html.j2", f"Confirm your subscription to {title}", root=_ONE_DOWN,
                          about=self.newsletters.get(person.newsletter),
                          lines=[f"Press the button to receive {title} at {person.email}."])

    async def confirm(self, request: Request) -> Response:
        if guards.cross_site(request, self.origin):
            return self._cross_site(_ONE_DOWN, request.path_params["token"])
        if await guards.read_body(request, MAX_FORM_BYTES) is None:
            return self._too_large(_ONE_DOWN, request.path_params["token"])
        try:
            person = await run_in_threadpool(subscribers.confirm, self.store, request.path_params["token"])
        except SubscriberError as exc:
            return self._bad_link(exc)
        return self._confirmed(person)

    def _confirmed(self, person: Subscriber) -> HTMLResponse:
        return self._page("web/page.html.j2", "Subscription confirmed", root=_ONE_DOWN,
                          about=self.newsletters.get(person.newsletter),
                          lines=[f"{person.email} will receive {self._title(person.newsletter)}. Welcome!"])

    def _cross_site(self, root: str, form: str) -> HTMLResponse:
        """``form``: the form's address, relative to the page (the token itself, for a link's page)."""
        return self._page("web/page.html.j2", "Sent from another site", root=root, status=403,
                          back=[(form, "Go to the form"), (root or "./", "All newsletters")],
                          lines=["This form was sent from a page on another site, so nothing was done. "
                                 "If it was you, use the form on this site."])

    def _too_large(self, root: str, form: str) -> HTMLResponse:
        return self._page("web/page.html.j2", "Too large", root=root, status=413,
                          back=[(form, "Back to the form")], lines=["That form was too large."])

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
        if guards.cross_site(request, self.origin):
            return self._cross_site(_AT_ROOT, "subscribe")
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return self._page("web/page.html.j2", "Unsupported form", root=_AT_ROOT, status=415,
                              back=[("subscribe", "Back to the form")],
                              lines=["Send the form as application/x-www-form-urlencoded."])
        body = await guards.read_body(request, MAX_FORM_BYTES)
        if body is None:
            return self._too_large(_AT_ROOT, "subscribe")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        email, name, newsletter = form.get("email", "").strip(), form.get("name", "")[:200], form.get("newsletter", "")
        client = request.client.host if request.client else ""
        try:
            await run_in_threadpool(optin.request, self.config, self.store, newsletter, email, name, client=client)
        except ConfigError:
            return self._unknown(newsletter)
        except SubscriberError:
            return self._form(self.newsletters[newsletter], status=400, email=email, name=name,
                              problem=f"“{email}” is not a valid email address." if email
                              else "Please enter an email address.")
        self.sender.wake()
        # The same answer whether the address was new, waiting, subscribed or over a limit: the form
        # must not tell strangers who reads what.
        return self._page("web/page.html.j2", "Check your inbox", root=_AT_ROOT, about=self.newsletters[newsletter],
                          lines=[f"If {email} is not subscribed yet, a message with a confirmation link is on "
                                 "its way. Nothing after an hour? Look in the spam folder, or ask again later."])

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


def _one_click(body: bytes | None) -> bool:
    """Whether a body is RFC 8058's ``List-Unsubscribe=One-Click``, urlencoded or as a multipart field."""
    if body is None:
        return False
    if parse_qs(body.decode("utf-8", "replace")).get("List-Unsubscribe") == ["One-Click"]:
        return True
    return b'name="List-Unsubscribe"' in body and b"\r\n\r\nOne-Click\r\n" in body


def create_app(config: Config, store: Store, *,
               mailers: optin.MailerFactory = optin.confirmation_mailer, send_confirmations: bool = True) -> Starlette:
    """The app; with ``send_confirmations``, its lifespan runs the thread that mails confirm links."""
    web = WebApp(config, store, mailers)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if send_confirmations:
            web.sender.start()
        try:
            yield
        finally:
            if send_confirmations:
                web.sender.stop()

    archive = config.resolve(config.site.archive_dir)
    # StaticFiles fails every request when its folder is missing; the archive may simply not be
    # written yet, so make the folder and let it answer 404 until then.
    with contextlib.suppress(OSError):
        archive.mkdir(parents=True, exist_ok=True)
    return Starlette(routes=[
        Route(f"/unsubscribe/{subscribers.TEST_TOKEN}", web.test_send_unsubscribe, methods=["GET", "POST"]),
        Route("/unsubscribe/{token}", web.unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", web.unsubscribe, methods=["POST"]),
        Route("/confirm/{token}", web.confirm_page, methods=["GET"]),
        Route("/confirm/{token}", web.confirm, methods=["POST"]),
        Route("/subscribe", web.subscribe_form, methods=["GET"]),
        Route("/subscribe", web.subscribe, methods=["POST"]),
        Mount("/", StaticFiles(directory=archive, html=True, check_dir=False), name="archive"),
    ], middleware=[Middleware(guards.SafeResponses, base_url=config.site.base_url, defaults=guards.ARCHIVE_HEADERS)],
        lifespan=lifespan)
