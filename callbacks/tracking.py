"""Experiment tracking with Weights & Biases: mode choice, flat run config, per-epoch logging, the model artifact.

The `wandb` callback; `--tracking` (`callbacks.trackers`) decides whether a run builds it.

`start_tracking` opens one wandb run per training run (or continues it on resume) and never
prompts or fails for lack of an account: the mode is `online` when an API key is configured,
`offline` (a local run under `RUN_DIR/wandb/` that `wandb sync` uploads later) when none is, or
`disabled`. Anything wandb raises while logging is reported once and training goes on.
"""
import configparser
import netrc
import os
import sys
from urllib.parse import urlsplit

import keras
import numpy as np

from evaluation.verification import bin_name, load_roc_curves
from registry import CALLBACKS

MODES = ("auto", "online", "offline", "disabled")
# Hosts whose netrc entry `wandb login` writes (today's default and the classic one).
_DEFAULT_HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")
_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}


def _warn(message):
    print(f"warning: {message}", file=sys.stderr)


def _wandb_hosts(environ):
    """Netloc of every W&B server a stored key could be for: WANDB_BASE_URL, `wandb login --host`, defaults."""
    hosts = list(_DEFAULT_HOSTS)
    urls = [environ.get("WANDB_BASE_URL", "")]
    config_dir = environ.get("WANDB_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".config", "wandb")
    parser = configparser.ConfigParser()
    try:
        parser.read(os.path.join(config_dir, "settings"))
        urls.append(parser.get("default", "base_url", fallback=""))
    except configparser.Error:
        pass
    hosts += [urlsplit(url).netloc for url in urls if url and urlsplit(url).netloc]
    return hosts


def _netrc_path(environ):
    if environ.get("NETRC"):
        return os.path.expanduser(environ["NETRC"])
    home = environ.get("HOME") or os.path.expanduser("~")
    for name in (".netrc", "_netrc"):
        if os.path.isfile(os.path.join(home, name)):
            return os.path.join(home, name)
    return os.path.join(home, ".netrc")


def api_key_configured(environ=None):
    """True when a W&B API key is configured: WANDB_API_KEY (or an identity token file) or a netrc entry.

    Looks only at the environment and local files (as `wandb login` leaves them); never at the network.
    """
    environ = os.environ if environ is None else environ
    if environ.get("WANDB_API_KEY") or environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    try:
        entries = netrc.netrc(_netrc_path(environ))
    except (OSError, netrc.NetrcParseError):
        return False
    return any((entries.authenticators(host) or (None, None, None))[2] for host in _wandb_hosts(environ))


def resolve_mode(requested="auto", environ=None):
    """The wandb mode to run in: 'online', 'offline' or 'disabled'.

    `auto` follows WANDB_MODE when it is set, else is `online` when `api_key_configured()` and
    `offline` otherwise. `online` (asked for, or from WANDB_MODE) without a key becomes `offline`
    with a warning, since wandb would otherwise prompt for a key or fail.
    """
    environ = os.environ if environ is None else environ
    if requested not in MODES:
        raise ValueError(f"--wandb={requested!r}: choose one of {', '.join(MODES)}.")
    mode = requested
    if mode == "auto":
        env_mode = environ.get("WANDB_MODE", "").strip().lower()
        mode = _ENV_MODES.get(env_mode) or ("online" if api_key_configured(environ) else "offline")
    if mode == "online" and not api_key_configured(environ):
        _warn("wandb mode 'online' but no W&B API key is configured (WANDB_API_KEY or `wandb login`); "
              "logging offline instead. Upload later with `wandb sync`.")
        mode = "offline"
    return mode


def flatten(mapping, prefix=""):
    """{'loss_args': {'margin2': 0.5}} → {'loss_args.margin2': 0.5}: nested dicts as dotted keys, lists kept."""
    flat = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _number(value):
    """A float for wandb (NaN/Inf stay floats, which wandb accepts), or the value unchanged if not numeric."""
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError):
        return value


