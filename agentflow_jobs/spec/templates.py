"""Deprecated alias of ``agentflow_jobs.operations.templates``, the one template parser.

Kept only because ``tests/security/fuzzing.py`` (not owned by the spec package) still
imports this path; delete this module once that import points at operations.templates.
"""

from __future__ import annotations

from agentflow_jobs.operations.templates import TemplateError, template_fields

__all__ = ["TemplateError", "template_fields"]
