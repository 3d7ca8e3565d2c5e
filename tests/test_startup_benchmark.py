"""The start-up benchmark measures a fresh `python -m recipes`, and the report states its goal."""
import pytest

from benchmarks import report
from benchmarks.startup import run_once

MIB = 2**20


def test_list_starts_in_a_fresh_interpreter_within_200_mib():
    seconds, peak = run_once(["-m", "recipes", "list"], 0)
    assert seconds > 0 and 10 * MIB < peak < 200 * MIB  # TensorFlow alone takes over 600 MiB


def test_a_command_that_exits_otherwise_than_expected_is_not_measured():
    with pytest.raises(RuntimeError, match=r"exited with 2, not 0: .*Did you mean 'epochs'"):
        run_once(["-m", "recipes", "run", "softmax", "--epohcs=3"], 0)


def test_startup_rows_render_with_their_goal():
    base = {"machine": {"cpu": "Test CPU", "cores": 2, "tensorflow": "x", "keras": "y", "python": "z"},
            "seconds": 60.0, "peak_flops": 1e11}
    startup = {"repeats": 3, "tensorflow": {"command": "python -c \"import tensorflow\"", "seconds": 10.0,
                                            "peak_rss_bytes": 700 * MIB},
               "rows": [{"command": "list", "seconds": 0.5, "peak_rss_bytes": 40 * MIB, "ratio": 0.05},
                        {"command": "show arcface", "seconds": 3.0, "peak_rss_bytes": 40 * MIB, "ratio": 0.3}]}
    text = report.build_report({**base, "startup": startup})
    assert "| `list` | 0.50 | 0.050 | 40 | yes |" in text and "| `show arcface` | 3.00 | 0.300 | 40 | **no** |" in text
    assert "| `python -c \"import tensorflow\"` | 10.00 | 1 | 700 | (reference) |" in text
    assert "- Start-up: `show arcface` 0.30x of the TensorFlow import" in text
