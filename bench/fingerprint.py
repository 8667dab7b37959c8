"""Every output of grouping and summarizing on the corpus, as one JSON file, to compare two versions exactly.

The eval scripts print figures; two versions can give the same figures with different outputs.
This writes the outputs themselves: each set's story and subject assignments, ``pair_similarities``
of the same-story pairs, and the summary of every article (and of every ECB+ cluster as one story
of several texts) at the digest's 600 characters and uncut. Compare two runs with ``cmp``.

    python bench/fingerprint.py OUT.json [--corpus ../shared/corpus]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedletter.models import Document  # noqa: E402
from feedletter.stories.cluster import cluster_documents, pair_similarities, subjects  # noqa: E402
from feedletter.stories.summarize import summarize  # noqa: E402


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    stories = args.corpus / "stories"
    for name in ("clusters", "topics"):
        rows = _rows(stories / f"{name}.jsonl")
        docs = [Document(id=r["id"], title=r["title"], text=r["text"], source=r.get("url")) for r in rows]
        out[name] = [[a.id, a.cluster, a.duplicate_of, a.subject] for a in cluster_documents(docs)]
        groups: dict[str, list[Document]] = defaultdict(list)
        for d, r in zip(docs, rows, strict=True):
            groups[r.get("cluster", r["topic"])].append(d)
        out[f"{name}-subjects"] = subjects(list(groups.values()))
        out[f"{name}-summaries"] = {key: [summarize(g[0].title, [d.text for d in g]),
                                          summarize(g[0].title, [d.text for d in g], max_chars=100_000)]
                                    for key, g in groups.items()}
    pairs = _rows(stories / "same-story-pairs.jsonl")
    seen: dict[str, Document] = {}
    for p in pairs:
        for k in ("1", "2"):
            seen.setdefault(p["id" + k], Document(id=p["id" + k], title=p["title" + k], text=p["text" + k]))
    docs = list(seen.values())
    out["pairs"] = [[a.id, a.cluster, a.duplicate_of, a.subject] for a in cluster_documents(docs)]
    # Rounded: a cosine sums over a set of shared features, whose order (so the last bit) varies by run.
    out["pair-similarities"] = [round(s, 12) for s in pair_similarities(docs, [(p["id1"], p["id2"]) for p in pairs])]
    out["article-summaries"] = {d.id: [summarize(d.title, [d.text]), summarize(d.title, [d.text], max_chars=100_000)]
                                for d in docs}
    bbc = _rows(args.corpus / "summaries" / "bbc-dev.jsonl")
    out["bbc"] = {r["id"]: [summarize(r["title"], [r["text"]]), summarize(r["title"], [r["text"]], max_chars=100_000)]
                  for r in bbc}
    args.out.write_text(json.dumps(out, indent=0, sort_keys=True))


if __name__ == "__main__":
    main()
