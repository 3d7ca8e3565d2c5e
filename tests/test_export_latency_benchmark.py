"""The export latency benchmark times every runtime in turns and renders its table."""
import time

from benchmarks.export_latency import format_table, interleaved_medians


def test_runners_are_warmed_up_then_timed_in_turns_with_the_order_reversed_every_round():
    calls = []

    def runner(name, seconds):
        def run(images):
            calls.append((name, images))
            time.sleep(seconds)
        return run

    medians = interleaved_medians({"fast": runner("fast", 0.0), "slow": runner("slow", 0.02)}, "batch", 3)
    assert [name for name, _ in calls] == ["fast", "slow", "fast", "slow", "slow", "fast", "fast", "slow"]
    assert all(images == "batch" for _, images in calls)
    assert medians["slow"] >= 0.02 > medians["fast"]


def test_table_has_one_row_per_runtime_and_no_size_for_keras():
    table = format_table([("Keras predict", 500.04, 21.6, None), ("ONNX Runtime", 31.84, 55.4, 11.44)], "tiny", 64)
    lines = table.splitlines()
    assert lines[0] == "| tiny, 112x112, CPU | 1 image (ms, median) | batch 64 (images/s) | file (MB) |"
    assert lines[2:] == ["| Keras predict | 500.0 | 22 |  |", "| ONNX Runtime | 31.8 | 55 | 11.4 |"]
