"""Compare training runs from their local run folders (`recipe.json` + `history.jsonl`): a table and plots.

Needs no network and no wandb account: `python -m recipes compare RUN_DIR... [--metrics=...] [--out=...]`.
The plot has one panel per metric (own scale), `<bin>/acc` with a ± `<bin>/acc_std` band and the
untrained model (history row 0) at epoch 0; runs are labelled by the settings that differ between
them. Runs with `best_roc.npz` also get their best epoch's ROC curves overlaid in `<out>_roc.png`.
"""
import math
import os
import statistics

from storage.history import read_history
from callbacks.tracking import flatten
from evaluation.verification import load_roc_curves
from storage.run_folder import RunFolder
from evaluation.verification import bin_name
from recipes.commands.text_table import format_table
from registry import UserError, did_you_mean

# recipe.json keys that always differ between runs and say nothing about the recipe.
_IGNORED_KEYS = {"run_name"}
LABEL_KEYS = 3
"""At most this many differing settings make a run's legend label."""
PROVENANCE_KEYS = {"git_commit", "git_dirty", "project_version"}
"""recipe.json keys that say which code ran, not how: shown in the table, never in a legend label."""


class CompareError(UserError, ValueError):
    """Bad input to `compare` (no runs, an unknown metric); the message says what to do."""


def load_run(run_dir):
    """{'label', 'path', 'recipe' (recipe.json), 'history' (trained epochs' rows of history.jsonl), 'baseline', 'roc'}
    of a run folder.

    'baseline': the untrained model's metrics (history row 0), {} if absent; 'roc': ({bin: (fpr, tpr)},
    best epoch) from best_roc.npz, None if absent.
    """
    run = RunFolder(run_dir)
    recipe = run.read_config()
    rows = read_history(run.history_path) if os.path.isfile(run.history_path) else []
    baseline = next((row for row in rows if row.get("epoch") == 0), {})
    return {"label": os.path.basename(os.path.normpath(run_dir)), "path": run_dir, "recipe": recipe,
            "history": [row for row in rows if row.get("epoch") != 0], "baseline": baseline,
            "roc": load_roc_curves(run.best_roc_path) if os.path.isfile(run.best_roc_path) else None}


def monitored_metric(recipe):
    """The metric a run monitors: its `eval_monitor`, else `<last eval bin>/acc`; None without eval bins."""
    if recipe.get("eval_monitor"):
        return recipe["eval_monitor"]
    bins = recipe.get("eval_bins_resolved") or recipe.get("eval_bins") or []
    return f"{bin_name(bins[-1])}/acc" if bins else None


def default_metrics(runs):
    """Each run's monitored metric (once each, in order) and then `loss`."""
    metrics = [monitored_metric(run["recipe"]) for run in runs] + ["loss"]
    return list(dict.fromkeys(metric for metric in metrics if metric))


def lower_is_better(metric):
    """True for losses and spreads (`loss`, `center_loss`, `<bin>/acc_std`); other metrics are best when highest."""
    name = metric.rsplit("/", 1)[-1]
    return "loss" in name or name.endswith("_std")


def metric_series(history, metric):
    """(epochs, values) of `metric` in the history rows that have it; non-finite values stay as NaN/Inf."""
    epochs, values = [], []
    for row in history:
        if metric in row:
            try:
                values.append(float(row[metric]))
            except (TypeError, ValueError):
                continue
            epochs.append(int(row.get("epoch", len(epochs) + 1)))
    return epochs, values


def best_value(history, metric):
    """(best value, its epoch) of `metric` (min for `lower_is_better`, else max; finite values only), or None."""
    pairs = [(value, epoch) for epoch, value in zip(*metric_series(history, metric)) if math.isfinite(value)]
    if not pairs:
        return None
    pick = min if lower_is_better(metric) else max
    return pick(pairs, key=lambda pair: pair[0])


