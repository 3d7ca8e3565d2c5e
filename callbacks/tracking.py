"""Experiment tracking with Weights & Biases: mode choice, flat run config, per-epoch logging, the model artifact.

`start_tracking` opens one wandb run per training run (or continues it on resume) and never
prompts or fails for lack of an account: the mode is `online` when an API key is configured,
`offline` (a local run under `RUN_DIR/wandb/` that `wandb sync` uploads later) when none is, or
`disabled`. Anything wandb raises while logging is reported once and training goes on.
"""
import configparser
import netrc
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import keras
import numpy as np

MODES = ("auto", "online", "offline", "disabled")
# Hosts whose netrc entry `wandb login` writes (today's default and the classic one).
_DEFAULT_HOSTS = ("api.forge.coreweave.com", "api.wandb.ai")
_ENV_MODES = {"online": "online", "run": "online", "offline": "offline", "dryrun": "offline", "disabled": "disabled"}
_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def project_version():
    """The face-recipes version: from the source tree's setup.cfg, else the installed package's metadata."""
    parser = configparser.ConfigParser()
    try:
        parser.read(os.path.join(_PROJECT_ROOT, "setup.cfg"))
        version = parser.get("metadata", "version", fallback=None)
    except configparser.Error:
        version = None
    if version:
        return version
    try:
        from importlib.metadata import PackageNotFoundError, version as package_version

        return package_version("face-recipes")
    except PackageNotFoundError:
        return None


def git_commit():
    """(commit hash, has uncommitted changes) of the source tree, or (None, None) when git cannot tell.

    Read-only: `rev-parse` and `--no-optional-locks status`, which never write the index.
    """
    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", "-C", _PROJECT_ROOT, *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, dirty if commit else None


def _find_keys(config, keys):
    """{key: value} of the first occurrence of each of `keys` in a nested `get_config()` dict."""
    found = {}
    pending = [config]
    while pending:
        current = pending.pop(0)
        for key, value in current.items():
            if key in keys and key not in found and not isinstance(value, dict):
                found[key] = value
            elif isinstance(value, dict):
                pending.append(value)
    return found


def run_config(recipe, facts, loss_layer=None):
    """The flat wandb config of a run: every recipe field with its loss/schedule options resolved, plus `facts`.

    `facts` are what training resolved (dataset path and size, classes, strategy, replicas, ...).
    Loss options not given in the recipe are read from the built `loss_layer`'s config when
    given (e.g. the margins a preset chose), else are the loss's defaults. Keys look like
    `loss`, `loss_args.margin2`, `lr_schedule_args.decay`, `num_classes`.
    """
    from callbacks.lr_schedules import schedule_options
    from losses.base import loss_options

    fields = recipe.to_dict()
    options = loss_options(recipe.loss)
    built = _find_keys(loss_layer.get_config(), set(options)) if loss_layer is not None else {}
    fields["loss_args"] = {**options, **built, **recipe.loss_args}
    fields["lr_schedule_args"] = {**schedule_options(recipe.lr_schedule), **recipe.lr_schedule_args}
    commit, dirty = git_commit()
    return flatten({**fields, **facts, "project_version": project_version(), "git_commit": commit, "git_dirty": dirty})


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

            from callbacks.roc_plot import plot_roc

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


def start_tracking(recipe, run_dir, facts, run_id=None, enabled=True, loss_layer=None):
    """An `ExperimentTracker` for the training run of `recipe` in `run_dir` (disabled when not `enabled`).

    Project, entity, group (default: the recipe name), tags and run name (default: the run
    folder's name) come from the recipe's `wandb_*`, `tags` and `run_name` fields; the config
    is `run_config(recipe, facts, loss_layer)`.
    """
    mode = resolve_mode(recipe.wandb) if enabled else "disabled"
    if mode == "disabled":
        return ExperimentTracker()
    return ExperimentTracker.start(
        mode, run_dir, project=recipe.wandb_project, entity=recipe.wandb_entity,
        group=recipe.wandb_group or recipe.name, tags=recipe.tags,
        name=recipe.run_name or os.path.basename(os.path.normpath(run_dir)),
        config=run_config(recipe, facts, loss_layer), run_id=run_id,
    )


class TrackingCallback(keras.callbacks.Callback):
    """At each epoch end: adds `images_per_second` to the logs and logs them, with `lr` and `epoch`, to `tracker`.

    Put it after `VerificationCallback` (so the logs hold `<bin>/acc`, ...) and before the LR
    schedule and `RunRecord` (so `lr` is the rate the epoch trained with and the history file
    gets `images_per_second` too). Images/s = `images_per_step` × steps / seconds from the epoch's
    start to its last training step, so evaluation time is not counted.
    """

    def __init__(self, tracker, images_per_step):
        super().__init__()
        self.tracker = tracker
        self.images_per_step = int(images_per_step)
        self._epoch_start = self._last_step_end = time.time()
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = self._last_step_end = time.time()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += 1
        self._last_step_end = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        seconds = self._last_step_end - self._epoch_start
        if self._steps and seconds > 0:
            logs["images_per_second"] = round(self._steps * self.images_per_step / seconds, 2)
        lr = _number(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        self.tracker.log({"epoch": epoch + 1, "lr": lr, **logs})
