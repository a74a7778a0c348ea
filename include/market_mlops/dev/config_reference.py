"""The configuration reference of the docs site, generated from the typed config (`market_mlops.config`) when mkdocs
builds: a key added, renamed or given another default shows in the docs without anyone editing a page.

Used as an mkdocs hook (`hooks:` in mkdocs.yml): the marker `<!-- config-reference -->` on a page becomes one table
per section (key, type, default, what it does).
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

MARKER = "<!-- config-reference -->"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    return "null" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(its keys below)"
    text = json.dumps(value, default=str)
    return f"`{text}`" if len(text) <= 60 else "(see config/pipeline.yaml)"


def _model_of(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The nested model of a field and how its keys are written below it: `.`, `.<name>.` for a dict, `[].` a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin is dict and len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
        return args[1], ".<name>."
    if origin is list and args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
        return args[0], "[]."
    return None, ""


def _rows(model: type[BaseModel], prefix: str) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for name, field in model.model_fields.items():
        nested, joint = _model_of(field.annotation)
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        if nested is not None:
            if description:
                rows.append((f"{prefix}{name}", nested.__name__, _default(field), description))
            rows += _rows(nested, f"{prefix}{name}{joint}")
        else:
            rows.append((f"{prefix}{name}", _type_name(field.annotation), _default(field), description))
    return rows


def config_reference_markdown() -> str:
    """One table per top-level section of `PipelineConfig`, every key with its type, default and description."""
    from market_mlops.config import PipelineConfig

    parts = []
    for name, field in PipelineConfig.model_fields.items():
        nested, joint = _model_of(field.annotation)
        rows = _rows(nested, f"{name}{joint}") if nested else [
            (name, _type_name(field.annotation), _default(field), " ".join((field.description or "").split()))]
        doc = " ".join((nested.__doc__ or "").split()) if nested and nested.__doc__ else ""
        table = ["| key | type | default | what it does |", "|---|---|---|---|"]
        table += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in rows]
        parts.append("\n".join([f"### `{name}`", "", *([doc, ""] if doc else []), *table]))
    return "\n\n".join(parts) + "\n"


def on_page_markdown(markdown: str, **_: Any) -> str:
    """mkdocs hook: the marker becomes the generated reference."""
    return markdown.replace(MARKER, config_reference_markdown()) if MARKER in markdown else markdown
