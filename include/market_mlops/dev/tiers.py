"""`make test`: every test tier, one after another, each tier's time printed at the end.

A tier that fails does not stop the others (one CI run shows every failure); the exit status is non-zero when any
failed. The tiers are pytest marker expressions; `--only` runs some of them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

TIERS: dict[str, list[str]] = {
    "default": ["-m", "not scheduler and not cluster and not browser and not scale and not bench"],
    "scale": ["-m", "scale", "-s"],
    "scheduler": ["-m", "scheduler"],
    "cluster": ["-m", "cluster"],
    "browser": ["-m", "browser"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=list(TIERS), help="run only these tiers")
    args = parser.parse_args(argv)
    results: list[tuple[str, int, float]] = []
    for name, marker in TIERS.items():
        if args.only and name not in args.only:
            continue
        print(f"\n=== tier {name}: pytest {' '.join(marker)}", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, "-m", "pytest", *marker])
        results.append((name, code, time.monotonic() - started))
    total = sum(seconds for _, _, seconds in results)
    print("\ntier        result   seconds")
    for name, code, seconds in results:
        print(f"{name:<11} {'passed' if code == 0 else f'FAILED ({code})':<8} {seconds:8.0f}")
    print(f"{'all':<11} {'passed' if all(c == 0 for _, c, _ in results) else 'FAILED':<8} {total:8.0f}"
          f"   ({total / 60:.1f} min)")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
