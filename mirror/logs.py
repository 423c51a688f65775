"""Logging: quiet by default; `mirror -v CMD` (or `-vv`) on stderr, `mirror --log-file PATH CMD` to a
file. What the code catches and goes on without (a page that could not be read ahead, a cache that
could not be written, a plug-in's text that failed) is logged where it is dropped, at DEBUG (or
WARNING where the run is worse for it), so `-v` shows what a quiet run passed over.

Every message goes through `redact_text` before it is written: a URL with credentials in it, an
`Authorization:` value, never reaches a terminal or a file."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from airgap_mirror.urls import redact_text

__all__ = ["configure", "get"]

ROOTS = ("airgap_mirror", "airgap_apt", "airgap_bundles")
for _name in ROOTS:
    logging.getLogger(_name).addHandler(logging.NullHandler())  # quiet unless configured


def get(name: str) -> logging.Logger:
    """The logger of a module (`get(__name__)`)."""
    return logging.getLogger(name)


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = redact_text(record.getMessage())
        record.msg, record.args = message, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure(verbose: int = 0, log_file: Path | None = None) -> None:
    """-v: INFO on stderr; -vv: DEBUG; --log-file: DEBUG to that file (appended), whatever -v says."""
    if not verbose and log_file is None:
        return
    handlers: list[logging.Handler] = []
    if verbose:
        err = logging.StreamHandler(sys.stderr)
        err.setLevel(logging.DEBUG if verbose > 1 else logging.INFO)
        err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handlers.append(err)
    if log_file is not None:
        to_file = logging.FileHandler(log_file, encoding="utf-8")
        to_file.setLevel(logging.DEBUG)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s]: %(message)s"))
        handlers.append(to_file)
    for handler in handlers:
        handler.addFilter(_Redacting())
    for name in ROOTS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        for handler in handlers:
            logger.addHandler(handler)
