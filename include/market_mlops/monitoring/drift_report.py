"""The drift report a person reads: an HTML page logged to MLflow beside its JSON."""

from __future__ import annotations

import html
from typing import Any


def render_html(report: dict[str, Any]) -> str:
    rows = "".join(f"<tr><td>{html.escape(f['feature'])}</td><td>{f['psi']}</td><td>{f['psi_limit']}</td><td>{f['ks']}</td>"
                   f"<td>{'yes' if f['drifted'] else ''}</td></tr>"
                   for f in report["features"][:30])
    facts = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                    for k, v in report.items() if not isinstance(v, list | dict))
    return (f"<html><head><meta charset='utf-8'><title>Drift {html.escape(report['model'])}</title></head><body>"
            f"<h1>Drift report: {html.escape(report['model'])} v{report['version']}</h1><table>{facts}</table>"
            f"<h2>Features (PSI, KS)</h2><table><tr><th>feature</th><th>PSI</th><th>PSI limit</th><th>KS</th><th>drifted</th></tr>{rows}</table>"
            "</body></html>")
