"""Progress lines on stderr, so that the command line's stdout holds only `export` lines."""

from __future__ import annotations

import sys
import time


def say(message: str) -> None:
    print(f"[testbed {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
