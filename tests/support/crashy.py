"""Runs ``recstream run all`` with a fault hook for the crash tests (test code, not shipped).

With RECSTREAM_TEST_KILL_BEFORE_PUBLISH=N the process SIGKILLs itself right before its N-th
publish of a non-empty batch: after the batch's store writes, before its outputs and commit.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from stream.loop import BatchConsumer

_publish = BatchConsumer._publish
_calls = {"n": 0}


def _publish_or_die(self: BatchConsumer, result: Any) -> None:
    if result.outputs:
        _calls["n"] += 1
        if _calls["n"] == int(os.environ.get("RECSTREAM_TEST_KILL_BEFORE_PUBLISH", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
    _publish(self, result)


BatchConsumer._publish = _publish_or_die  # type: ignore[method-assign]

if __name__ == "__main__":
    from stream.cli import main

    sys.exit(main(["run", "all"]))
