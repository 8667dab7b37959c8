"""The packages of the wheel; everything else is in pyproject.toml.

feedletter's own packages are found, so a new one cannot be left out; templates/ and flows/ ship
under the names pyproject.toml's package-dir maps them to (feedletter.templates, feedletter_flows),
and each folder of templates/ as a package of feedletter.templates (files only, no __init__.py).
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
TEMPLATE_FOLDERS = sorted(f"feedletter.templates.{d.name}" for d in (HERE / "templates").iterdir() if d.is_dir())

setup(packages=[*find_packages(include=["feedletter", "feedletter.*"]), "feedletter.templates", *TEMPLATE_FOLDERS,
                "feedletter_flows"])