def images_per_second(history):
    """Median training images/s over the epochs after the first (which includes graph tracing), or None."""
    values = [float(row["images_per_second"]) for row in history if "images_per_second" in row]
    if len(values) > 1:
        values = values[1:]
    return statistics.median(values) if values else None


def differing_config(runs):
    """{flat recipe key: [value per run]} for the keys whose values are not the same in every run."""
    flats = [flatten(run["recipe"]) for run in runs]
    keys = list(dict.fromkeys(key for flat in flats for key in flat))
    missing = object()
    differing = {}
    for key in keys:
        if key in _IGNORED_KEYS:
            continue
        values = [flat.get(key, missing) for flat in flats]
        if any(value != values[0] for value in values[1:]):
            differing[key] = [None if value is missing else value for value in values]
    return differing


def _cell(value, width=48):
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(item) for item in value)
    else:
        text = "-" if value is None else str(value)
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _unique_labels(runs):
    labels = [run["label"] for run in runs]
    if len(set(labels)) < len(labels):
        labels = [os.path.normpath(run["path"]) for run in runs]
    return labels


def comparison_rows(runs, metrics):
    """(header, rows) of the side-by-side table: one column per run, one row per differing key and metric."""
    header = ["", *_unique_labels(runs)]
    rows = [["recipe", *[_cell(run["recipe"].get("name")) for run in runs]]]
    rows += [[key, *[_cell(value) for value in values]] for key, values in differing_config(runs).items()
             if key != "name"]
    for metric in metrics:
        cells = []
        for run in runs:
            best = best_value(run["history"], metric)
            cells.append("-" if best is None else f"{best[0]:.4f} (epoch {best[1]})")
        rows.append([f"best {metric} ({'min' if lower_is_better(metric) else 'max'})", *cells])
    rows.append(["epochs run", *[str(max((row.get("epoch", 0) for row in run["history"]), default=0))
                                 for run in runs]])
    speeds = [images_per_second(run["history"]) for run in runs]
    rows.append(["images/s (median)", *["-" if speed is None else f"{speed:.1f}" for speed in speeds]])
    return header, rows


def run_labels(runs):
    """Legend label of each run from the settings that differ between the runs, e.g. 'loss=arcface, lr=0.1'.

    At most LABEL_KEYS settings (then '…'), never the PROVENANCE_KEYS; the recipe `name` only when
    nothing else differs; the folder names when no setting differs; a folder name is appended to
    labels that would repeat.
    """
    differing = {key: values for key, values in differing_config(runs).items() if key not in PROVENANCE_KEYS}
    if len(differing) > 1:
        differing.pop("name", None)
    keys = list(differing)[:LABEL_KEYS]
    labels = [", ".join(f"{key}={_cell(differing[key][index], 24)}" for key in keys)
              + (", …" if len(differing) > LABEL_KEYS else "") for index in range(len(runs))]
    if not keys:
        return _unique_labels(runs)
    repeated = {label for label in labels if labels.count(label) > 1}
    folders = _unique_labels(runs)
    return [f"{label} ({folder})" if label in repeated else label for label, folder in zip(labels, folders)]


def plot_series(run, metric):
    """(epochs, values) of `metric` to plot: the history's, after (0, untrained value) when the run has a baseline."""
    epochs, values = metric_series(run["history"], metric)
    if metric in run["baseline"]:
        try:
            return [0, *epochs], [float(run["baseline"][metric]), *values]
        except (TypeError, ValueError):
            pass
    return epochs, values


def _std_band(run, metric):
    """(epochs, low, high) of `<bin>/acc` ± `<bin>/acc_std` where both are known, or None for other metrics."""
    if not metric.endswith("/acc"):
        return None
    spread = dict(zip(*plot_series(run, metric + "_std")))
    epochs, values = plot_series(run, metric)
    points = [(epoch, value, spread[epoch]) for epoch, value in zip(epochs, values) if epoch in spread]
    if not points:
        return None
    epochs, values, spreads = (list(column) for column in zip(*points))
    return epochs, [v - s for v, s in zip(values, spreads)], [v + s for v, s in zip(values, spreads)]


