"""The packages of the wheel; everything else is in pyproject.toml.

feedletter's own packages are found, so a new one cannot be left out; templates/ and flows/ ship
under the names pyproject.toml's package-dir maps them to (feedletter.templates, feedletter_flows).
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["feedletter", "feedletter.*"]), "feedletter.templates", "feedletter_flows"])
