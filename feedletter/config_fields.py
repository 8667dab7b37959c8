"""What every settings model in sources.yaml shares, feedletter's own sections and plug-ins' alike.

A plug-in (a mail provider, a summarizer) declares its settings as a :class:`Settings` subclass and
checks its URLs with :func:`check_http_url`, so that its section of the file reads and fails like
the rest of it; :class:`Sections` finds those sections by the plug-ins' names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

if TYPE_CHECKING:
    from feedletter.plugins import Registry

__all__ = ["Schedule", "Sections", "Settings", "check_http_url", "check_name", "check_patterns", "one_of"]

S = TypeVar("S", bound=BaseModel)

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class Settings(BaseModel):
    """A section of sources.yaml: unknown fields are mistakes, and nothing changes it once read."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def check_http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value!r}")
    if any(c.isspace() for c in value.strip()) or not parts.hostname or ".." in parts.hostname:
        raise ValueError(f"not a valid URL (spaces or an empty host part): {value!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"not a valid URL (bad port): {value!r}") from None
    return value.strip()


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (lower-case letters, digits, '-' and '_')")
    return value


def check_patterns(values: list[str]) -> list[str]:
    for pattern in values:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return values


class Schedule(Settings):
    cron: str
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        # A bare cron line is the likeliest slip: say the form, with a timezone to read it in.
        if isinstance(value, str):
            raise ValueError(f"write it as {{cron: \"{value}\", timezone: Europe/London}} (the cron line "
                             "and the IANA timezone its hours are in; without one, UTC)")
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"cron {value!r} needs 5 fields (minute hour day month weekday)")
        if not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name like Europe/Berlin)") from None
        return value


def one_of(value: str, names: Iterable[str]) -> str:
    """``value`` if it is one of ``names``, else the error pydantic gives for a Literal field."""
    allowed = list(names)
    if value in allowed:
        return value
    quoted = [repr(name) for name in allowed]
    expected = f"{', '.join(quoted[:-1])} or {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)
    raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})


class Sections(BaseModel):
    """A config section whose other keys are plug-ins' settings, each checked by the plug-in's model.

    ``providers:`` has one such key per provider, ``stories:`` one per summarizer with settings
    (``llm``). The registry (``plugins``) says which keys exist as the file is read, so that a
    plug-in registered after import is checked like a built-in. Problems keep their field paths,
    hence their line numbers; any other key is an unknown field, as elsewhere in the file.
    """

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    plugins: ClassVar[Registry[Any]]

    @classmethod
    def section_names(cls) -> list[str]:
        return [name for name in cls.plugins.names() if cls.plugins.get(name).settings is not None]

    @classmethod
    def section_model(cls, name: str) -> type[BaseModel] | None:
        return cls.plugins.get(name).settings if name in cls.plugins else None

    def section(self, name: str, model: type[S]) -> S | None:
        """The plug-in's settings as read from the file; None when the file has no such section."""
        value = (self.model_extra or {}).get(name)
        if value is not None and not isinstance(value, model):
            raise TypeError(f"{type(self).__name__}.{name} holds {type(value).__name__}, not {model.__name__}")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _plugin_sections(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        own_keys = {key for name, field in cls.model_fields.items() for key in (name, field.alias) if key}
        own: dict[str, Any] = {}
        sections: dict[str, Any] = {}
        errors: list[InitErrorDetails] = []
        for key, value in data.items():
            if key in own_keys:
                own[key] = value
                continue
            model = cls.section_model(key)
            if model is None:
                errors.append(_error("extra_forbidden", "Extra inputs are not permitted", (key,), value))
                continue
            try:
                sections[key] = model.model_validate(value)
            except ValidationError as exc:
                errors += [_error(e["type"], e["msg"], (key, *e["loc"]), e["input"]) for e in exc.errors()]
                sections[key] = value  # there, if wrong: checks of the whole section see that it is
        try:
            result = handler({**own, **sections})
        except ValidationError as exc:
            errors = [_error(e["type"], e["msg"], e["loc"], e["input"]) for e in exc.errors()] + errors
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return result


def _error(kind: str, message: str, loc: tuple[str | int, ...], value: Any) -> InitErrorDetails:
    # The message as pydantic wrote it: re-raised from here, pydantic adds the outer path to loc.
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)
