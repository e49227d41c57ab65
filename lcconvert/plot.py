"""`inspect --plot`: per-layer distributions of effective betas (and gammas) as a PNG.

matplotlib is an optional extra (`lcconvert[plot]`), imported only here and only
when a plot is asked for, so the CLI starts fast and works without it. The figure
is drawn with the object API and the Agg canvas — no pyplot state, no display —
rendered to memory and written atomically, so a failure leaves no partial file.
"""
from __future__ import annotations

import io as _io
import textwrap

from lcconvert import files
from lcconvert.errors import DependencyError, OutputError
from lcconvert.stats import StatsTable

INSTALL_HINT = "pip install 'lcconvert[plot]'"


def require_matplotlib(path: str):
    """Import and return (Figure, FigureCanvasAgg); a one-line DependencyError naming `path` when missing."""
    if not path.lower().endswith(".png"):
        raise OutputError(path, "--plot writes a PNG image: give it a name ending in .png")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise DependencyError(path, f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    return Figure, FigureCanvasAgg


def _draw(ax, table: StatsTable, ylabel: str, reference: float | None, fig_width: float) -> None:
    names = [r.name for r in table.layers]
    positions = list(range(1, len(names) + 1))
    known = [(p, r.values) for p, r in zip(positions, table.layers) if r.recoverable]
    if known:
        ax.boxplot([v for _, v in known], positions=[p for p, _ in known], widths=0.6,
                   showmeans=True, flierprops={"markersize": 3})
    for p, r in zip(positions, table.layers):
        if not r.recoverable:
            ax.text(p, 0.0, "not\nrecoverable", ha="center", va="center", fontsize=7, color="firebrick",
                    rotation=90)
    ax.axhline(0.0, color="black", linewidth=0.8)
    if reference is not None:
        ax.axhline(reference, color="grey", linewidth=0.6, linestyle="--")
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=8)
    ax.set_xlim(0.4, len(names) + 0.6)
    ax.set_ylabel(ylabel)
    ax.set_title(textwrap.fill(table.summary.get("text", ""), width=int(12 * fig_width)), fontsize=9)
    ax.grid(axis="y", alpha=0.3)


def render_png(betas: StatsTable, gammas: StatsTable | None, title: str, path: str) -> bytes:
    """The PNG bytes of one box plot per layer of β_eff (zero line drawn), and of γ below it when given."""
    Figure, FigureCanvasAgg = require_matplotlib(path)
    panels = 2 if gammas is not None else 1
    width = max(8.0, 0.45 * len(betas.layers) + 2.0)
    fig = Figure(figsize=(width, 4.2 * panels), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    _draw(axes[0], betas, "effective beta  β + γ·b/√(σ²+ε)", None, width)
    if gammas is not None:
        _draw(axes[1], gammas, "gamma (absent = 1)", 1.0, width)
    fig.suptitle(title, fontsize=10)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def write_plot(betas: StatsTable, gammas: StatsTable | None, title: str, path: str) -> None:
    files.write_atomic(path, render_png(betas, gammas, title, path))