class ExperimentTracker:
    """One wandb run (or nothing when disabled). Every call is safe: wandb errors become one warning."""

    def __init__(self, run=None, mode="disabled"):
        self.run = run
        self.mode = mode if run is not None else "disabled"
        self._warned = False

    @property
    def run_id(self):
        """The wandb run id (kept in checkpoints so a resume continues the same run), or None when disabled."""
        return self.run.id if self.run is not None else None

    @classmethod
    def start(cls, mode, run_dir, project, entity=None, group=None, tags=(), name=None, config=None, run_id=None):
        """Open (or, with `run_id`, continue) a wandb run whose local files go to `run_dir/wandb/`.

        `mode` is resolved by `resolve_mode`. An online start that fails (no network, bad key)
        falls back to offline with a warning.
        """
        mode = resolve_mode(mode)
        if mode == "disabled":
            return cls()
        import wandb

        kwargs = dict(dir=run_dir, project=project, entity=entity or None, group=group or None, tags=list(tags),
                      name=name, id=run_id, resume="allow" if run_id else None, job_type="train")
        try:
            run = wandb.init(mode=mode, **kwargs)
        except Exception as error:  # noqa: BLE001 (whatever wandb raises, training must go on)
            if mode != "online":
                _warn(f"wandb could not start ({type(error).__name__}: {error}); not tracking this run.")
                return cls()
            _warn(f"wandb could not start online ({type(error).__name__}: {str(error).splitlines()[0]}); "
                  "logging offline instead. Upload later with `wandb sync`.")
            return cls.start("offline", run_dir, project, entity, group, tags, name, config, run_id)
        tracker = cls(run, mode)
        tracker._call(run.define_metric, "epoch")
        tracker._call(run.define_metric, "global_step")
        tracker._call(run.define_metric, "step/*", step_metric="global_step")
        tracker._call(run.define_metric, "*", step_metric="epoch")
        if config:
            tracker._call(run.config.update, config, allow_val_change=True)
        return tracker

    def _call(self, function, *args, **kwargs):
        """`function(*args, **kwargs)`, or None with a single warning if wandb raises."""
        try:
            return function(*args, **kwargs)
        except Exception as error:  # noqa: BLE001
            if not self._warned:
                self._warned = True
                _warn(f"wandb: {type(error).__name__}: {error}; training continues.")
            return None

    def log(self, metrics):
        """Log {name: value} as one history row (x axis: its 'epoch' entry)."""
        if self.run is not None:
            self._call(self.run.log, {key: _number(value) for key, value in metrics.items()})

    def log_best_model(self, path, monitor=None, best=None, best_epoch=None):
        """Log the embedding model file at `path` as a 'model' artifact, and the best `monitor` value in the summary."""
        if self.run is None or not path or not os.path.isfile(path):
            return
        if monitor is not None and best is not None:
            self._call(self.run.summary.update, {f"best/{monitor}": float(best), "best/epoch": best_epoch})

        def log_artifact():
            import wandb

            artifact = wandb.Artifact(f"{self.run.id}-best-embedding", type="model", metadata={
                "monitor": monitor, "best": None if best is None else float(best), "best_epoch": best_epoch})
            artifact.add_file(path, name=os.path.basename(path))
            self.run.log_artifact(artifact, aliases=["best", "latest"])

        self._call(log_artifact)

    def log_roc_curves(self, curves, epoch):
        """Log one ROC picture per verification file, `<bin>/roc` (log FPR axis), of the best `epoch`.

        curves: {bin name: (fpr, tpr)}. The figure is rendered in memory; nothing is written to the run folder.
        """
        if self.run is None or not curves:
            return

        def log_images():
            import wandb

            from evaluation.roc_plot import plot_roc

            images = {}
            for name, curve in curves.items():
                figure = plot_roc({f"{name}, epoch {epoch}": curve}, None, title=f"ROC on {name} (best epoch {epoch})")
                figure.canvas.draw()
                pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
                images[f"{name}/roc"] = wandb.Image(pixels, caption=f"best epoch {epoch}")
            self.run.log(images)
            self.run.summary.update({"roc/epoch": epoch})

        self._call(log_images)

    def finish(self, exit_code=0):
        """Close the run (uploads the rest when online); safe to call twice or when disabled."""
        if self.run is not None:
            run, self.run = self.run, None
            self._call(run.finish, exit_code=exit_code)


