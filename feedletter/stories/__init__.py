"""Stories: exact and near duplicates (dedupe), the same story and the same subject across sites
(cluster), extractive and LLM summaries (summarize, llm), and the grouping and summarizing stages
(stages)."""
