"""One row of `make bench`'s table: a figure, its unit, its goal and whether it meets it (every section writes them;
`run.py` prints them)."""

from __future__ import annotations


def figure_row(name: str, value: float, unit: str, target: str, ok: bool | None, note: str = "") -> dict:
    return {"figure": name, "value": round(float(value), 3), "unit": unit, "target": target,
            "meets_target": None if ok is None else bool(ok), "note": note}
