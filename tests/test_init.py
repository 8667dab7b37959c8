"""`feedletter init`: a new project that validates and renders a digest against a loopback site."""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedletter.cli import app
from feedletter.config import load_config
from feedletter.errors import ConfigError
from feedletter.issue.render import BUILTIN_TEMPLATES, template_dirs
from feedletter.scaffold import source_name
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import ROOT, run_gather

runner = CliRunner()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "feedletter.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


def test_init_writes_a_project_that_validates_and_renders(tmp_path: Path, site: SiteHost) -> None:
    project = tmp_path / "news"
    feeds = [site.url("riverside-clinic/feed.xml"), site.url("health-roundup/feed.xml")]
    made = _cli("init", str(project), "--feed", feeds[0], "--feed", feeds[1], "--title", "Clinic News",
                cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    for name in ("sources.yaml", "README.md", "flows/deployments.py", "templates/digest.mjml.j2",
                 "templates/digest.txt.j2", "templates/partials/footer.mjml.j2"):
        assert (project / name).is_file(), name
    assert not (project / "flows" / "__init__.py").exists()  # a folder of scripts, not a package
    py_compile.compile(str(project / "flows" / "deployments.py"), doraise=True)

    checked = _cli("validate", cwd=project)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == "sources.yaml: ok (2 sources, 1 newsletter)"

    config = load_config(project / "sources.yaml")
    assert config.allow_private is True  # loopback feeds were given
    assert template_dirs(config)[0] == project / "templates"  # the copies win over the built-ins
    assert [s.url for s in config.sources] == feeds
    store = Store.open(config.store_url())
    try:
        assert run_gather(config, store)["new"] > 0
    finally:
        store.close()
    (project / "templates" / "digest.txt.j2").write_text(
        "OUR OWN TEMPLATE\n" + (BUILTIN_TEMPLATES / "digest.txt.j2").read_text())
    result = runner.invoke(app, ["digest", "weekly", "--dry-run", "--out", str(project / "preview"),
                                 "--config", str(project / "sources.yaml")])
    assert result.exit_code == 0, result.output
    record = json.loads((project / "preview" / "digest.json").read_text())
    assert record["subject"].startswith("Clinic News: ") and record["stories"]
    assert (project / "preview" / "digest.txt").read_text().startswith("OUR OWN TEMPLATE")


def test_init_without_feeds_uses_an_example_and_refuses_to_overwrite(tmp_path: Path) -> None:
    first = runner.invoke(app, ["init", str(tmp_path)])
    assert first.exit_code == 0, first.output
    text = (tmp_path / "sources.yaml").read_text()
    assert "allow_private: false" in text and "an example feed: replace it with yours" in text
    checked = runner.invoke(app, ["validate", str(tmp_path / "sources.yaml")])
    assert checked.exit_code == 0, checked.output
    (tmp_path / "sources.yaml").write_text(text + "# mine\n")
    again = runner.invoke(app, ["init", str(tmp_path)])
    assert isinstance(again.exception, ConfigError)
    assert f"{tmp_path / 'sources.yaml'}: exists (use --force to overwrite)" in again.exception.problems[0]
    assert (tmp_path / "sources.yaml").read_text().endswith("# mine\n")
    forced = runner.invoke(app, ["init", str(tmp_path), "--force"])
    assert forced.exit_code == 0 and (tmp_path / "sources.yaml").read_text() == text


def test_init_refuses_a_bad_feed_url(tmp_path: Path) -> None:
    result = runner.invoke(app, ["init", str(tmp_path / "p"), "--feed", "blog.example.com/feed"])
    assert isinstance(result.exception, ConfigError) and "not an http(s) feed URL" in str(result.exception)
    assert not (tmp_path / "p").exists()


@pytest.mark.slow
def test_the_deployments_file_builds_one_deployment_per_schedule(tmp_path: Path) -> None:
    assert runner.invoke(app, ["init", str(tmp_path)]).exit_code == 0
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(tmp_path / "prefect")}
    result = subprocess.run([sys.executable, "flows/deployments.py", "--check"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["gather", "digest-weekly"]


def test_a_loopback_feed_is_named_after_its_title(tmp_path: Path) -> None:
    root = tmp_path / "site"
    (root / "gazette").mkdir(parents=True)
    (root / "gazette" / "feed.xml").write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Riverside Gazette</title>"
        "<link>https://gazette.example/</link><item><title>Ferry returns</title>"
        "<link>https://gazette.example/ferry</link></item></channel></rss>", encoding="utf-8")
    with SiteHost(root) as host:
        feeds = [host.url("gazette/feed.xml"), host.url("missing/clinic-news/rss.xml")]
        made = runner.invoke(app, ["init", str(tmp_path / "news"), "--feed", feeds[0], "--feed", feeds[1]])
    assert made.exit_code == 0, made.output
    config = load_config(tmp_path / "news" / "sources.yaml")
    assert [(s.name, s.title, s.url) for s in config.sources] == [
        ("riverside-gazette", "Riverside Gazette", feeds[0]),
        ("missing-clinic-news", None, feeds[1]),  # no feed there: named after its path, not 127-0-0-1
    ]


@pytest.mark.parametrize(("url", "title", "name"), [
    ("https://www.example.com/feed.xml", "", "example-com"),
    ("https://blog.example.org/feeds/posts/default", "Python Insider", "python-insider"),
    ("http://127.0.0.1:8000/feed.xml", "", "feed"),
    ("http://localhost:8000/alderton-post/atom.xml", "", "alderton-post"),
    ("http://[::1]:8000/news/rss/", "", "news"),
    ("https://example.com/feed", "!!!", "example-com"),
])
def test_source_names(url: str, title: str, name: str) -> None:
    assert source_name(url, title) == name
