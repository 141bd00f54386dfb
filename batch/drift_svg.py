"""Inline SVG plots for the drift HTML report (no plotting library needed).

`distribution_svg`: the reference and the current window's histograms side by side, on the same
bins and the same y scale (share of values per bin; values beyond the 0.5 / 99.5 percentiles
are counted in the edge bins). `ecdf_svg`: both empirical CDFs in one panel, with the largest
vertical gap between them, i.e. what the KS statistic measures, marked.
"""
from __future__ import annotations

from html import escape

import numpy as np

REFERENCE_COLOR, CURRENT_COLOR = "#4c78a8", "#f58518"
BINS = 30
PANEL_W, PANEL_H, GAP = 300, 170, 24
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 22, 28
ECDF_POINTS = 200


def _value_range(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    both = np.concatenate([reference, current])
    lo, hi = (float(v) for v in np.quantile(both, [0.005, 0.995]))
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return lo, hi


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def _axes(x0: float, lo: float, hi: float, y_max: float, y_label: str) -> list[str]:
    """Frame, x ticks (min, middle, max of the range) and y ticks (0 and y_max) of one panel."""
    left, right, top, bottom = x0 + LEFT, x0 + PANEL_W - RIGHT, TOP, PANEL_H - BOTTOM
    parts = [f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
             f'fill="none" stroke="#999" stroke-width="0.5"/>']
    ticks = ((lo, left, "start"), ((lo + hi) / 2, (left + right) / 2, "middle"), (hi, right, "end"))
    for value, x, anchor in ticks:
        parts.append(f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="{anchor}">{_fmt(value)}</text>')
    parts.append(f'<text x="{left - 4}" y="{bottom}" text-anchor="end">0</text>')
    parts.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{escape(y_label.format(y_max))}</text>')
    return parts


def _bars(shares: np.ndarray, x0: float, y_max: float, color: str) -> list[str]:
    left, top, bottom = x0 + LEFT, TOP, PANEL_H - BOTTOM
    width = (PANEL_W - LEFT - RIGHT) / len(shares)
    parts = []
    for i, share in enumerate(shares):
        height = (bottom - top) * share / y_max
        parts.append(f'<rect x="{left + i * width:.1f}" y="{bottom - height:.1f}" '
                     f'width="{max(width - 1, 0.5):.1f}" height="{height:.1f}" fill="{color}">'
                     f'<title>{share:.1%}</title></rect>')
    return parts


def _svg(width: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{PANEL_H}" '
            f'viewBox="0 0 {width:.0f} {PANEL_H}" role="img" aria-label="{escape(label)}" '
            f'font-family="sans-serif" font-size="10" fill="#333">' + "".join(body) + "</svg>")


def _title(x0: float, text: str, color: str) -> str:
    return f'<text x="{x0 + LEFT}" y="{TOP - 7}" fill="{color}" font-weight="bold">{escape(text)}</text>'


def distribution_svg(feature: str, reference: np.ndarray, current: np.ndarray) -> str:
    """Two histograms side by side (same bins, same y scale); both arrays non-empty, no NaN."""
    lo, hi = _value_range(reference, current)
    edges = np.linspace(lo, hi, BINS + 1)
    shares = [np.histogram(np.clip(v, lo, hi), edges)[0] / len(v) for v in (reference, current)]
    y_max = max(float(s.max()) for s in shares) or 1.0
    body: list[str] = []
    panels = (("reference", REFERENCE_COLOR, reference, shares[0]),
              ("current", CURRENT_COLOR, current, shares[1]))
    for i, (name, color, values, share) in enumerate(panels):
        x0 = i * (PANEL_W + GAP)
        body += _axes(x0, lo, hi, y_max, "{:.0%}")
        body += _bars(share, x0, y_max, color)
        body.append(_title(x0, f"{name} (n={len(values):,})", color))
    return _svg(2 * PANEL_W + GAP, body, f"{feature}: reference vs current histograms")


def _ecdf(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(values), grid, side="right") / len(values)


def _polyline(xs: np.ndarray, ys: np.ndarray, color: str) -> str:
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(np.repeat(xs, 2)[1:], np.repeat(ys, 2)[:-1]))
    return f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>'


def ecdf_svg(feature: str, reference: np.ndarray, current: np.ndarray) -> str:
    """Both empirical CDFs over the plotted range, the largest gap between them marked."""
    lo, hi = _value_range(reference, current)
    grid = np.unique(np.clip(np.quantile(np.concatenate([reference, current]),
                                         np.linspace(0, 1, ECDF_POINTS)), lo, hi))
    ref_cdf, cur_cdf = _ecdf(reference, grid), _ecdf(current, grid)
    left, right, top, bottom = LEFT, PANEL_W - RIGHT, TOP, PANEL_H - BOTTOM
    xs = left + (grid - lo) / (hi - lo) * (right - left)
    body = _axes(0, lo, hi, 1.0, "1")
    body.append(_polyline(xs, bottom - ref_cdf * (bottom - top), REFERENCE_COLOR))
    body.append(_polyline(xs, bottom - cur_cdf * (bottom - top), CURRENT_COLOR))
    at = int(np.argmax(np.abs(ref_cdf - cur_cdf)))
    y1, y2 = (bottom - c[at] * (bottom - top) for c in (ref_cdf, cur_cdf))
    body.append(f'<line x1="{xs[at]:.1f}" x2="{xs[at]:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="#d62728" '
                f'stroke-width="2"><title>largest gap {abs(ref_cdf[at] - cur_cdf[at]):.3f}</title></line>')
    body.append(_title(0, "cumulative share (KS gap in red)", "#333"))
    return _svg(PANEL_W, body, f"{feature}: empirical CDFs")
