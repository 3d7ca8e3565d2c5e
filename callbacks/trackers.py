"""`--tracking`: which experiment trackers a run starts (TensorBoard, W&B, both or none), as one callback entry.

The `tracking` entry of the default callbacks builds the `tensorboard` and `wandb` callbacks that
`chosen_trackers` names, with their `--callback_args.tensorboard.*` / `--callback_args.wandb.*`.
"""
import os

from callbacks.tracking import api_key_configured
from registry import CALLBACKS

TRACKERS = {"tensorboard": ("tensorboard",), "wandb": ("wandb",), "both": ("tensorboard", "wandb"), "none": ()}


def chosen_trackers(tracking, wandb_mode="auto", environ=None):
    """(trackers to start, why) for `--tracking=tracking` and `--wandb=wandb_mode`.

    `tensorboard`, `wandb`, `both`, `none` say it; `auto` is TensorBoard (local files, no account)
    plus W&B only when it is asked for or can log online: `--wandb` online or offline, WANDB_MODE
    set to anything but disabled, or an API key configured (`api_key_configured`). `--wandb=disabled`
    leaves W&B out whatever `tracking` says.
    """
    environ = os.environ if environ is None else environ
    if tracking == "auto":
        wandb_env = environ.get("WANDB_MODE", "").strip().lower()
        if wandb_mode in ("online", "offline"):
            chosen, why = TRACKERS["both"], f"--wandb={wandb_mode}"
        elif wandb_env and wandb_env != "disabled":
            chosen, why = TRACKERS["both"], f"WANDB_MODE={wandb_env}"
        elif not wandb_env and api_key_configured(environ):
            chosen, why = TRACKERS["both"], "a W&B API key is configured"
        else:
            chosen, why = TRACKERS["tensorboard"], "no W&B API key configured"
    else:
        chosen, why = TRACKERS[tracking], f"--tracking={tracking}"
    if wandb_mode == "disabled" and "wandb" in chosen:
        chosen, why = tuple(name for name in chosen if name != "wandb"), "--wandb=disabled"
    return chosen, why


@CALLBACKS.register("tracking")
def tracking(context):
    """The trackers --tracking picks: TensorBoard and/or W&B (auto: TensorBoard, W&B when a key is configured)."""
    config = context.config
    chosen, why = chosen_trackers(config["tracking"], config["wandb"])
    if context.chief:
        where = f"; see it with: tensorboard --logdir {context.run.tensorboard_path}" if "tensorboard" in chosen else ""
        print(f"tracking: {', '.join(chosen) or 'none'} ({why}){where}")
    listed = config["callbacks"]
    return [CALLBACKS.build(name, context=context, **config["callback_args"].get(name, {}))
            for name in chosen if name not in listed]
