"""feedletter: turn blog feeds into email newsletters and syndicated feeds."""

from feedletter.errors import FeedletterError
from feedletter.models import Article, Digest, Document, Entry, Story

__all__ = ["Article", "Digest", "Document", "Entry", "FeedletterError", "Story", "__version__"]
__version__ = "0.1.0"
