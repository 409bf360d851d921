"""The report's plots (matplotlib, an extra: without it the report has its tables only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

FLOW_COLORS = {"hybrid": "C0", "sync": "C1", "async": "C2"}


def pyplot() -> Any | None:
    """matplotlib's pyplot on its file-only backend; None when matplotlib is not installed (it comes
    with the `bench` extra: the services' image has no use for it)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


PLOTS_NEED = "the report's plots need matplotlib: pip install 'sandwich[bench]' (./dev installs it)"


def plot_latencies(phases: Sequence[Mapping[str, Any]], path: Path, title: str) -> bool:
    """Empirical CDFs of the create latency, one line per phase given (False: nothing drawn)."""
    plt = pyplot()
    if plt is None:
        return False
    drawn = False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for phase in phases:
        label = f"{phase.get('flow')} ({phase.get('scenario')})"
        for ax, key in ((axes[0], "create_latencies_s"), (axes[1], "create_to_paid_s")):
            values = sorted(
                v * 1000 for v in phase.get("samples", {}).get(key, ()) if v is not None and v > 0
            )
            if not values:
                continue
            ys = [(i + 1) / len(values) for i in range(len(values))]
            ax.plot(values, ys, label=label, color=FLOW_COLORS.get(str(phase.get("flow"))))
            drawn = True
    for ax, what in ((axes[0], "create call latency (ms)"), (axes[1], "create -> paid (ms)")):
        ax.set_xscale("log")
        ax.set_xlabel(what)
        ax.set_ylabel("fraction of orders")
        ax.grid(True, which="both", alpha=0.3)
        for q in (0.5, 0.95, 0.99):
            ax.axhline(q, color="grey", linewidth=0.5, linestyle=":")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def plot_throughput(phases: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """Orders created and orders paid per second over each scenario's phase, per flow (errors/s too
    when there were any), the fault window shaded."""
    plt = pyplot()
    if plt is None:
        return False
    scenarios = list(dict.fromkeys(str(p.get("scenario")) for p in phases))
    if not scenarios:
        return False
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(10, 2.6 * len(scenarios)), squeeze=False)
    for ax, scenario in zip(axes[:, 0], scenarios, strict=True):
        window_drawn = False
        for phase in phases:
            if phase.get("scenario") != scenario:
                continue
            series = phase.get("timeseries") or {}
            ok = series.get("ok") or []
            xs = list(range(len(ok)))
            (line,) = ax.plot(
                xs, ok, label=f"{phase.get('flow')} created/s", color=FLOW_COLORS.get(str(phase.get("flow")))
            )
            # paid/s parts from created/s where orders are accepted but not paid yet (async with its
            # broker down); errors/s is drawn only when there were any.
            for name, style, shown in (("paid", ":", bool), ("errors", "--", any)):
                values = series.get(name) or []
                if shown(values):
                    ax.plot(
                        list(range(len(values))),
                        values,
                        linestyle=style,
                        color=line.get_color(),
                        label=f"{phase.get('flow')} {name}/s",
                    )
            window = (phase.get("fault") or {}).get("window")
            if window and not window_drawn:
                ax.axvspan(window[0], window[1], color="red", alpha=0.12, label="fault window")
                window_drawn = True
        ax.set_title(scenario, fontsize=10)
        ax.set_ylabel("orders/s")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[-1, 0].set_xlabel("seconds into the phase")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
