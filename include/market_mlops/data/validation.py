"""The data gate: Great Expectations 1.x suites from `great_expectations/`, run through the GX core API.

`validate_frame` runs one suite on one frame and returns plain findings; `summarize` turns failed findings into
the one line a failing task prints (which checks failed on which file).
"""

from __future__ import annotations

import functools
import json
import logging
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from market_mlops.config import REPO_ROOT

# Great Expectations logs at INFO, while it imports, one line per data-source method its documentation registry
# skips (214 lines before an import's table): what it says is for GX's own docs build.
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)

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
    locations: list[list[str]] = field(default_factory=list)  # the `where` values of the first offending rows

    def passed_copy(self) -> Finding:
        """This check as it reads on a part of a frame it passed on."""
        return replace(self, success=True, unexpected_count=0, sample=[], locations=[])


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


def _evidence(entry: Any, where: list[str]) -> str:
    """One offending row as GX reports it: its values, then where it is (`close=nan at 2024-11-26 15:30`)."""
    if not isinstance(entry, dict):
        return str(entry)
    values = ", ".join(f"{k}={_plain(v)}" for k, v in entry.items() if k not in where)
    place = " ".join(_plain(entry[k]) for k in where if k in entry)
    return f"{values} at {place}" if values and place else values or place


def _plain(value: Any) -> str:
    if isinstance(value, pd.Timestamp):
        return f"{value:%Y-%m-%d %H:%M}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def validate_frame(suite: str, frame: pd.DataFrame, file: str, parameters: dict[str, Any],
                   where: list[str] | None = None) -> FileResult:
    """Run `suite` on `frame`; GX result objects stay inside, plain findings come out. `where`: the columns that say
    where an offending row is (its timestamp): each finding's sample names its first offending values there."""
    result_format: dict[str, Any] = {"result_format": "SUMMARY"}
    if where:
        result_format["unexpected_index_column_names"] = where
    result = _validation_definition(suite).run(
        batch_parameters={"dataframe": frame}, expectation_parameters=parameters, result_format=result_format
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
        located = (details.get("partial_unexpected_index_list") or []) if where else []
        findings.append(Finding(
            locations=[[_plain(entry.get(k)) for k in where or []] for entry in located if isinstance(entry, dict)],
            check=(cfg.meta or {}).get("check", cfg.type),
            expectation=cfg.type,
            severity=severity,
            success=bool(res.success),
            unexpected_count=details.get("unexpected_count"),
            columns=columns,
            sample=[_evidence(v, where or []) for v in ((where and details.get("partial_unexpected_index_list"))
                                                         or details.get("partial_unexpected_list") or [])[:3]]
            or ([exc] if exc and not res.success else [])
            or ([f"observed {_plain(details['observed_value'])}"] if "observed_value" in details and not res.success else []),
        ))
    return FileResult(file=file, rows=len(frame), findings=findings)


def validate_files(suite: str, frames: list[tuple[str, pd.DataFrame]], parameters: dict[str, Any],
                   by: str | None = None) -> dict[str, FileResult]:
    """`suite` on each file's frame, in as few GX runs as the answer allows (a run costs ~0.5 s whatever its size):
    the files are validated together (all of them, or those sharing a `by` value), and a row check that passes on
    the whole passes on every file in it; the files a failing check points at (or all of them, when it cannot tell
    which) are then validated on their own, so every finding still names its file. Frames carry `source_file` and
    `ts`; the suite's checks are row checks (or hold per file whenever they hold for the whole)."""
    results: dict[str, FileResult] = {}
    groups: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    for name, frame in frames:
        values = frame[by].dropna().unique() if by is not None and by in frame.columns else ["all"]
        if len(values) == 1:
            groups.setdefault(str(values[0]), []).append((name, frame))
        else:
            results[name] = validate_frame(suite, frame, name, parameters, where=["ts"])
    for members in groups.values():
        flagged: set[str] | None = {members[0][0]}
        if len(members) > 1:
            whole = validate_frame(suite, pd.concat([f for _, f in members], ignore_index=True), "<files>", parameters,
                                   where=["source_file", "ts"])
            flagged = _files_pointed_at(whole)
            if flagged is not None:
                for name, frame in members:
                    if name not in flagged:
                        results[name] = FileResult(name, len(frame), [f.passed_copy() for f in whole.findings])
        for name, frame in members:
            if name not in results:
                results[name] = validate_frame(suite, frame, name, parameters, where=["ts"])
    return results


def _files_pointed_at(whole: FileResult) -> set[str] | None:
    """The files the unsuccessful findings of a joint run name, or None when a finding cannot say (an aggregate
    check, or more offending rows than GX lists)."""
    files: set[str] = set()
    for finding in whole.findings:
        if finding.success:
            continue
        if not finding.locations or (finding.unexpected_count or 0) > len(finding.locations):
            return None
        files |= {loc[0] for loc in finding.locations}
    return files


def summarize(results: list[FileResult]) -> str:
    """One line: which checks failed on which file, and which batch-wide checks (`<stored history>`,
    `<batch coverage>`) failed; only files are counted as files."""
    failed = [r for r in results if not r.success]
    files = [r for r in results if not r.file.startswith("<")]
    bad_files = [r for r in failed if not r.file.startswith("<")]
    parts = []
    for r in failed:
        checks = ", ".join(
            f"{f.check}" + (f" ({f.unexpected_count} rows)" if f.unexpected_count else "")
            + (f" [{'; '.join(str(s) for s in f.sample[:4])}]" if f.sample else "") for f in r.failed
        )
        parts.append(f"{r.file}: {checks}")
    off_session = any(f.check == "bar_on_a_session" for r in failed for f in r.failed)
    hint = (" (bars outside the calendar's sessions: `market-mlops import --drop-off-session` drops and lists them; "
            "validation.drop_off_session does it for scheduled ingestion)") if off_session else ""
    counted = f"{len(bad_files)} of {len(files)} file(s)" if bad_files else f"the batch of {len(files)} file(s)"
    return f"validation failed for {counted}: " + "; ".join(parts) + hint
