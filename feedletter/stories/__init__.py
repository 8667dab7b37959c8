"""Stories: many posts become few stories. The stages and what callers use:

- ``stages.group`` / ``stages.group_articles`` (copies joined, same-story clusters recorded),
  ``summaries.summarize_stories`` / ``stages.summarize`` (a summary per changed story),
  ``stages.load_stories`` (stories read back for an issue);
- ``cluster.cluster_documents`` and ``cluster.subjects`` (grouping), ``summarize.Summarizer`` and
  ``summarize.ExtractiveSummarizer``, ``llm.LLMSummarizer``.

features, linkage, minhash, dedupe, sentences and reading are their parts.
"""
