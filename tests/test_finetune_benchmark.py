"""benchmarks/finetune.py: skipped without a model; with one, a variant reports the starting and the final accuracy."""
import numpy as np

from benchmarks import finetune


def test_without_weights_the_benchmark_is_skipped(capsys):
    assert finetune.main([]) == 0
    assert capsys.readouterr().out.startswith("skipped: no --weights")


def test_a_variant_starts_from_the_given_model_and_trains(tiny_faces, tmp_path):
    import backbones
    from callbacks.verification import VerificationCallback

    model = backbones.build_embedding_model("tiny", 16, dropout=0.0, image_size=32)
    model.set_weights([weight + np.float32(0.05) for weight in model.get_weights()])
    path = str(tmp_path / "embedding.keras")
    model.save(path)
    rows, facts = finetune.run_benchmark(path, "tiny", tiny_faces.train_dir, tiny_faces.bin_path, epochs=1,
                                         batch_size=16, variants=finetune.VARIANTS[-1:], progress=lambda _: None)
    (row,) = rows
    expected = VerificationCallback([tiny_faces.bin_path], model, 128, image_size=32).evaluate()["verify"]["acc"]
    assert facts["embedding_size"] == 16 and facts["image_size"] == 32
    assert row["before"] == expected and 0.0 <= row["after"] <= 1.0 and np.isfinite(row["loss"])
    assert "| finetune recipe" in finetune.markdown_table(rows)
