"""Drift reports: the seed's text report, JSON, and a self-contained HTML page with plots."""
from __future__ import annotations

import json
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone
from html import escape
from typing import TYPE_CHECKING, Any, Sequence

from batch.drift_svg import CURRENT_COLOR, REFERENCE_COLOR, distribution_svg, ecdf_svg
from monitoring.drift import FeatureDrift

if TYPE_CHECKING:
    from batch.drift import PropertyDrift

RULE = "=" * 80


def _period(report: PropertyDrift, which: str) -> dict[str, Any]:
    w = report.windows
    if which == "reference":
        start, end, samples = w.reference_start, w.current_start, report.reference
    else:
        start, end, samples = w.current_start, w.current_end, report.current
    return {"first_day": start.isoformat(), "last_day": _day_before(end), "days": (end - start).days,
            "rows": samples.rows}


def _day_before(day: date) -> str:
    return (day - timedelta(days=1)).isoformat()


def report_dict(report: PropertyDrift) -> dict[str, Any]:
    r = report.result
    return {"property_id": report.property_id, "status": r.status, "retrain_recommended": r.retrain_recommended,
            "as_of": report.windows.last_day.isoformat(), "reference": _period(report, "reference"),
            "current": _period(report, "current"), "evaluated_features": r.evaluated,
            "drifted_features": r.drifted_features, "share_drifted": r.share_drifted,
            "thresholds": asdict(r.thresholds),
            "features": [{**asdict(f), "drifted": f.drifted} for f in r.features]}


def json_report(reports: Sequence[PropertyDrift], many: bool) -> str:
    if not many:
        return json.dumps(report_dict(reports[0]), indent=2)
    return json.dumps({"properties": [report_dict(r) for r in reports],
                       "retrain_recommended": [r.property_id for r in reports if r.result.retrain_recommended]},
                      indent=2)


# ---- the seed's text report ---------------------------------------------------------------
def text_report(report: PropertyDrift) -> str:
    r, ref, cur = report.result, _period(report, "reference"), _period(report, "current")
    lines = [RULE, "DRIFT DETECTION RESULTS", RULE, "",
             f"Property: {report.property_id}",
             f"Reference period: {ref['days']} days ({ref['rows']} samples)",
             f"Current period: {cur['days']} days ({cur['rows']} samples)",
             f"Windows: reference {ref['first_day']} .. {ref['last_day']}, current {cur['first_day']} .. "
             f"{cur['last_day']}", "",
             f"Drifted features: {len(r.drifted_features)}/{r.evaluated} ({r.share_drifted:.1%})",
             f"Trigger retrain: {r.retrain_recommended}", "",
             f"Drifted features: {', '.join(r.drifted_features) or 'none'}", "", "Feature details:"]
    for f in (f for f in r.features if f.evaluated):
        lines += [f"  {'⚠️ ' if f.drifted else '✅'} {f.feature}:",
                  f"      KS p-value: {f.ks_p_value:.4f} (drifted: {f.ks_drifted})",
                  f"      PSI: {f.psi:.4f} (drifted: {f.psi_drifted})"]
    short = [f for f in r.features if not f.evaluated]
    if short:
        lines += ["", f"Insufficient data (fewer than {r.thresholds.min_samples} values in a window; "
                      "never drifted):",
                  "  " + ", ".join(f"{f.feature} ({f.reference_samples}/{f.current_samples})" for f in short)]
    lines.append(RULE)
    return "\n".join(lines)


# ---- HTML ---------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222;padding:0 16px}
h1{margin-bottom:4px} .muted{color:#666} table{border-collapse:collapse;margin:8px 0 16px}
td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-size:13px}
.drifted{background:#d62728} .stable{background:#2ca02c} .insufficient_data{background:#999}
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:12px 0}
.card h3{margin:0 0 6px} .plots{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
.key{display:inline-block;width:12px;height:12px;vertical-align:middle;margin:0 4px 0 12px}
"""


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _badge(status: str) -> str:
    label = {"drifted": "drifted", "stable": "stable", "insufficient_data": "insufficient data"}[status]
    return f'<span class="badge {status}">{label}</span>'


def _feature_row(f: FeatureDrift) -> str:
    cells = [escape(f.feature), _badge(f.status), _num(f.ks_statistic), _num(f.ks_p_value), _num(f.psi),
             f"{f.reference_samples:,} / {f.current_samples:,}",
             f"{f.reference_missing:,} / {f.current_missing:,}"]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _feature_card(report: PropertyDrift, f: FeatureDrift) -> str:
    ref, cur = report.reference.present(f.feature), report.current.present(f.feature)
    if len(ref) and len(cur):
        plots = distribution_svg(f.feature, ref, cur) + ecdf_svg(f.feature, ref, cur)
    else:
        plots = '<p class="muted">No values in one of the windows: nothing to plot.</p>'
    scores = (f"KS statistic {_num(f.ks_statistic)}, p-value {_num(f.ks_p_value)} "
              f"(drifted: {f.ks_drifted}) · PSI {_num(f.psi)} (drifted: {f.psi_drifted})")
    return (f'<div class="card"><h3>{escape(f.feature)} {_badge(f.status)}</h3>'
            f'<p class="muted">{scores}</p><div class="plots">{plots}</div></div>')


def _property_section(report: PropertyDrift) -> str:
    r, ref, cur = report.result, _period(report, "reference"), _period(report, "current")
    verdict = "retrain recommended" if r.retrain_recommended else "no retrain needed"
    order = sorted(r.features, key=lambda f: (not f.drifted, not f.evaluated, -(f.psi or 0.0)))
    header = "".join(f"<th>{h}</th>" for h in ("feature", "status", "KS D", "KS p", "PSI",
                                                "values ref / cur", "missing ref / cur"))
    return (f"<section><h2>{escape(report.property_id)} {_badge(r.status)} <small>{verdict}</small></h2>"
            f"<p>Reference {ref['first_day']} – {ref['last_day']} ({ref['rows']:,} rows) · current "
            f"{cur['first_day']} – {cur['last_day']} ({cur['rows']:,} rows) · drifted "
            f"{len(r.drifted_features)}/{r.evaluated} features ({r.share_drifted:.1%})</p>"
            f"<table><tr>{header}</tr>{''.join(_feature_row(f) for f in order)}</table>"
            + "".join(_feature_card(report, f) for f in order) + "</section>")


def html_report(reports: Sequence[PropertyDrift]) -> str:
    t = reports[0].result.thresholds
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    legend = (f'<span class="key" style="background:{REFERENCE_COLOR}"></span>reference window'
              f'<span class="key" style="background:{CURRENT_COLOR}"></span>current window')
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>bookloop drift report</title>"
            f"<style>{_CSS}</style></head><body><h1>Drift report</h1>"
            f'<p class="muted">Generated {generated} · a feature drifts when KS p &lt; {t.ks_p_value} '
            f"or PSI &gt; {t.psi}; retrain is recommended when more than {t.share_drifted:.0%} of the evaluated features "
            f"drifted; fewer than {t.min_samples} values in a window is insufficient data.</p>"
            f"<p>{legend}</p>" + "".join(_property_section(r) for r in reports) + "</body></html>")
