"""What the callbacks of a run share: the `RunContext` they are built from and the `TrainingState` they keep."""
import dataclasses
from typing import Optional

from callbacks.run_folder import RunFolder


@dataclasses.dataclass
class TrainingState:
    """The state a checkpoint keeps besides the weights; callbacks update it as training goes.

    epoch: epochs done. best / best_epoch: the best monitored verification value and its epoch.
    wandb_run_id: the tracker's run, continued on resume. stop_message: why training stopped early
    (not saved; set by the NaN guard). rng_states: dropout & co. seed states at the checkpoint.
    """

    epoch: int = 0
    best: Optional[float] = None
    best_epoch: Optional[int] = None
    wandb_run_id: Optional[str] = None
    rng_states: dict = dataclasses.field(default_factory=dict)
    stop_message: Optional[str] = None

    def to_dict(self):
        saved = dataclasses.asdict(self)
        saved.pop("stop_message")
        return saved

    @classmethod
    def from_dict(cls, stored):
        fields = {field.name for field in dataclasses.fields(cls)} - {"stop_message"}
        return cls(**{key: value for key, value in stored.items() if key in fields})


@dataclasses.dataclass
class RunContext:
    """Everything a registered callback factory `factory(context, **options)` may need.

    run: the run folder. model: the `FaceTrainingModel`. state: the shared `TrainingState`.
    config: the resolved run config as written to `recipe.json` (recipe fields + data facts).
    bin_paths: verification files. global_batch: images per step. chief: this process writes
    the run folder. resumed: continuing from a checkpoint. baseline: verification metrics of the
    untrained model (filled by the verification callback). every_worker_saves: a save of the model
    gathers the shards of its class-sharded head from all workers (a collective), so every worker
    takes part in it; a worker that is not the chief saves into its temporary run folder.
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
