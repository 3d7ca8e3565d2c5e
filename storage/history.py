"""The local run record `history.jsonl`: one JSON row per epoch; reading it and cutting it back on resume."""
import json
import os

from storage.atomic import atomic_write


def read_history(path):
    """The rows of a `history.jsonl` file (a torn last line from a crash is ignored)."""
    rows = []
    with open(path) as file:
        for line in file:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return rows


def truncate_history(path, epochs_done):
    """Drop rows after epoch `epochs_done` from `history.jsonl` (atomically), e.g. before a resume."""
    if not os.path.isfile(path):
        return
    kept = [row for row in read_history(path) if row.get("epoch", 0) <= epochs_done]

    def write(temp_path):
        with open(temp_path, "w") as file:
            file.writelines(json.dumps(row) + "\n" for row in kept)

    atomic_write(path, write)


def untrained_metrics(path):
    """{metric: float} of the untrained model: row 0 (`"epoch": 0`) of the `history.jsonl` at `path`; {} without one.

    Non-finite values stored as text ("nan", "inf") come back as floats; other fields are left out.
    """
    if not os.path.isfile(path):
        return {}
    row = next((row for row in read_history(path) if row.get("epoch") == 0), {})
    metrics = {}
    for key, value in row.items():
        if key == "epoch" or isinstance(value, bool):
            continue
        try:
            metrics[key] = float(value)
        except (TypeError, ValueError):
            continue
    return metrics
