"""The benchmark's reference computes what our losses compute, trains, and the report renders.

If the reference's losses differed from ours, the throughput comparison would compare two
different trainers; these tests pin them to the same numbers on the same weights.
"""
import numpy as np
import pytest
import tensorflow as tf

import backbones
from benchmarks import head_scaling, reference, report
from heads.norm_dense import NormDense
from losses import MarginLoss, SoftmaxLoss, center_update

CLASSES, EMBEDDING = 10, 16


@pytest.fixture(scope="module")
def shared_weights():
    """(embedder, our head, the reference model sharing the embedder and our head's kernel, images, labels)."""
    embedder = backbones.build_embedding_model("tiny", EMBEDDING, image_size=32)
    head = NormDense(CLASSES)
    head.build((None, EMBEDDING))
    model = reference.reference_model(embedder, CLASSES)
    model.get_layer("norm_dense").w.assign(head.kernel)
    generator = np.random.default_rng(0)
    images = generator.uniform(0, 255, (8, 32, 32, 3)).astype(np.float32)
    labels = np.array([0, 3, 3, 7, 1, 3, 9, 0], np.int32)
    return embedder, head, model, images, labels


def test_reference_output_is_embedding_then_our_logits(shared_weights):
    embedder, head, model, images, _ = shared_weights
    embedding = embedder(images, training=False)
    output = model(images, training=False).numpy()
    np.testing.assert_allclose(output[:, :EMBEDDING], embedding.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(output[:, EMBEDDING:], head(embedding).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["softmax", "arcface"])
def test_reference_loss_equals_ours_on_the_same_weights(shared_weights, name):
    embedder, head, model, images, labels = shared_weights
    embedding = embedder(images, training=False)
    logits = head(embedding)
    ours = SoftmaxLoss(CLASSES, EMBEDDING) if name == "softmax" else MarginLoss(CLASSES, EMBEDDING)
    theirs, _ = reference.reference_loss(name, CLASSES, EMBEDDING)
    expected = ours(labels, embedding, logits).numpy()
    actual = theirs(reference.one_hot(labels, CLASSES), model(images, training=False)).numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4)


