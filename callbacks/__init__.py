"""Keras callbacks for training runs: verification, LR schedules, run record; schedules register in `registry.CALLBACKS`."""
from callbacks import lr_schedules  # noqa: F401  (registers the schedules)
