"""One error tree. Messages name the stage and the thing: ``fetch: https://x/feed.xml: HTTP 503``.

A message never shows a secret: each error masks its own (``feedletter.redact``), as it is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from feedletter.redact import mask, mask_exception


class FeedletterError(Exception):
    """Base of every error feedletter raises on purpose."""

    stage = "feedletter"

    def __init__(self, thing: str, problem: str) -> None:
        self.thing = thing = mask(thing)
        self.problem = problem = mask(problem)
        super().__init__(f"{self.stage}: {thing}: {problem}" if thing else f"{self.stage}: {problem}")


class ConfigError(FeedletterError):
    stage = "config"

    def __init__(self, problems: list[str] | str, thing: str = "") -> None:
        self.problems = [mask(p) for p in ([problems] if isinstance(problems, str) else problems)]
        super().__init__(thing, "; ".join(self.problems))


class FetchError(FeedletterError):
    stage = "fetch"

    def __init__(self, thing: str, problem: str, *, status: int | None = None,
                 transient: bool = True, retry_after: float | None = None) -> None:
        self.status = status
        self.transient = transient
        self.retry_after = retry_after
        super().__init__(thing, problem)


class ParseError(FeedletterError):
    stage = "parse"


class ExtractError(FeedletterError):
    stage = "extract"


class StoreError(FeedletterError):
    """The store could not be used: busy or unreachable (transient), or damaged (not)."""

    stage = "store"

    def __init__(self, thing: str, problem: str, *, transient: bool = True) -> None:
        super().__init__(thing, problem)
        self.transient = transient


class RenderError(FeedletterError):
    stage = "render"


class DeliveryError(FeedletterError):
    stage = "deliver"

    def __init__(self, thing: str, problem: str, *, transient: bool) -> None:
        self.transient = transient
        super().__init__(thing, problem)


class ProviderUnreachable(DeliveryError):
    """The provider cannot be reached, or will not let us in: a refused connection, a name that does
    not resolve, a TLS failure, a failed login. No message can go to anyone until it is fixed, and no
    recipient is to blame: delivery counts it against no subscriber and pauses after a few in a row."""

    def __init__(self, thing: str, problem: str, *, transient: bool = True) -> None:
        super().__init__(thing, problem, transient=transient)


EXIT_PAUSED = 69  # EX_UNAVAILABLE: the provider was unreachable; the next run resumes the issue


class DeliveryPaused(FeedletterError):
    """A digest run stopped sending because its provider was unreachable: the issue is paused, its
    messages stay queued, and the next digest run resumes it. The message is the run's report line
    (``digest weekly: issue 3 paused: SMTP unreachable (connection refused) after 3 tries; …``)."""

    stage = "digest"
    exit_code = EXIT_PAUSED

    def __init__(self, newsletter: str, line: str) -> None:
        super().__init__(newsletter, line)
        self.line = line

    def __str__(self) -> str:
        return self.line


class SyndicateError(FeedletterError):
    stage = "syndicate"


class SubscriberError(FeedletterError):
    """A subscriber or a link for one: a bad address, a forged or expired token, a weak secret."""

    stage = "subscribers"


class MaskedError(FeedletterError):
    """Another exception whose message showed a secret: its type and message, masked."""

    def __init__(self, problem: str, *, transient: bool) -> None:
        self.transient = transient
        super().__init__("", problem)

    @classmethod
    def of(cls, exc: BaseException) -> MaskedError:
        return cls(f"{type(exc).__name__}: {exc}", transient=is_transient(exc))


def is_transient(exc: BaseException) -> bool:
    """Whether another try may pass: transient fetch/delivery errors, I/O, timeouts, a busy store.

    Bad config, permanent refusals, our own parse/render errors and bugs fail the same way again.
    """
    import sqlalchemy as sa  # the store's driver errors; imported here to keep this module light

    if isinstance(exc, ConfigError):
        return False
    if isinstance(exc, FetchError | DeliveryError | MaskedError):
        return exc.transient
    if isinstance(exc, StoreError):
        return exc.transient
    return isinstance(exc, OSError | TimeoutError | sa.exc.OperationalError)


@contextmanager
def masked_errors() -> Iterator[None]:
    """Let no exception out with a secret in its message (Prefect stores ``str(exc)`` as the run's
    state message). One whose text cannot be cleaned in place (a message built from other
    objects) is replaced by a ``MaskedError`` that says the same, masked, and keeps its transience."""
    try:
        yield
    except Exception as exc:
        if mask_exception(exc):
            raise
        raise MaskedError.of(exc) from None
