"""`TrainingState`: what a checkpoint keeps besides the weights."""
import dataclasses
from typing import Optional


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
