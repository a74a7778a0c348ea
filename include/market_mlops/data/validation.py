"""The data gate: Great Expectations 1.x suites from `great_expectations/`, run through the GX core API.

`validate_frame` runs one suite on one frame and returns plain findings; `summarize` turns failed findings into
the one line a failing task prints (which checks failed on which file).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from market_mlops.config import REPO_ROOT

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.data_context import AbstractDataContext

    from great_expectations import ValidationDefinition

log = logging.getLogger(__name__)

SUITES_DIR = Path(os.environ.get("MLOPS_GX_SUITES", REPO_ROOT / "great_expectations" / "expectations"))


@dataclass
class Finding:
    check: str
    expectation: str
    severity: str
    success: bool
    unexpected_count: int | None = None
    columns: list[str] = field(default_factory=list)
    sample: list[Any] = field(default_factory=list)


@dataclass
class FileResult:
    file: str
    rows: int
    findings: list[Finding]

    @property
    def failed(self) -> list[Finding]:
        return [f for f in self.findings if not f.success and f.severity == "critical"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if not f.success and f.severity != "critical"]

    @property
    def success(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "success": self.success, "findings": [asdict(f) for f in self.findings]}


def load_suite_definition(name: str) -> dict[str, Any]:
    return json.loads((SUITES_DIR / f"{name}.json").read_text())


@functools.cache
def _context_and_batch() -> tuple[AbstractDataContext, BatchDefinition]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    import great_expectations as gx

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    batch = ctx.data_sources.add_pandas("bars").add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")
    return ctx, batch


@functools.cache
def _validation_definition(name: str) -> ValidationDefinition:
    from great_expectations.core.expectation_suite import ExpectationSuite

    import great_expectations as gx

    ctx, batch = _context_and_batch()
    suite = ctx.suites.add(ExpectationSuite(**load_suite_definition(name)))
    return ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}-gate", data=batch, suite=suite))


def validate_frame(suite: str, frame: pd.DataFrame, file: str, parameters: dict[str, Any]) -> FileResult:
    """Run `suite` on `frame`; GX result objects stay inside, plain findings come out."""
    result = _validation_definition(suite).run(
        batch_parameters={"dataframe": frame}, expectation_parameters=parameters, result_format="SUMMARY"
    )
    findings = []
    for res in result.results:
        cfg = res.expectation_config
        if cfg is None:  # GX fills it for every result of a suite run
            raise RuntimeError(f"GX returned a result without its expectation for suite {suite!r}")
        kwargs = cfg.kwargs or {}
        columns = [str(kwargs[k]) for k in ("column", "column_A", "column_B") if k in kwargs] + list(kwargs.get("column_list", []))
        details = res.result or {}
        exc = (res.exception_info or {}).get("exception_message") if hasattr(res, "exception_info") else None
        severity = getattr(cfg.severity, "value", str(cfg.severity or "critical"))
        findings.append(Finding(
            check=(cfg.meta or {}).get("check", cfg.type),
            expectation=cfg.type,
            severity=severity,
            success=bool(res.success),
            unexpected_count=details.get("unexpected_count"),
            columns=columns,
            sample=[str(v) for v in (details.get("partial_unexpected_list") or [])[:3]] or ([exc] if exc and not res.success else []),
        ))
    return FileResult(file=file, rows=len(frame), findings=findings)


def summarize(results: list[FileResult]) -> str:
    """One line: which checks failed on which file."""
    failed = [r for r in results if not r.success]
    parts = []
    for r in failed:
        checks = ", ".join(
            f"{f.check}" + (f" ({f.unexpected_count} rows)" if f.unexpected_count else "")
            + (f" [{'; '.join(str(s) for s in f.sample[:4])}]" if f.sample else "") for f in r.failed
        )
        parts.append(f"{r.file}: {checks}")
    return f"validation failed for {len(failed)} of {len(results)} file(s): " + "; ".join(parts)
