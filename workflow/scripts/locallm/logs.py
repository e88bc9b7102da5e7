"""Send a rule script's logging, warnings and stray prints to its Snakemake `log:` file."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def log_to(path: str | os.PathLike) -> Iterator[logging.Logger]:
    """Route logging, warnings, stdout and stderr to `path` for the duration of the block.

    An exception is logged with its traceback before it propagates: the log says why a job failed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", buffering=1) as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        warnings.simplefilter("default")
        logger = logging.getLogger("locallm")
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield logger
        except BaseException:
            logger.exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
            logging.captureWarnings(False)


def get_logger(name: str) -> logging.Logger:
    """The logger for a library module (children of `locallm`)."""
    return logging.getLogger(f"locallm.{name}" if not name.startswith("locallm") else name)


def warn(logger: logging.Logger, message: str) -> None:
    """Log a warning and also print it to the terminal, where a user running Snakemake sees it."""
    logger.warning(message)
    print(f"WARNING: {message}", file=sys.__stderr__)
