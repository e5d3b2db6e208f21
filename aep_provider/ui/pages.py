"""HTML of the deliveries pages, rendered from the API's payloads (Jinja2, autoescaped; SVG charts)."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.requests import Request

from aep_provider.ui import charts


@cache
def _env() -> Environment:
    return Environment(loader=PackageLoader("aep_provider.ui", "templates"), autoescape=select_autoescape(["html"]))


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "—"
    seconds = float(seconds)
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _value(value: Any) -> Any:
    return "—" if value is None else value


def render(request: Request, data: dict[str, Any], found: dict[str, Any] | None, run_id: str | None = None) -> str:
    oldest_first = list(reversed(data["runs"]))
    delivered = charts.bar_chart([(r["run_id"], r["delivered"]) for r in oldest_first], "Delivered per run")
    lag = charts.line_chart(
        [(f"{r['run_id']} ({r['end_date']})", r["topic_lag"]) for r in oldest_first if r["topic_lag"] is not None],
        "Lag at the end of each run (records)",
    )
    base = str(request.scope.get("root_path", "")).rstrip("/")
    return (
        _env()
        .get_template("deliveries.html")
        .render(
            data=data,
            found=found,
            run_id=run_id,
            base=base,
            query=request.query_params,
            delivered_chart=Markup(delivered),  # noqa: S704 - built by charts.py, every value escaped there
            lag_chart=Markup(lag),  # noqa: S704
            duration=_duration,
            value=_value,
        )
    )
