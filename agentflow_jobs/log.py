"""structlog configuration (built fully in the foundation issue)."""

from __future__ import annotations

import logging

import structlog


def configure_logging(*, fmt: str = "auto", level: str = "info") -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(),
    )
