"""An optional summarizer that asks an OpenAI-compatible chat API, falling back to extractive.

Any server speaking ``POST {base_url}/chat/completions`` works (OpenAI, a local llama.cpp or
Ollama, a gateway). The prompt is versioned: the summarizer's ``version`` includes it, so the
store's cache (keyed by content hash, summarizer name and version) misses when the prompt changes.
Any failure — network, timeout, HTTP error, malformed reply — yields the extractive summary
instead, and :attr:`LLMSummarizer.last_source` tells the caller which one it got, so that a
fallback need not be cached as if the model had written it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import requests
from pydantic import Field, field_validator

from feedletter.config_fields import Settings, check_http_url
from feedletter.errors import ConfigError
from feedletter.plugins import SummarizerEntry
from feedletter.redact import secret_env
from feedletter.stories.summarize import ExtractiveSummarizer, Summarizer
from feedletter.text.boilerplate import strip_boilerplate
from feedletter.text.whitespace import truncate_words

if TYPE_CHECKING:
    from feedletter.config import Config

__all__ = ["PROMPT_VERSION", "LLMSummarizer", "Llm"]

log = logging.getLogger(__name__)

PROMPT_VERSION = "story-prompt-1"

_SYSTEM = (
    "You are the editor of an email newsletter. You write short, factual summaries of news "
    "stories for busy readers. Use only facts stated in the articles. Write plain prose: no "
    "headings, lists, links, quotes of site navigation, calls to action, bylines, addresses or "
    "phone numbers, and no opinion of your own."
)
_USER = (
    "Summarize the story below in at most {sentences} sentences and at most {max_chars} "
    "characters. It may be told by several articles; combine them and do not repeat a fact.\n\n"
    "Title: {title}\n\n{articles}"
)
_PER_TEXT_CHARS = 4000
_TOTAL_CHARS = 12000


class LLMSummarizer:
    """Summaries written by a chat model; the extractive summarizer stands in on any error."""

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", *,
                 timeout: float = 30.0, fallback: Summarizer | None = None,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.fallback: Summarizer = fallback or ExtractiveSummarizer()
        self.session = session or requests.Session()
        self.name = f"llm:{model}"
        self.version = PROMPT_VERSION
        self.last_source = ""

    def request_body(self, title: str, texts: Sequence[str], *, sentences: int,
                     max_chars: int) -> dict[str, Any]:
        """The JSON body sent for one story (public so that it can be logged or inspected)."""
        parts: list[str] = []
        budget = _TOTAL_CHARS
        for n, text in enumerate(texts, 1):
            clean = truncate_words(strip_boilerplate(text), min(_PER_TEXT_CHARS, budget))
            if not clean:
                continue
            parts.append(f"Article {n}:\n{clean}")
            budget -= len(clean)
            if budget <= 200:
                break
        user = _USER.format(sentences=sentences, max_chars=max_chars, title=title,
                            articles="\n\n".join(parts))
        return {
            "model": self.model,
            "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}],
            "temperature": 0,
            # Roughly four characters a token, with room for the model to finish its sentence.
            "max_tokens": max(64, max_chars // 3),
        }

    def summarize(self, title: str, texts: Sequence[str], *, sentences: int = 3,
                  max_chars: int = 600) -> str:
        if not any(t.strip() for t in texts):
            self.last_source = self.fallback.name
            return ""
        try:
            summary = self._ask(title, texts, sentences=sentences, max_chars=max_chars)
        except (requests.RequestException, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("summarize: %s: falling back to %s: %s", self.name, self.fallback.name, exc)
            self.last_source = self.fallback.name
            return self.fallback.summarize(title, texts, sentences=sentences, max_chars=max_chars)
        self.last_source = self.name
        return summary

    def _ask(self, title: str, texts: Sequence[str], *, sentences: int, max_chars: int) -> str:
        headers = {"Content-Type": "application/json"}
        key = secret_env(self.api_key_env) or ""
        if key:
            # Local servers often need no key; sending none is then correct.
            headers["Authorization"] = f"Bearer {key}"
        body = self.request_body(title, texts, sentences=sentences, max_chars=max_chars)
        resp = self.session.post(f"{self.base_url}/chat/completions", json=body, headers=headers,
                                 timeout=self.timeout)
        resp.raise_for_status()
        content = resp.json()["choices"][0]["message"]["content"]
        if not isinstance(content, str) or not content.strip():
            raise ValueError("empty reply")
        return truncate_words(" ".join(content.split()), max_chars)


class Llm(Settings):
    """``stories.llm``: the chat API and model; the API key comes from the environment only."""

    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = Field(30.0, gt=0)

    _url = field_validator("base_url")(check_http_url)


def llm_summarizer(config: Config) -> LLMSummarizer:
    settings = config.stories.section("llm", Llm)
    if settings is None:
        raise ConfigError("summarizer: llm needs stories.llm: {base_url, model}")
    return LLMSummarizer(settings.base_url, settings.model, settings.api_key_env, timeout=settings.timeout)


SUMMARIZER = SummarizerEntry("llm", Llm, llm_summarizer)
