"""A run's files on disk: the run folder, atomic writes, checkpoints, model files and the history record."""
