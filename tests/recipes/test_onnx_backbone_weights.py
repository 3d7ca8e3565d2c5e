"""`--backbone_weights=FILE.onnx`: the file decides the backbone's options, as recipe.json records them, also on
resume; a bad file is refused in one line before any data is read."""
import json

import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from benchmarks.onnx_graphs import mobilefacenet_graph  # noqa: E402
from recipes.commands.cli import main  # noqa: E402
from recipes.recipe import Recipe  # noqa: E402
from recipes.resolve import resolve_recipe  # noqa: E402
from recipes.train import build_training_model, with_onnx_variant  # noqa: E402


@pytest.fixture(scope="module")
def w600k_file(tmp_path_factory):
    """A 32×32, 16-d MobileFaceNet with the released w600k_mbf embedding block, BNs folded."""
    path = str(tmp_path_factory.mktemp("onnx") / "w600k_mbf.onnx")
    onnx.save(mobilefacenet_graph(units=16, image_size=32, fold=True, embedding_block="pointwise_fc"), path)
    return path


def test_the_files_options_go_into_the_recipe_and_survive_its_round_trip(w600k_file, tiny_overrides, capsys):
    """prepare_run's `with_onnx_variant`: what recipe.json stores (`resolved()`) is what the file is; a resumed run's
    stored recipe (options spelled out, blocks as a list) passes again unchanged."""
    overrides = {**tiny_overrides, "backbone": "mobilefacenet", "image_size": 32, "backbone_weights": w600k_file}
    recipe = with_onnx_variant(resolve_recipe("softmax", overrides))
    assert "--backbone_args.embedding_block='pointwise_fc'" in capsys.readouterr().out
    stored = json.loads(json.dumps(recipe.resolved()))
    assert stored["backbone_args"] == {"scale": 2, "blocks": [1, 4, 6, 2], "embedding_block": "pointwise_fc"}
    again = with_onnx_variant(Recipe.from_dict(stored))
    assert again.resolved()["backbone_args"] == stored["backbone_args"]
    model = build_training_model(again, num_classes=8)
    assert model.embedder.get_layer("pointwise_fc").use_bias


@pytest.mark.parametrize("content, option, message", [
    (b"not a model at all", None, "not an ONNX model"),
    (None, "--backbone_args.embedding_block=gdc", "--backbone_args.embedding_block='gdc', but"),
], ids=["not_onnx", "option_against_the_file"])
def test_a_refused_backbone_weights_file_exits_2_with_one_line(w600k_file, tiny_faces, tmp_path, capsys, content,
                                                                option, message):
    path = w600k_file
    if content is not None:
        path = str(tmp_path / "bad.onnx")
        with open(path, "wb") as file:
            file.write(content)
    argv = ["run", "softmax", "--backbone=mobilefacenet", "--image_size=32", f"--backbone_weights={path}",
            f"--data={tiny_faces.train_dir}", f"--eval_bins=[{tiny_faces.bin_path}]", f"--runs_dir={tmp_path / 'runs'}"]
    with pytest.raises(SystemExit) as stopped:
        main(argv + ([option] if option else []))
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.startswith("error: ") and error.count("\n") == 1 and message in error
    assert not (tmp_path / "runs").exists()


def test_eval_of_a_truncated_onnx_file_exits_2_with_one_line(w600k_file, tiny_faces, tmp_path, capsys):
    with open(w600k_file, "rb") as file:
        whole = file.read()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(SystemExit) as stopped:
        main(["eval", f"--model={path}", f"--bins=[{tiny_faces.bin_path}]"])
    error = capsys.readouterr().err
    assert stopped.value.code == 2 and error.count("\n") == 1 and "truncated" in error
