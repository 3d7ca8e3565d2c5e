"""ROC curves as a PNG (matplotlib, Agg canvas): the IJB report, `compare` overlays and the W&B picture."""
import os

import numpy as np


def plot_roc(curves, out, title="ROC", xlim=None):
    """ROC curves (log FPR axis, as insightface draws them) as a Figure, also written as a PNG to `out` unless None.

    curves: {legend label: (fpr, tpr)}. Points at FPR 0 are off a log axis and are left out.
    xlim: (left, right) FPR range; by default from the smallest positive FPR of the curves to 1.
    Uses matplotlib's object API with the Agg canvas (no display, no global pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for number, (label, (fpr, tpr)) in enumerate(curves.items()):
        fpr, tpr = np.asarray(fpr), np.asarray(tpr)
        keep = fpr > 0
        axes.plot(fpr[keep], tpr[keep], linewidth=1.5, color=f"C{number % 10}", label=label)
    axes.set_xscale("log")
    if xlim is None:
        positive = [np.min(fpr[fpr > 0]) for fpr in (np.asarray(fpr) for fpr, _ in curves.values()) if np.any(fpr > 0)]
        xlim = (min(positive, default=1e-6), 1.0)
    axes.set_xlim(*xlim)
    axes.set_ylim(0.0, 1.0)
    axes.set_xlabel("False Positive Rate")
    axes.set_ylabel("True Positive Rate")
    axes.set_title(title)
    axes.grid(linestyle="--", alpha=0.5)
    axes.legend(loc="lower right", fontsize="small")
    if out is not None:
        if os.path.dirname(out):
            os.makedirs(os.path.dirname(out), exist_ok=True)
        figure.savefig(out, dpi=100)
    return figure
