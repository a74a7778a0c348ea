"""`make test`: every test tier, in two lanes side by side, each tier's time and the wall time printed at the end.

The scale tier (1,028 tiny models in one process), then the browser tier (the demo, then Chromium), run beside the
default suite, then the cluster and scheduler tiers (which spend much of their time waiting on servers they
started). Measured on this 2-core machine (2026-12-08, 1,100 models then): scale 1,024 s, browser 542 s | default
1,123 s, cluster 362 s, scheduler 102 s: the lanes end 1,566 s and 1,587 s in; stop 51's CI machine took about 1.5x
as long. No two lanes share a port, a database, a folder or a Redis database: every tier picks free ports, names
its PostgreSQL databases with a random suffix and works in its own temporary `MLOPS_HOME`. `--serial` runs one tier
at a time (to time a tier alone); `--only` runs some of them.

A tier's output is written to `<log dir>/<tier>.log` while it runs (`tail -f` it) and printed whole when it ends,
so the lines of two tiers never interleave. A tier that fails does not stop the others (one CI run shows every
failure); the exit status is non-zero when any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TIERS: dict[str, list[str]] = {
    "default": ["-m", "not scheduler and not cluster and not browser and not scale and not bench"],
    "scale": ["-m", "scale", "-s"],
    "scheduler": ["-m", "scheduler"],
    "cluster": ["-m", "cluster"],
    "browser": ["-m", "browser"],
}
LANES: list[list[str]] = [["scale", "browser"], ["default", "cluster", "scheduler"]]


def lanes_of(chosen: list[str], serial: bool) -> list[list[str]]:
    """The lanes that run `chosen` tiers: `LANES` without the others, or one lane in `TIERS` order."""
    if serial:
        return [[name for name in TIERS if name in chosen]]
    return [lane for lane in ([name for name in lane if name in chosen] for lane in LANES) if lane]


class Board:
    """Results and output of the tiers, printed one whole tier at a time."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.results: dict[str, tuple[int, float]] = {}
        self._print = threading.Lock()

    def run_tier(self, name: str) -> None:
        log = self.logs / f"{name}.log"
        with self._print:
            print(f"=== tier {name} started: pytest {' '.join(TIERS[name])} (output: {log})", flush=True)
        started = time.monotonic()
        with log.open("w") as out:
            code = subprocess.call([sys.executable, "-m", "pytest", *TIERS[name]], stdout=out,
                                   stderr=subprocess.STDOUT)
        seconds = time.monotonic() - started
        with self._print:
            print(f"\n=== tier {name}: {'passed' if code == 0 else f'FAILED ({code})'} in {seconds:.0f} s", flush=True)
            sys.stdout.write(log.read_text(errors="replace"))
            sys.stdout.flush()
            self.results[name] = (code, seconds)

    def run_lane(self, lane: list[str]) -> None:
        for name in lane:
            self.run_tier(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(TIERS), help="run only these tiers")
    parser.add_argument("--serial", action="store_true", help="one tier at a time, in one lane")
    parser.add_argument("--logs", type=Path, default=None, help="folder of the tiers' logs (default: a new one "
                        "under the temporary folder)")
    args = parser.parse_args(argv)
    logs = args.logs or Path(tempfile.mkdtemp(prefix="mlops-tiers-"))
    logs.mkdir(parents=True, exist_ok=True)
    board = Board(logs)
    lanes = lanes_of(args.only or list(TIERS), args.serial)
    started = time.monotonic()
    threads = [threading.Thread(target=board.run_lane, args=(lane,), name="+".join(lane)) for lane in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - started
    print(f"\ntier        result   seconds   (lanes: {' | '.join(' -> '.join(lane) for lane in lanes)})")
    for name in TIERS:
        if name in board.results:
            code, seconds = board.results[name]
            print(f"{name:<11} {'passed' if code == 0 else f'FAILED ({code})':<8} {seconds:8.0f}")
    ok = len(board.results) == sum(map(len, lanes)) and all(code == 0 for code, _ in board.results.values())
    print(f"{'wall':<11} {'passed' if ok else 'FAILED':<8} {wall:8.0f}   ({wall / 60:.1f} min; the tiers' sum: "
          f"{sum(s for _, s in board.results.values()):.0f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