def roc_overlay_path(out):
    """Where `compare` writes the ROC overlay for the plot `out`: 'compare.png' → 'compare_roc.png'."""
    stem, extension = os.path.splitext(out)
    return f"{stem}_roc{extension or '.png'}"


def plot_roc_overlay(runs, labels, out):
    """PNG at `out` with the best epoch's ROC curve of every run and bin (from best_roc.npz); the Figure or None."""
    from evaluation.roc_plot import plot_roc
    from sklearn.metrics import auc

    curves = {}
    for run, label in zip(runs, labels):
        if run["roc"] is None:
            continue
        bin_curves, epoch = run["roc"]
        for name, (fpr, tpr) in bin_curves.items():
            curves[f"{label}: {name}, epoch {epoch} (AUC {auc(fpr, tpr):.4f})"] = (fpr, tpr)
    if not curves:
        return None
    return plot_roc(curves, out, title="ROC of the best epoch")


def check_metrics(runs, metrics):
    """Raise CompareError naming the known metrics when one of `metrics` is in no run's history."""
    known = sorted({key for run in runs for row in run["history"] for key in row if key not in ("epoch",)})
    for metric in metrics:
        if not any(metric_series(run["history"], metric)[0] for run in runs):
            raise CompareError(f"--metrics: {metric!r} is in no run's history.{did_you_mean(metric, known)} "
                               f"Known: {', '.join(known)}.")


def plot_runs(runs, metrics, out):
    """Write a PNG to `out`: one panel per metric (own y scale), value per epoch, one line per run; the Figure.

    Lines start at epoch 0 with the untrained baseline where the run has one; `<bin>/acc` panels
    shade ± `<bin>/acc_std`. Legend labels come from `run_labels`.

    Uses matplotlib's object API with the Agg canvas (no display, no global pyplot state).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    columns = min(3, len(metrics))
    rows = -(-len(metrics) // columns)
    figure = Figure(figsize=(4.8 * columns, 3.6 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    labels = run_labels(runs)
    for index, metric in enumerate(metrics):
        axes = figure.add_subplot(rows, columns, index + 1)
        for number, (run, label) in enumerate(zip(runs, labels)):
            epochs, values = plot_series(run, metric)
            axes.plot(epochs, values, marker="o", markersize=3, linewidth=2, color=f"C{number % 10}", label=label)
            band = _std_band(run, metric)
            if band is not None:
                axes.fill_between(*band, color=f"C{number % 10}", alpha=0.15, linewidth=0)
        axes.set_title(f"{metric} ({'lower' if lower_is_better(metric) else 'higher'} is better)")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        if index == 0:
            axes.legend(fontsize="small")
    if os.path.dirname(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
    figure.savefig(out, dpi=100)
    return figure


def compare_runs(run_dirs, metrics=None, out="compare.png"):
    """(table text, Figure, ROC overlay path or None) comparing the runs in `run_dirs`.

    The metrics plot is saved to `out`; when a run has ROC curves (best_roc.npz), their overlay
    goes to `roc_overlay_path(out)`. `metrics` default to each run's monitored `<last bin>/acc` and `loss`.
    """
    if not run_dirs:
        raise CompareError("give one or more run folders: python -m recipes compare RUN_DIR [RUN_DIR ...]")
    runs = [load_run(str(run_dir)) for run_dir in run_dirs]
    metrics = list(metrics) if metrics else default_metrics(runs)
    check_metrics(runs, metrics)
    header, rows = comparison_rows(runs, metrics)
    figure = plot_runs(runs, metrics, out)
    roc_out = roc_overlay_path(out)
    roc_figure = plot_roc_overlay(runs, run_labels(runs), roc_out)
    return format_table(header, rows), figure, roc_out if roc_figure is not None else None
