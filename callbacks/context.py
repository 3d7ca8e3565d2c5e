"""`RunContext`: what a registered callback factory is built from."""
import dataclasses

from storage.run_folder import RunFolder
from storage.training_state import TrainingState


@dataclasses.dataclass
class RunContext:
    """Everything a registered callback factory `factory(context, **options)` may need.

    run: the run folder. model: the `FaceTrainingModel`. state: the shared `TrainingState`.
    config: the resolved run config as written to `recipe.json` (recipe fields + data facts).
    bin_paths: verification files. global_batch: images per step. chief: this process writes
    the run folder. resumed: continuing from a checkpoint. baseline: verification metrics of the
    untrained model (filled by the verification callback; on resume, row 0 of the run's history).
    every_worker_saves: a save of the model gathers the shards of its class-sharded head from all
    workers (a collective), so every worker takes part in it; a worker that is not the chief saves
    into its temporary run folder.
    """

    run: RunFolder
    model: object
    state: TrainingState
    config: dict
    bin_paths: tuple = ()
    global_batch: int = 1
    chief: bool = True
    resumed: bool = False
    baseline: dict = dataclasses.field(default_factory=dict)
    every_worker_saves: bool = False

    @property
    def saves_model(self):
        """True where this process runs the model's saves: the chief, and every worker if `every_worker_saves`."""
        return self.chief or self.every_worker_saves