def start_tracking(config, run_dir, run_id=None):
    """An `ExperimentTracker` for the run whose resolved `config` (the dict of `recipe.json`) is given.

    Mode, project, entity, group (default: the recipe name), tags and run name (default: the run
    folder's name) come from its `wandb*`, `tags` and `run_name` keys; the wandb config is the
    flattened `config`. `run_id` continues that wandb run (resume).
    """
    mode = resolve_mode(config["wandb"])
    if mode == "disabled":
        return ExperimentTracker()
    return ExperimentTracker.start(
        mode, run_dir, project=config["wandb_project"], entity=config["wandb_entity"],
        group=config["wandb_group"] or config["name"], tags=config["tags"],
        name=config["run_name"] or os.path.basename(os.path.normpath(run_dir)), config=flatten(config), run_id=run_id,
    )


class TrackingCallback(keras.callbacks.Callback):
    """Logs to `tracker`: every `log_every_steps` steps `step/loss`, `step/lr`, `step/images_per_second`
    (x axis `global_step`, the optimizer's step count) and any verification done at that step; at
    each epoch end the epoch's logs with `lr` (x axis `epoch`); `baseline` (the untrained model's
    verification) as epoch 0; and the best embedding model as an artifact whenever `state.best_epoch`
    moves, so a killed run keeps it; at the end, the best epoch's ROC curves from `roc_path`. Put it after
    the verification and throughput callbacks.
    """

    def __init__(self, tracker, state, best_path=None, monitor=None, log_every_steps=50, baseline=None, roc_path=None):
        super().__init__()
        self.roc_path = roc_path
        self.tracker = tracker
        self.state = state
        self.best_path = best_path
        self.monitor = monitor
        self.log_every_steps = int(log_every_steps)
        self.baseline = baseline
        self._logged_best_epoch = state.best_epoch

    def _lr(self):
        return _number(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))

    def on_train_begin(self, logs=None):
        self._step = int(self.model.optimizer.iterations.numpy())
        self.state.wandb_run_id = self.tracker.run_id
        if self.baseline:
            self.tracker.log({"epoch": 0, **self.baseline})

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._step += 1
        step = self._step
        verified = {key: value for key, value in logs.items() if "/" in key}
        if verified or (self.log_every_steps and step % self.log_every_steps == 0):
            row = {f"step/{key}": logs[key] for key in ("loss", "accuracy", "images_per_second") if key in logs}
            self.tracker.log({"global_step": step, **row, "step/lr": self._lr(),
                              **{f"step/{key}": value for key, value in verified.items()}})

    def on_epoch_end(self, epoch, logs=None):
        self.tracker.log({"epoch": epoch + 1, "lr": self._lr(), **(logs or {})})
        if self.state.best_epoch != self._logged_best_epoch:
            self._logged_best_epoch = self.state.best_epoch
            self.tracker.log_best_model(self.best_path, self.monitor, self.state.best, self.state.best_epoch)

    def on_train_end(self, logs=None):
        if self.roc_path and os.path.isfile(self.roc_path):
            self.tracker.log_roc_curves(*load_roc_curves(self.roc_path))

    def close(self, exit_code):
        """Finish the wandb run (called by the trainer also when training fails)."""
        self.tracker.finish(exit_code=exit_code)


@CALLBACKS.register("wandb")
def wandb_tracking(context):
    """Weights & Biases (mode: --wandb): per-step and per-epoch metrics, the run config, the best model artifact."""
    if not context.chief:
        return None
    tracker = start_tracking(context.config, context.run.path, run_id=context.state.wandb_run_id)
    monitor = context.config["eval_monitor"] or (f"{bin_name(context.bin_paths[-1])}/acc" if context.bin_paths else None)
    return TrackingCallback(tracker, context.state, best_path=context.run.best_embedding_path, monitor=monitor,
                            log_every_steps=context.config["log_every_steps"],
                            baseline=None if context.resumed else context.baseline,
                            roc_path=context.run.best_roc_path)
