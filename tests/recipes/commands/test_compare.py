"""`compare`: the side-by-side table and the per-epoch plot, from local run folders only."""
import json
import os

import numpy as np
import pytest

import recipes  # noqa: F401
from storage.history import read_history
from recipes.commands.cli import main
from recipes.resolve import resolve_recipe
from recipes.commands.compare import CompareError, best_value, compare_runs, default_metrics, load_run, run_labels
from recipes.train import train


def table_cells(table):
    """{row label: [cell per run]} of a table printed by `compare` (columns are 2+ spaces apart)."""
    lines = table.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.split("  ") if cell.strip()]
        rows[cells[0]] = cells[1:]
    return header, rows


def colour_pixels(png_path, hex_colour, tolerance=0.06):
    """How many pixels of the PNG are within `tolerance` (per channel, 0..1) of `hex_colour`."""
    import matplotlib.colors
    import matplotlib.image

    image = matplotlib.image.imread(png_path)[..., :3]
    return int(np.all(np.abs(image - np.array(matplotlib.colors.to_rgb(hex_colour))) < tolerance, axis=-1).sum())


def write_run(folder, recipe, rows):
    os.makedirs(folder)
    with open(os.path.join(folder, "recipe.json"), "w") as file:
        json.dump(recipe, file)
    with open(os.path.join(folder, "history.jsonl"), "w") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)
    return str(folder)


def flip_summed_embeddings(model_path, bin_path):
    """Image + flip embeddings of every image of a .bin, computed directly with the saved model (no project code)."""
    import keras

    from data.bins import load_bin_images

    images, issame = load_bin_images(bin_path)
    model = keras.saving.load_model(model_path, compile=False)
    images = images.astype(np.float32)
    return model(images, training=False).numpy() + model(images[:, :, ::-1], training=False).numpy(), issame


@pytest.mark.slow
def test_two_runs_with_different_losses_give_the_right_table_and_both_curves(tiny_overrides, tmp_path):
    from sklearn.metrics import roc_curve
    from sklearn.preprocessing import normalize

    overrides = {**tiny_overrides, "epochs": 2, "wandb": "disabled"}
    run_dirs = [train(resolve_recipe("softmax", overrides)), train(resolve_recipe("arcface", overrides))]
    out = str(tmp_path / "plots" / "compare.png")
    table, figure, roc_out = compare_runs(run_dirs, out=out)

    folders = [os.path.basename(run_dir) for run_dir in run_dirs]
    header, rows = table_cells(table)
    assert header == folders
    assert rows["recipe"] == ["softmax", "arcface"] and rows["loss"] == ["softmax", "arcface"]
    assert rows["epochs run"] == ["2", "2"]
    for column, run_dir in enumerate(run_dirs):
        history = read_history(os.path.join(run_dir, "history.jsonl"))[1:]
        accs = [row["verify/acc"] for row in history]
        best_epoch = int(np.argmax(accs)) + 1
        assert rows["best verify/acc (max)"][column] == f"{max(accs):.4f} (epoch {best_epoch})"
        loss_values = [row["loss"] for row in history]
        assert rows["best loss (min)"][column] == f"{min(loss_values):.4f} (epoch {int(np.argmin(loss_values)) + 1})"
        assert rows["images/s (median)"][column] == f"{history[1]['images_per_second']:.1f}"

    assert os.path.isfile(out)
    assert [axes.get_title() for axes in figure.axes] == ["verify/acc (higher is better)", "loss (lower is better)"]
    labels = run_labels([load_run(run_dir) for run_dir in run_dirs])
    assert labels[0].startswith("loss=softmax") and labels[1].startswith("loss=arcface")
    for axes, metric in zip(figure.axes, ("verify/acc", "loss")):
        lines = axes.get_lines()
        assert [line.get_label() for line in lines] == labels
        for line, run_dir in zip(lines, run_dirs):
            expected = [row[metric] for row in read_history(os.path.join(run_dir, "history.jsonl")) if metric in row]
            assert list(line.get_xdata()) == ([0, 1, 2] if metric == "verify/acc" else [1, 2])
            np.testing.assert_allclose(line.get_ydata(), expected)
    colours = [line.get_color() for line in figure.axes[0].get_lines()]
    assert colours[0] != colours[1]
    for colour in colours:
        assert colour_pixels(out, colour) > 500, colour  # a legend swatch alone is ~60 pixels
    # ± acc_std bands on the accuracy panel only.
    assert len(figure.axes[0].collections) == 2 and not figure.axes[1].collections
    history = read_history(os.path.join(run_dirs[0], "history.jsonl"))[1:]
    band_y = figure.axes[0].collections[0].get_paths()[0].vertices
    at_epoch_two = sorted(band_y[band_y[:, 0] == 2][:, 1])
    acc, std = history[1]["verify/acc"], history[1]["verify/acc_std"]
    assert at_epoch_two[0] == pytest.approx(acc - std) and at_epoch_two[-1] == pytest.approx(acc + std)

    # ROC overlay: each run's stored best-epoch curve is the ROC of the best model's cosine scores.
    assert roc_out == str(tmp_path / "plots" / "compare_roc.png") and os.path.getsize(roc_out) > 10_000
    for run_dir in run_dirs:
        embeddings, issame = flip_summed_embeddings(os.path.join(run_dir, "best_embedding.keras"),
                                                    tiny_overrides["eval_bins"][0])
        normalized = normalize(embeddings)
        fpr, tpr, _ = roc_curve(issame, np.sum(normalized[0::2] * normalized[1::2], axis=1))
        curves, epoch = load_run(run_dir)["roc"]
        history = read_history(os.path.join(run_dir, "history.jsonl"))[1:]
        assert epoch == int(np.argmax([row["verify/acc"] for row in history])) + 1
        np.testing.assert_allclose(curves["verify"][0], fpr, atol=1e-6)
        np.testing.assert_allclose(curves["verify"][1], tpr, atol=1e-6)


