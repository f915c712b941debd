"""``designkit`` slowed down, so a test can SIGKILL ``designkit train`` mid-run.

Each batch waits ``DELAY`` seconds in the stream (the training itself is untouched), and
the applied log is flushed every ``log_every`` steps, so a kill leaves log chunks past the
last checkpoint that the resume must drop.
"""

from __future__ import annotations

import sys
import time

import engine.settings
import engine.stream
from designkit.cli import main

DELAY = float(sys.argv.pop(1))
engine.settings.MIN_FLUSH_STEPS = 1
_batch = engine.stream.InjectingStream.batch


def slow_batch(self, step):
    time.sleep(DELAY)
    return _batch(self, step)


engine.stream.InjectingStream.batch = slow_batch

if __name__ == "__main__":
    sys.exit(main())
