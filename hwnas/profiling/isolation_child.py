"""The child process of :mod:`hwnas.profiling.isolation`: measures one request at a time from its stdin."""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys

from hwnas.errors import HwnasError

logger = logging.getLogger(__name__)


def _serve() -> None:
    """The child's loop: one measurement per request until stdin closes."""
    from hwnas.profiling.measure import measure_latency

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    requests, replies = sys.stdin.buffer, os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes to stderr, never into the replies
    while True:
        try:
            files, shape, kwargs = pickle.load(requests)
        except EOFError:
            return
        try:
            reply = ("ok", measure_latency(files, shape, isolated=False, **kwargs))
        except HwnasError as exc:
            reply = ("error", exc)
        except Exception as exc:  # noqa: BLE001  (reported to the parent as one line)
            reply = ("error", f"{type(exc).__name__}: {exc}".splitlines()[0])
        if "onnxruntime" in sys.modules:
            logger.warning("onnxruntime was imported in the process measuring %s", kwargs.get("runtime"))
        pickle.dump(reply, replies)
        replies.flush()


if __name__ == "__main__":
    _serve()
