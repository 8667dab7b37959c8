"""Score feedletter's extract() against trafilatura's English evaluation pages.

For every page in annotations.json, the share of ``with`` snippets (article text) found in the
output and the share of ``without`` snippets (boilerplate) leaked into it, for feedletter's
extract() and for plain trafilatura defaults side by side, with time per page.

Matching is case-sensitive on whitespace-normalized text by default: the snippets are copied
from the pages, so case is part of what a correct extraction reproduces (--ignore-case to compare).

Run from the repository root:  python bench/eval_extract.py [--verbose] [--fast] [--ignore-case]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

CORPUS = Path("../shared/corpus/extraction/trafilatura-eval-en")


IGNORE_CASE = False


def _norm(text: str) -> str:
    text = " ".join(text.split())
    return text.casefold() if IGNORE_CASE else text


def _score(output: str, snippets: list[str]) -> tuple[int, int]:
    text = _norm(output)
    wanted = [s for s in (_norm(s) for s in snippets) if s]
    return sum(s in text for s in wanted), len(wanted)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--verbose", action="store_true", help="print missed and leaked snippets")
    args.add_argument("--fast", action="store_true", help="run extract(fast=True)")
    args.add_argument("--ignore-case", action="store_true", help="match snippets case-insensitively")
    opts = args.parse_args()
    global IGNORE_CASE
    IGNORE_CASE = opts.ignore_case
    annotations_path = CORPUS / "annotations.json"
    if not annotations_path.is_file():
        print("skipped: corpus absent")
        return 0

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import trafilatura

    from feedletter.errors import ExtractError
    from feedletter.ingest.extract import extract

    def ours(html: bytes, url: str | None) -> str:
        try:
            result = extract(html, url, fast=opts.fast)
        except ExtractError:
            return ""
        # `feedletter extract` prints the title beside the text (extract() keeps the title out
        # of .text), so a snippet found in the title counts, as it does in trafilatura's text
        return f"{result.title or ''}\n\n{result.text}"

    def plain(html: bytes, url: str | None) -> str:
        return trafilatura.extract(html, url=url) or ""

    runners: dict[str, Callable[[bytes, str | None], str]] = {"feedletter": ours, "trafilatura": plain}
    annotations = json.loads(annotations_path.read_text(encoding="utf-8"))
    totals = {name: [0, 0, 0, 0, 0.0] for name in runners}  # found, with, leaked, without, seconds
    # first calls load trafilatura's and justext's lazy data; keep that out of the per-page times
    first = next(iter(annotations.values()), None)
    if first is not None and (CORPUS / "html" / f"{first['file']}.gz").is_file():
        warm = gzip.decompress((CORPUS / "html" / f"{first['file']}.gz").read_bytes())
        for run in runners.values():
            run(warm, first.get("url"))
    print(f"{'page':<42} {'ours found':>10} {'leak':>6} {'ms':>6}   {'traf found':>10} {'leak':>6} {'ms':>6}")
    for name, page in sorted(annotations.items()):
        path = CORPUS / "html" / f"{page.get('file', name)}.gz"
        if not path.is_file():
            continue
        html = gzip.decompress(path.read_bytes())
        row = []
        for runner_name, run in runners.items():
            start = time.perf_counter()
            output = run(html, page.get("url"))
            elapsed = time.perf_counter() - start
            found, wanted = _score(output, page.get("with", []))
            leaked, unwanted = _score(output, page.get("without", []))
            total = totals[runner_name]
            total[0] += found
            total[1] += wanted
            total[2] += leaked
            total[3] += unwanted
            total[4] += elapsed
            row.append(f"{found:>7}/{wanted:<2} {leaked:>3}/{unwanted:<2} {elapsed * 1000:>6.0f}")
            if opts.verbose and runner_name == "feedletter":
                text = _norm(output)
                for snippet in page.get("with", []):
                    if _norm(snippet) not in text:
                        row.append(f"\n    missed: {snippet!r}")
                for snippet in page.get("without", []):
                    if _norm(snippet) in text:
                        row.append(f"\n    leaked: {snippet!r}")
        print(f"{name[:42]:<42} " + "   ".join(row))

    pages = len(annotations)
    print()
    print(f"{'extractor':<12} {'found':>14} {'leaked':>14} {'ms/page':>8}"
          f"   ({'case-insensitive' if IGNORE_CASE else 'case-sensitive'}, whitespace-normalized)")
    for runner_name, (found, wanted, leaked, unwanted, seconds) in totals.items():
        ms_per_page = seconds * 1000 / max(pages, 1)
        print(f"{runner_name:<12} {found:>4}/{wanted:<4} {found / max(wanted, 1):>5.1%} "
              f"{leaked:>4}/{unwanted:<4} {leaked / max(unwanted, 1):>5.1%} {ms_per_page:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
