"""Text clean-up shared by the stages: HTML sanitizing (sanitize), page furniture and ads dropped
from article text (boilerplate), whitespace folded (whitespace)."""
