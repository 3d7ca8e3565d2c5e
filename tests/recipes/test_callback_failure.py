"""A plugin callback that raises stops the run with a line naming it; the printed resume command continues the run,
whose end-of-run summary reads the untrained value from history row 0."""
import json
import os
import re

import keras
import pytest

from recipes.commands.cli import main
from recipes.resolve import resolve_recipe
from recipes.train import TrainingStopped, train
from registry import CALLBACKS
from storage.checkpoints import list_checkpoints


class ExplodingAtEpoch(keras.callbacks.Callback):
    """Raises at the end of epoch `epoch` while `armed` (a user's bug, fixed by disarming it)."""

    armed = True

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if ExplodingAtEpoch.armed and epoch + 1 == self.epoch:
            raise RuntimeError(f"my callback broke at epoch {epoch + 1}")


CALLBACKS.register("exploding_at_epoch", lambda context, epoch=2: ExplodingAtEpoch(epoch))
CALLBACKS_BEFORE_CHECKPOINT = "[nan_guard,verification,run_record,exploding_at_epoch,checkpoint]"


@pytest.mark.slow
def test_a_raising_callback_is_named_and_the_printed_command_resumes_with_the_untrained_value(tiny_overrides,
                                                                                                capsys):
    ExplodingAtEpoch.armed = True
    recipe = resolve_recipe("softmax", {**tiny_overrides, "epochs": 3, "steps_per_epoch": 1,
                                        "callbacks": CALLBACKS_BEFORE_CHECKPOINT})
    with pytest.raises(TrainingStopped) as stopped:
        train(recipe)
    (run_dir,) = [os.path.join(tiny_overrides["runs_dir"], name) for name in os.listdir(tiny_overrides["runs_dir"])]
    message = str(stopped.value)
    assert stopped.value.exit_code == 1
    assert message.startswith(f"callback {__name__}.ExplodingAtEpoch raised RuntimeError: my callback broke at epoch 2 "
                              "(its traceback is above); training stopped.")
    command = f"python -m recipes run softmax --resume={run_dir}"
    assert message.endswith(f"The checkpoint of epoch 1 in {run_dir} is kept: fix the callback (or leave it out of "
                            f"--callbacks), then continue with: {command}")
    assert "RuntimeError: my callback broke at epoch 2" in capsys.readouterr().err  # the traceback
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1]

    ExplodingAtEpoch.armed = False  # the user fixed it
    main(command.split()[3:])
    out = capsys.readouterr().out
    assert [epoch for epoch, _ in list_checkpoints(run_dir)] == [1, 2, 3]
    with open(os.path.join(run_dir, "history.jsonl")) as file:
        rows = [json.loads(line) for line in file]
    assert [row["epoch"] for row in rows] == [0, 1, 2, 3]
    untrained = re.search(r"held-out verification (\S+): untrained (\S+) -> trained", out)
    assert untrained and untrained.group(2) == f"{rows[0][untrained.group(1)]:.4f}"


@pytest.mark.slow
def test_a_callback_raising_before_the_first_checkpoint_says_there_is_nothing_to_resume(tiny_overrides):
    ExplodingAtEpoch.armed = True
    recipe = resolve_recipe("softmax", {**tiny_overrides, "steps_per_epoch": 1,
                                        "callbacks": CALLBACKS_BEFORE_CHECKPOINT,
                                        "callback_args.exploding_at_epoch.epoch": 1})
    with pytest.raises(TrainingStopped, match=r"broke at epoch 1 .*No epoch was checkpointed in .*, so there is "
                                              r"nothing to resume: fix the callback .* and start the run again\.$"):
        train(recipe)
