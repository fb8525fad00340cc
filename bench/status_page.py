"""The status page at 1,000 triggers, in memory: 30 minutes of decisions every 5 s for each
trigger (a fake clock), 5 % of them failing at the end; then the time to take the page's view
of the history, to render it, the page's size, and the history's memory.

    python bench/status_page.py [--triggers 1000] [--out page.html]

Also run by `python bench/run.py --only status-page`. No broker needed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scaler import history, status_page  # noqa: E402

SOURCES = ("kafka", "rabbitmq", "activemq")
CYCLE_S = 5.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def build(triggers: int, clock: FakeClock) -> tuple[history.History, float]:
    """A history as 30 minutes of polling leave it; returns it and the mean seconds one
    record_decision took."""
    rng = random.Random(5)
    kept = history.History(clock)
    keys = [(f"team-{index % 50}", f"worker-{index}", f"{SOURCES[index % 3]}-queue-{index}")
            for index in range(triggers)]
    values = [float(rng.randint(0, 400)) for _ in keys]
    cycles = int(history.WINDOW_S / CYCLE_S)
    started = time.perf_counter()
    for _ in range(cycles):
        clock.now += CYCLE_S
        for index, key in enumerate(keys):
            values[index] = max(0.0, values[index] + rng.randint(-20, 20))
            replicas = min(30, -(-int(values[index]) // 20))
            kept.record_decision(key, SOURCES[index % 3], metric_value=values[index],
                                 target=20.0, desired_replicas=replicas,
                                 is_active=values[index] > 0, read_at=clock.now - 0.4)
    per_record = (time.perf_counter() - started) / (cycles * len(keys))
    for key in keys[::20]:
        kept.record_error(key, "rabbitmq", f"queue {key[2]!r} in vhost '/' not found",
                          "NOT_FOUND")
    return kept, per_record


def measure(triggers: int = 1000, out: Path | None = None) -> dict[str, object]:
    clock = FakeClock()
    tracemalloc.start()
    kept, _ = build(triggers, clock)
    memory = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    kept, per_record = build(triggers, FakeClock())  # timed without tracemalloc's overhead
    views, renders = [], []
    page = ""
    for _ in range(7):
        started = time.perf_counter()
        view = kept.view()
        views.append(time.perf_counter() - started)
        started = time.perf_counter()
        page = status_page.render(view)
        renders.append(time.perf_counter() - started)
    filtered = time.perf_counter()
    status_page.render(kept.view("team-7"), "team-7")
    filtered = time.perf_counter() - filtered
    if out is not None:
        out.write_text(page)
    return {"triggers": triggers, "samples per trigger": len(view.triggers[0].times),
            "view median ms": round(statistics.median(views) * 1000, 1),
            "render median ms": round(statistics.median(renders) * 1000, 1),
            "render max ms": round(max(renders) * 1000, 1),
            "one namespace (view + render) ms": round(filtered * 1000, 1),
            "page KB": round(len(page.encode()) / 1024),
            "history MB": round(memory / 2**20, 1),
            "record_decision us": round(per_record * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="also write the page here")
    args = parser.parse_args()
    row = measure(args.triggers, args.out)
    print("| " + " | ".join(row) + " |")
    print("|" + "---|" * len(row))
    print("| " + " | ".join(str(value) for value in row.values()) + " |")


if __name__ == "__main__":
    main()
