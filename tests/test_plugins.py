"""Providers and summarizers are registered, not listed: a new one is its own module and nothing else.

Here the module is the test itself: it registers a throwaway provider (and summarizer), and the
config file, make_mailer and the summarize stage take it like a built-in, with no other edit.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from email.message import EmailMessage

import pytest
from pydantic import Field

from feedletter.config import Config, parse_config
from feedletter.config_fields import Settings
from feedletter.config_newsletters import Newsletter
from feedletter.deliver import make_mailer
from feedletter.deliver.message import Outgoing
from feedletter.deliver.providers import listmonk, mailchimp
from feedletter.issue.placeholders import PLACEHOLDERS
from feedletter.plugins import PROVIDERS, SUMMARIZERS, ProviderEntry, SummarizerEntry
from feedletter.stories.stages import summarizer_for
from tests.conftest import ROOT


class PigeonSettings(Settings):
    loft: str = "roof"
    birds: int = Field(3, ge=1)


class PigeonMailer:
    name = "pigeon"

    def __init__(self, settings: PigeonSettings) -> None:
        self.settings = settings
        self.sent: list[str] = []

    def send(self, msg: EmailMessage | Outgoing, sender: str, recipient: str, commit: Callable[[], bool]) -> bool:
        if not commit():
            return False
        self.sent.append(recipient)
        return True

    def close(self, *, abort: bool = False) -> None:
        del abort


def _pigeon_mailer(config: Config, newsletter: Newsletter) -> PigeonMailer:
    return PigeonMailer(PIGEON.settings_in(config))


PIGEON = ProviderEntry("pigeon", PigeonSettings, "per-subscriber", _pigeon_mailer)

CONFIG = """\
newsletters:
  - name: weekly
    title: Weekly
    provider: pigeon
providers:
  pigeon: {loft: barn, birds: 5}
"""


@pytest.fixture
def pigeon() -> Iterator[ProviderEntry[PigeonSettings]]:
    PROVIDERS.register(PIGEON)
    yield PIGEON
    PROVIDERS.unregister(PIGEON.name)


def test_a_registered_provider_is_configured_and_built_like_a_built_in(pigeon: ProviderEntry[PigeonSettings]) -> None:
    config, problems = parse_config(CONFIG)
    assert problems == [] and config is not None
    mailer = make_mailer(config, config.newsletter("weekly"))
    assert isinstance(mailer, PigeonMailer)
    assert mailer.settings == PigeonSettings(loft="barn", birds=5)
    assert mailer.send(EmailMessage(), "a@example.com", "b@example.com", lambda: True)
    assert mailer.sent == ["b@example.com"]
    # A file without the section gets the settings' defaults.
    config, _ = parse_config(CONFIG.replace("  pigeon: {loft: barn, birds: 5}\n", "  file: {dir: out}\n"))
    assert config is not None and pigeon.settings_in(config) == PigeonSettings()


def test_a_registered_providers_settings_are_checked_on_their_lines(pigeon: ProviderEntry[PigeonSettings]) -> None:
    _, problems = parse_config(CONFIG.replace("{loft: barn, birds: 5}", "\n    lofty: barn\n    birds: 0"))
    assert [p.format("sources.yaml") for p in problems] == [
        "sources.yaml:7: providers.pigeon.lofty: unknown field 'lofty' (did you mean 'loft'?)",
        "sources.yaml:8: providers.pigeon.birds: must be greater than or equal to 1, not 0"]


def test_an_unknown_provider_is_refused_with_the_registered_names() -> None:
    _, problems = parse_config(CONFIG.replace("pigeon:", "smpt:"))
    assert [p.format("sources.yaml") for p in problems] == [
        "sources.yaml:4: newsletters[0] (weekly).provider: "
        "must be 'file', 'listmonk', 'mailchimp' or 'smtp', not 'pigeon'",
        "sources.yaml:6: providers.smpt: unknown field 'smpt' (did you mean 'smtp'?)"]


def test_the_built_in_providers_are_their_modules() -> None:
    assert {name: PROVIDERS.get(name).kind for name in PROVIDERS.names()} == {
        "file": "per-subscriber", "listmonk": "campaign", "mailchimp": "campaign", "smtp": "per-subscriber"}


@pytest.mark.parametrize("tags", [listmonk.MERGE_TAGS, mailchimp.MERGE_TAGS])
def test_campaign_providers_have_a_merge_tag_for_every_placeholder(tags: dict[str, str]) -> None:
    assert set(tags) == set(PLACEHOLDERS)


class Echo:
    name = version = last_source = "echo"

    def __init__(self, word: str) -> None:
        self.word = word

    def summarize(self, title: str, texts: Sequence[str], *, sentences: int = 3, max_chars: int = 600) -> str:
        return self.word


class EchoSettings(Settings):
    word: str


def test_a_registered_summarizer_is_configured_and_built_like_a_built_in() -> None:
    def echo(config: Config) -> Echo:
        settings = config.stories.section("echo", EchoSettings)
        assert settings is not None
        return Echo(settings.word)

    SUMMARIZERS.register(SummarizerEntry("echo", EchoSettings, echo))
    try:
        config, problems = parse_config("stories: {summarizer: echo, echo: {word: hello}}\n")
        assert problems == [] and config is not None
        assert summarizer_for(config).summarize("t", ["x"]) == "hello"
        _, problems = parse_config("stories: {summarizer: echo}\n")
        assert [p.format("s.yaml") for p in problems] == [
            "s.yaml:1: stories: summarizer: echo needs stories.echo: {word}"]
    finally:
        SUMMARIZERS.unregister("echo")
    _, problems = parse_config("stories: {summarizer: echo}\n")
    assert [p.format("s.yaml") for p in problems] == [
        "s.yaml:1: stories.summarizer: must be 'extractive' or 'llm', not 'echo'"]


def test_reading_a_config_imports_only_the_plugins_it_names() -> None:
    probe = ("import sys\nfrom feedletter.config import parse_config\n"
             "config, problems = parse_config('newsletters: [{name: w, title: W, provider: file}]\\n"
             "providers: {file: {dir: out}}\\n')\nassert not problems, problems\n"
             "print(sorted(m for m in sys.modules\n"
             "             if m.startswith('feedletter.deliver.providers.') or m == 'requests'))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['feedletter.deliver.providers.file']"
