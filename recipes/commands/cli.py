"""The command line: `python -m recipes` or `face-recipes`, with commands list, show, run, eval, export,
embed, compare, make_bin, data_stats. `--help` anywhere explains the command and every recipe field."""
import json
import os
import sys
import traceback

from callbacks.options import VERIFICATION_METRICS
from recipes.commands.console import quiet_tensorflow
from recipes.commands.help import help_text
from recipes.commands.typed_text import keep_typed_text
from recipes.plugins import load_plugins
from recipes.recipe import parse_list
from recipes.resolve import resolve_recipe, resolve_resume
from recipes.commands.text_table import format_table
from registry import ALL_REGISTRIES, UserError, real_number, whole_number


class CommandLine:
    """Face-recognition training recipes."""

    def list(self, plugins=()):
        """Print every recipe and every registry (backbones, heads, losses, schedules, callbacks, ...) with its entries."""
        load_plugins(plugins)
        print("\n\n".join(repr(registry) for registry in ALL_REGISTRIES))

    def show(self, recipe, **overrides):
        """Print recipe RECIPE (a name, file.py[:NAME] or recipe.json) with overrides, fully resolved, as JSON.

        The output can be run again: `run shown.json`. Notes (e.g. on the default margins) go to stderr.
        """
        from recipes.catalogue import recipe_notes

        resolved = resolve_recipe(recipe, overrides).resolved()
        print(json.dumps(resolved, indent=2))
        for note in recipe_notes(resolved):
            print(f"note: {note}", file=sys.stderr)

    def run(self, recipe, resume=None, **overrides):
        """Train RECIPE (a name, file.py[:NAME] or recipe.json) with overrides (--FIELD=VALUE, --loss_args.KEY=VALUE).

        --resume continues the newest run of RECIPE under --runs_dir at its next epoch;
        --resume=RUN_DIR continues that run. Overrides then apply on top of its stored recipe
        (e.g. --epochs=300 to train longer).
        """
        if resume not in (None, False):
            resolved, resume_dir = resolve_resume(recipe, resume, overrides)
        else:
            resolved, resume_dir = resolve_recipe(recipe, overrides), None
        from recipes.train import TrainingStopped, train  # imports TensorFlow: only once the recipe is valid

        try:
            run_dir = train(resolved, resume_dir)
        except TrainingStopped as stopped:
            print(f"stopped: {stopped}", file=sys.stderr)
            sys.exit(stopped.exit_code)
        print(f"done: {run_dir}" if run_dir else "done: worker finished; the chief worker writes the run folder.")

    def eval(self, model, bins, batch_size=128, plugins=(), backbone=None):
        """Evaluate a run folder or a saved model (.keras; .onnx, --backbone optional) on verification .bin files."""
        load_plugins(plugins)
        from recipes.commands.evaluate import evaluate_saved_model

        results = evaluate_saved_model(str(model), parse_list(bins), whole_number("--batch_size", batch_size, 1), backbone)
        keys = (*VERIFICATION_METRICS, "pairs")
        rows = [[name] + (["non-finite embeddings"] + [""] * (len(keys) - 1) if metrics is None else
                          [f"{metrics[key]:.4f}" if key != "pairs" else str(int(metrics[key])) for key in keys])
                for name, metrics in results.items()]
        print(format_table(["bin", *keys], rows))
        print("acc/acc_std/threshold: 10-fold insightface protocol (squared-L2 threshold); "
              "best_acc/best_threshold: best cosine threshold on the whole set (optimistic); roc_auc, tar_at_far: "
              "ROC of the cosine scores over all pairs.")

    def eval_ijb(self, model, ijb, subset="IJBC", batch_size=128, out=".", plugins=(), backbone=None):
        """IJB-B/C 1:1 verification (insightface protocol) of a saved model on --ijb (insightface's IJB folder).

        Prints TAR@FAR for the N/D/F variants; writes <subset>_scores.npy, _roc.png, _tar_at_far.json to --out.
        An .onnx --model is imported on the fly (--backbone optional: read from the graph).
        """
        load_plugins(plugins)
        from recipes.commands.evaluate_ijb import evaluate_ijb, tar_table

        results = evaluate_ijb(str(model), str(ijb), str(subset), whole_number("--batch_size", batch_size, 1), str(out),
                               backbone=backbone)
        print(format_table(*tar_table(results)))
        print("TAR (%) at FAR; N1: feature norm kept, D1: detector score weight, F1: flip embedding added "
              f"(insightface's default: N1D1F1). Written to {out}.")

    def export(self, model, format="onnx", out=None, batch="dynamic", precision="float32", layout="nhwc",
               plugins=()):
        """Export a run folder or .keras (--model) to --format=saved_model|onnx|tflite at --out, parity-checked.

        --layout=nhwc (default): input RGB NHWC float32 0..255 at the training size; output: the raw
        embedding. --layout=insightface (ONNX): input (N, 3, S, S) as insightface's ArcFaceONNX.get_feat
        feeds it, so insightface's model_zoo.get_model loads the file. --batch=dynamic or a fixed size;
        --precision=float16 (tflite only). Writes model_card.json beside --out.
        """
        load_plugins(plugins)
        from recipes.commands.export import export_model, format_export

        print(format_export(export_model(str(model), str(format), None if out is None else str(out), batch,
                                         str(precision), str(layout))))

    def embed(self, model, data, out="embeddings.npy", flip=True, batch_size=128, plugins=()):
        """Embeddings (image + flip summed, as verification does) of every image of --data (folder or .bin) to --out.

        Also writes the image paths in row order (.tsv beside --out) and any skipped files (.skipped.tsv).
        """
        load_plugins(plugins)
        from recipes.commands.embed import embed_data, format_embed

        print(format_embed(embed_data(str(model), str(data), str(out), flip, batch_size)))

    def compare(self, *run_dirs, metrics=None, out="compare.png", plugins=()):
        """Compare run folders side by side (table), plot --metrics per epoch to --out and ROC curves to <out>_roc.png.

        --metrics defaults to each run's monitored `<last bin>/acc` and `loss`.
        """
        load_plugins(plugins)
        from recipes.commands.compare import compare_runs

        table, _, roc_out = compare_runs([str(run_dir) for run_dir in run_dirs],
                                         parse_list(metrics) if metrics else None, str(out))
        print(table)
        print(f"plot: {out}")
        if roc_out:
            print(f"ROC curves of the best epochs: {roc_out}")

    def make_bin(self, data, pairs=3000, out="my.bin", seed=0, image_size=112, plugins=()):
        """Draw balanced same/different pairs (seeded) from --data (identity or RecordIO folder) into a .bin --out."""
        load_plugins(plugins)
        from data.tools import format_make_bin, make_bin

        print(format_make_bin(make_bin(str(data), pairs, str(out), seed, image_size)))

    def data_stats(self, data, decode=True, plugins=()):
        """Identities, images, images per identity (min/median/max) and unreadable files of --data.

        --data is an identity folder or a RecordIO folder (train.rec + train.idx).
        """
        load_plugins(plugins)
        from data.tools import data_stats, format_data_stats

        print(format_data_stats(data_stats(str(data), decode)))

    def import_model(self, onnx, backbone=None, out="imported.keras", image_size=None, plugins=()):
        """Import an insightface/arcface_torch/MXNet ONNX face model (IResNet or MobileFaceNet) into our registered
        backbone, checked against onnxruntime; save it to --out (.keras).

        Without --backbone the backbone and its options are read from the graph and printed.
        """
        load_plugins(plugins)
        from recipes.commands.import_model import import_model

        image_size = image_size and whole_number("--image_size", image_size, 1)
        print(import_model(str(onnx), backbone and str(backbone), str(out), image_size))

    def clean_subcenter(self, run, threshold=75.0, out=None, clean_dir=None, batch_size=128, plugins=()):
        """List the training images of RUN (a subcenter-head run folder) at >= --threshold degrees from
        their class's dominant sub-centre into --out (TSV; default RUN/subcenter_outliers.tsv);
        --clean_dir=DIR also links the kept images into a new identity folder for --data."""
        load_plugins(plugins)
        from recipes.commands.clean_subcenter import find_subcenter_outliers, format_outliers

        print(format_outliers(find_subcenter_outliers(str(run), real_number("--threshold", threshold), out and str(out),
                                                      clean_dir and str(clean_dir),
                                                      whole_number("--batch_size", batch_size, 1))))


def main(argv=None):
    """Entry point of `python -m recipes` and the `face-recipes` console script.

    A `UserError` (any refusal of the input) is printed as one `error:` line on stderr with exit
    code 2 (FACES_DEBUG=1 shows its traceback); any other exception is a bug of ours: its
    traceback, a line asking to report it, exit code 1.
    """
    import fire

    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_tensorflow(argv)
    try:
        if not argv or any(arg in ("--help", "-h") for arg in argv):
            print(help_text([arg for arg in argv if arg not in ("--help", "-h", "--")], CommandLine))
            return
        fire.Fire(CommandLine, command=keep_typed_text(argv), name="python -m recipes")
    except UserError as error:
        if os.environ.get("FACES_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception:  # noqa: BLE001 (anything that is not a refusal of the input is a bug of ours)
        traceback.print_exc()
        print("error: this is a bug in face-recipes, not a problem with your input; please report it to the "
              "project's maintainers with the command you ran and the traceback above.", file=sys.stderr)
        sys.exit(1)
