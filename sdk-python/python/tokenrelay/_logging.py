"""The ``tokenrelay`` logger, fed by the Rust core.

The core logs through Rust's ``tracing``: attachments, drops with their
cause and the delay before the next attempt, resumes with what they
replayed, token fetches, the close with the connection's stats (the list
is in sdk-core/README.md). The native module forwards each record to the
``logging`` logger named ``tokenrelay`` (with the Rust target in the
record's ``tokenrelay_target`` attribute). No key or token is ever in a
record.

Records below the logger's effective level are dropped in Rust, without
calling into Python. That level is read when a :class:`tokenrelay.Client`
is made and at every ``connect``: set it before, with
``logging.getLogger("tokenrelay").setLevel(...)``, or with the environment
variable ``TOKENRELAY_LOG`` (``trace``, ``debug``, ``info``, ``warning``,
``error``, ``off``) read at import, which also sends the records to stderr
when nothing else handles them.
"""

from __future__ import annotations

import logging
import os
import sys

from . import _native

__all__ = ["logger", "sync_level", "TRACE"]

#: ``logging``'s number for the core's ``trace`` records (below ``DEBUG``).
TRACE = 5

#: The SDK's logger.
logger = logging.getLogger("tokenrelay")

_LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "off": logging.CRITICAL + 10,
}


def sync_level() -> None:
    """Tells the native side which records the logger wants (its effective
    level now)."""
    _native._set_log_level(logger.getEffectiveLevel())


def _from_env() -> None:
    value = os.environ.get("TOKENRELAY_LOG", "").strip().lower()
    if not value:
        return
    level = _LEVELS.get(value)
    if level is None:
        print(
            f"tokenrelay: TOKENRELAY_LOG={value!r} is not one of {', '.join(_LEVELS)}; ignored",
            file=sys.stderr,
        )
        return
    logger.setLevel(level)
    if not logger.handlers and not logging.getLogger().handlers and level <= logging.CRITICAL:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


_from_env()
sync_level()