def test_table_shows_the_differing_config_keys_and_handles_missing_and_non_finite_values(tmp_path):
    base = {"name": "arcface", "loss": "arcface", "loss_args": {"margin2": 0.4}, "lr": 0.1, "seed": 0,
            "eval_bins_resolved": ["/data/lfw.bin", "/data/agedb_30.bin"], "eval_monitor": None}
    first = write_run(tmp_path / "a", base, [
        {"epoch": 1, "loss": 9.0, "agedb_30/acc": 0.6, "center_loss": 3.0, "images_per_second": 10.0},
        {"epoch": 2, "loss": "nan", "agedb_30/acc": 0.7, "center_loss": 2.0, "images_per_second": 100.0},
        {"epoch": 3, "loss": 7.0, "agedb_30/acc": 0.65, "center_loss": 2.5, "images_per_second": 120.0},
    ])
    second = write_run(tmp_path / "b", {**base, "loss_args": {"margin2": 0.5}, "lr": 0.2, "git_dirty": True}, [
        {"epoch": 1, "loss": 8.0, "agedb_30/acc": 0.62},
    ])
    runs = [load_run(first), load_run(second)]
    assert default_metrics(runs) == ["agedb_30/acc", "loss"]
    assert best_value(runs[0]["history"], "loss") == (7.0, 3)  # NaN is never the best
    assert best_value(runs[0]["history"], "center_loss") == (2.0, 2)

    table, figure, roc_out = compare_runs([first, second], metrics=["agedb_30/acc", "loss", "center_loss"],
                                          out=str(tmp_path / "c.png"))
    _, rows = table_cells(table)
    assert rows["loss_args.margin2"] == ["0.4", "0.5"] and rows["lr"] == ["0.1", "0.2"]
    assert "seed" not in rows and "loss" not in rows  # equal in both runs
    assert rows["git_dirty"] == ["-", "True"]  # in the table, but not in the legend labels below
    assert rows["best agedb_30/acc (max)"] == ["0.7000 (epoch 2)", "0.6200 (epoch 1)"]
    assert rows["best center_loss (min)"] == ["2.0000 (epoch 2)", "-"]
    assert rows["epochs run"] == ["3", "1"]
    assert rows["images/s (median)"] == ["110.0", "-"]  # the first epoch (tracing) is left out
    assert len(figure.axes) == 3 and len(figure.axes[2].get_lines()) == 2
    assert [line.get_label() for line in figure.axes[0].get_lines()] == ["loss_args.margin2=0.4, lr=0.1",
                                                                          "loss_args.margin2=0.5, lr=0.2"]
    assert roc_out is None and not os.path.exists(tmp_path / "c_roc.png")  # no run has ROC curves


def test_compare_command_prints_the_table_and_rejects_an_unknown_metric(tmp_path, capsys):
    run = write_run(tmp_path / "run", {"name": "softmax", "loss": "softmax", "eval_bins_resolved": []},
                    [{"epoch": 1, "loss": 2.0, "accuracy": 0.1}, {"epoch": 2, "loss": 1.5, "accuracy": 0.2}])
    out = tmp_path / "plot.png"
    main(["compare", run, "--metrics=loss,accuracy", f"--out={out}"])
    printed = capsys.readouterr().out
    assert "best loss (min)" in printed and "1.5000 (epoch 2)" in printed and "0.2000 (epoch 2)" in printed
    assert out.is_file()

    with pytest.raises(SystemExit) as exit_info:
        main(["compare", run, "--metrics=los"])
    assert exit_info.value.code == 2
    assert "'los' is in no run's history. Did you mean 'loss'?" in capsys.readouterr().err
    with pytest.raises(CompareError, match="one or more run folders"):
        compare_runs([])
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        compare_runs([str(tmp_path)])
