"""Text clean-up shared by the stages: ``sanitize.sanitize_html`` / ``html_to_text`` (nh3),
``boilerplate.strip_boilerplate`` (page furniture and ads), ``controls.strip_controls`` (control
characters and bidi overrides), ``whitespace.squash`` and ``truncate_words``."""
