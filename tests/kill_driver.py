"""Runs the ``hwnas`` command line in this process and kills it with SIGKILL at a chosen point (for
``tests/test_kill9.py``): ``HWNAS_TEST_KILL=<point>:<n>`` kills at the n-th occurrence of the point, counted in
this process. Points:

- ``state``: right after the n-th ``state.json`` write;
- ``ckpt-torn``: in the middle of the n-th controller checkpoint write (half its bytes in the temporary file);
- ``ckpt``: right after the n-th controller checkpoint is written (its side file), before the state records it.

Nothing here is part of hwnas: the kill is a real ``kill -9`` of a real process; only its timing is chosen.
"""

from __future__ import annotations

import io
import os
import signal
import sys


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(point: str, n: int) -> None:
    count = {"n": 0}

    def hit() -> bool:
        count["n"] += 1
        return count["n"] == n

    if point == "state":
        from hwnas.search.rundir import RunDir

        save_state = RunDir.save_state

        def patched_save_state(self, state):
            save_state(self, state)
            if hit():
                _die()

        RunDir.save_state = patched_save_state
    elif point in ("ckpt", "ckpt-torn"):
        import torch

        from hwnas.search.controllers.base import Controller

        save, torch_save = Controller.save, torch.save

        def torn_torch_save(obj, handle, *args, **kwargs):
            buffer = io.BytesIO()
            torch_save(obj, buffer, *args, **kwargs)
            data = buffer.getvalue()
            handle.write(data[: len(data) // 2])
            handle.flush()
            _die()

        def patched_save(self, path):
            if point == "ckpt-torn" and hit():
                torch.save = torn_torch_save
            save(self, path)
            if point == "ckpt" and hit():
                _die()

        Controller.save = patched_save
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    spec = os.environ.get("HWNAS_TEST_KILL", "")
    if spec:
        name, _, number = spec.partition(":")
        _arm(name, int(number))
    from hwnas.cli import main

    sys.argv[0] = "hwnas"
    main()