def test_reference_center_update_equals_ours():
    generator = np.random.default_rng(1)
    centers = generator.normal(size=(CLASSES, EMBEDDING)).astype(np.float32)
    embeddings = generator.normal(size=(8, EMBEDDING)).astype(np.float32)
    labels = np.array([2, 2, 5, 2, 9, 5, 0, 1], np.int32)
    spec = reference.SpecCenterLoss(CLASSES, feature_dim=EMBEDDING, alpha=0.5)
    spec.centers.assign(centers)
    spec(reference.one_hot(labels, CLASSES), embeddings)
    np.testing.assert_allclose(spec.centers.numpy(), center_update(centers, embeddings, labels, 0.5).numpy(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_reference_trains_a_step_with_one_hot_labels():
    embedder = backbones.build_embedding_model("tiny", EMBEDDING, image_size=32)
    model = reference.build_reference(embedder, "center_arcface", CLASSES)
    images = tf.random.uniform((4, 32, 32, 3), 0, 255)
    logs = model.train_on_batch(images, reference.one_hot([1, 2, 2, 5], CLASSES), return_dict=True)
    assert np.isfinite(logs["loss"])
    assert np.abs(model.center_loss.centers.numpy()).sum() > 0


def test_report_renders_every_table():
    results = {
        "machine": {"cpu": "Test CPU", "cores": 2, "tensorflow": "x", "keras": "y", "python": "z",
                    "load_start": 1.0, "load_end": 1.0},
        "seconds": 60.0, "peak_flops": 1e11,
        "throughput": [{"backbone": "tiny", "loss": "softmax", "ours": 90.0, "reference": 100.0, "ratio": 0.9,
                        "ratio_low": 0.85, "ratio_high": 0.95, "train_flops": 1e8, "steps": 10}],
        "evaluation": {"backbone": "tiny", "images": 100, "batch_size": 8, "ours_over_predict": 1.5,
                       "speedup_over_spec": 2.0, "seconds": {"ours": 1.5, "predict": 1.0, "spec_loop": 3.0}},
    }
    head_rows = [{"side": side, "classes": count, "step_seconds": seconds, "step_times": [seconds] * 3,
                  "state_bytes": 2**20, "step_peak_bytes": 2**20, "memory_bytes": 2**21}
                 for count, seconds in ((1000, 1.0), (85742, 1.5)) for side in ("ours", "reference")]
    results["head_scaling"] = {"classes": [1000, 85742], "backbone": "tiny", "loss": "softmax", "batch_size": 32,
                               "rows": head_rows}
    results["head_scaling"]["summary"] = head_scaling.summarise(results["head_scaling"])
    text = report.build_report(results)
    assert "| tiny | softmax | 90.0 | 100.0 | 0.900x |" in text and "**no**: 10.0% slower" in text
    assert "tiny / softmax 0.900x" in text
    assert "| 85,742 | 1500 | 1500 | 1.50x (1.50-1.50) | 1.50x | **no** |" in text
    assert "85,742 classes cost 1.50x the step time of 1,000" in text
    assert "ours takes 1.50x one plain `predict` pass" in text



def test_recordio_rows_render_with_their_goals():
    base = {"machine": {"cpu": "Test CPU", "cores": 2, "tensorflow": "x", "keras": "y", "python": "z",
                        "load_start": 1.0, "load_end": 1.0}, "seconds": 60.0, "peak_flops": 1e11}
    index = {"records": 1_000_000, "build_seconds": 2.5, "load_seconds": 0.5, "extra_rss_bytes": 53 * 2**20,
             "first_batch_seconds": 4.0}
    speed = {"folder": (1000.0, 200.0), "rec": (700.0, 250.0), "ratio": 0.7, "images": 1536, "batch_size": 128}
    text = report.build_report({**base, "recordio": {"throughput": speed, "index": index}})
    assert "| `train_dataset` on the same images in `train.rec` | 700 | 250 | 0.70x | ≥ 0.8x | **no** |" in text
    assert "| 1,000,000 | 2.50 | 0.50 | 53 | 4.00 | load < 2 s and < 100 MiB | yes |" in text
    assert "- RecordIO: `train.rec` fed 0.70x" in text
    faster = report.build_report({**base, "recordio": {"throughput": {**speed, "ratio": 0.9}, "index": index}})
    assert "0.90x | ≥ 0.8x | yes |" in faster and "- RecordIO:" not in faster


@pytest.mark.slow
def test_field_backbones_benchmark_measures_both_trainers():
    from benchmarks import field_backbones

    row = field_backbones.measure("tiny", batch_size=2, warmup=1, turns=2, peak=1e12, progress=lambda message: None)
    assert row["weights"] == backbones.build_embedding_model("tiny", 512).count_params()
    assert row["ours"] > 0 and row["reference"] > 0 and row["ratio_low"] <= row["ratio"] <= row["ratio_high"]
    assert "| tiny |" in field_backbones.format_rows([row], 2, 1e12)


def test_onnx_import_time_benchmark_imports_mobilefacenet():
    pytest.importorskip("onnx")
    from benchmarks import onnx_import_time

    seconds, size, weights = onnx_import_time.measure("mobilefacenet")
    assert seconds > 0 and size > 0
    assert weights == 2_083_328  # the imported Keras model (arcface_torch's get_mbf at 112×112, 512-d)


def test_report_keeps_the_separately_measured_sections():
    previous = "# Benchmarks\n\nold tables\n\n### Measured separately\n\n#### Precision\n\nkept\n"
    text = report.with_separate_sections("# Benchmarks\n\nnew tables\n", previous)
    assert text == "# Benchmarks\n\nnew tables\n\n### Measured separately\n\n#### Precision\n\nkept\n"
    assert report.with_separate_sections("# new\n", "# old\n") == "# new\n"


@pytest.mark.slow
def test_precision_benchmark_times_reference_float32_and_mixed():
    from benchmarks import precision

    row = precision.measure("tiny", batch_size=2, warmup=1, turns=2, progress=lambda message: None)
    assert row["mixed"] == "mixed_bfloat16" and row["auto"] in ("float32", "mixed_bfloat16")
    assert row["auto_vs_reference"] == row[f"{row['auto']}_vs_reference"]
    for name in ("reference", "float32", "mixed_bfloat16"):
        assert row[f"{name}_images_per_second"] > 0
    assert "| tiny | 2 |" in precision.format_rows([row])


def test_precision_parity_verdict_compares_the_difference_with_the_float32_spread():
    from benchmarks.precision_parity import summarise

    rows = [{"recipe": "softmax", "backbone": "tiny", "precision": precision, "seed": seed, "acc": acc}
            for precision, accs in (("false", [0.70, 0.72, 0.74]), ("true", [0.71, 0.73, 0.75])) for seed, acc in
            enumerate(accs)]
    (summary,) = summarise(rows)
    assert summary["float32_spread"] == pytest.approx(0.02) and summary["difference"] == pytest.approx(0.01)
    assert summary["at_parity"]
    shifted = [{**row, "acc": row["acc"] + 0.05} if row["precision"] == "true" else row for row in rows]
    assert not summarise(shifted)[0]["at_parity"]


def test_optimisation_table_summarises_each_variant_and_marks_a_diverged_run():
    from benchmarks.optimisation import VARIANTS, format_rows

    rows = [{"mode": mode, "clip": clip, "seed": seed, "acc": 0.6 + 0.01 * seed, "loss": 30.0, "weight_norm": 20.0,
             "untrained_acc": 0.55 + 0.02 * seed} for mode, _, clip in VARIANTS for seed in (0, 1)]
    rows[0] = {**rows[0], "acc": None, "loss": None, "weight_norm": None, "untrained_acc": None}
    table = format_rows(rows).splitlines()
    assert len(table) == 3 + len(VARIANTS)
    assert table[2] == "| decoupled | off | diverged, 0.6100 | 0.6100 ± nan | 30.000 | 20.0 |"
    assert table[-2] == "| coupled | 5 | 0.6000, 0.6100 | 0.6050 ± 0.0071 | 30.000 | 20.0 |"
    assert table[-1] == "| untrained | | 0.5500, 0.5700 | 0.5600 | | |"


def test_step_memory_trace_replays_allocations_by_address():
    from benchmarks.step_memory_trace import Allocation, by_op, live_at_peak

    events = [Allocation(1, True, 10, 100, "a", "", 100), Allocation(2, True, 20, 50, "b", "", 40),
              Allocation(3, False, 10, 0, "", "", 0), Allocation(4, True, 30, 120, "c", "", 60),
              Allocation(5, False, 99, 0, "", "", 0)]  # 99: a buffer from before the step
    peak, live = live_at_peak(events)
    assert peak == 170 and {allocation.op for allocation in live} == {"b", "c"}
    assert live_at_peak(events, "requested") == (140, events[:2])  # a + b (100 + 40) beat b + c (40 + 60)
    assert by_op(live) == {("b", "0.0"): 50, ("c", "0.0"): 120}
