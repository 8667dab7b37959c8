"""The issue: which stories go in (selection), the email rendered from them (render), a preview
of the next one (preview), and the digest stages that save and queue it (digest)."""
