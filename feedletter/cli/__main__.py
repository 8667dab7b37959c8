"""``python -m feedletter.cli``: the same as the ``feedletter`` command."""

from feedletter.cli import main

main()
