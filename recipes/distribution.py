"""TensorFlow's own distribution: choosing a `tf.distribute` strategy and the devices it runs on."""
import json
import os

import tensorflow as tf

from registry import UserError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
COLLECTIVE_TIMEOUT_SECONDS = 1800  # long enough for the chief to evaluate big .bin files between steps


def split_cpu(replicas):
    """Split the first CPU into `replicas` logical devices (before TF initialises its devices).

    Lets the mirrored path run and be tested on a machine with no GPU.
    """
    if replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as error:
        raise RuntimeError(
            f"--cpu_replicas={replicas}: TensorFlow's devices were already initialised in this process; "
            "set it in a fresh process (it is applied at the start of a run)."
        ) from error


def make_strategy(name, cpu_replicas=0):
    """The `tf.distribute.Strategy` named `name` (see STRATEGIES).

    auto: mirrored over all GPUs when more than one is visible (or over CPU replicas when
    `cpu_replicas` > 1), else the default (single-device) strategy. multi_worker reads the
    cluster from the `TF_CONFIG` environment variable, as TensorFlow documents it.
    """
    if name not in STRATEGIES:
        raise ValueError(f"--strategy={name!r}: choose one of {', '.join(STRATEGIES)}.")
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task).")
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=COLLECTIVE_TIMEOUT_SECONDS)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    split_cpu(cpu_replicas)
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 or cpu_replicas > 1 else "default"
    if name == "default":
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(devices=None if gpus else [f"/cpu:{i}" for i in range(max(1, cpu_replicas))])


def is_chief():
    """True on the worker that writes the run folder, checkpoints and tracking (worker 0, or no cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    return task.get("type", "chief") == "chief" or (task.get("type") == "worker" and task.get("index", 0) == 0
                                                     and "chief" not in config.get("cluster", {}))


# Training speed in bfloat16 mixed precision relative to float32 on a CPU with AVX512_BF16 / AMX, measured side by side
# in one process by `python -m benchmarks.precision` (arcface recipe, 1,000 classes, 112x112; batch 128, iresnet50 32;
# Intel Xeon with AMX, 2 cores; benchmarks/REPORT.md, "Measured separately").
CPU_BFLOAT16_SPEEDUP = {"resnet50v2": 1.20, "mobilenetv2": 0.67, "iresnet50": 1.67, "mobilefacenet": 0.82}
# Mixed float16 relative to float32 on a GPU, measured by `python -m benchmarks --gpu`: none measured yet.
GPU_FLOAT16_SPEEDUP = {}
WORTH_IT = 1.05  # mixed precision is chosen only when it measured at least this much faster


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU has bfloat16 arithmetic (AVX512_BF16 or AMX-BF16 flags in `cpuinfo`)."""
    try:
        with open(cpuinfo) as file:
            flags = set(file.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def precision_choice(mixed_precision, backbone, gpu=None, bfloat16_cpu=None):
    """(Keras dtype policy name, reason) for `--mixed_precision` ('auto', 'true' or 'false') and `backbone`.

    true: mixed_float16 on a GPU (Keras adds loss scaling), mixed_bfloat16 on a CPU. auto: mixed
    precision only where it measured at least WORTH_IT faster for this backbone on this kind of
    device (`GPU_FLOAT16_SPEEDUP`, `CPU_BFLOAT16_SPEEDUP` on a CPU with bfloat16); anything not
    measured trains in float32. Heads, losses and the embedding BatchNorm stay float32 either way.
    """
    gpu = bool(tf.config.list_physical_devices("GPU")) if gpu is None else gpu
    mixed = "mixed_float16" if gpu else "mixed_bfloat16"
    if mixed_precision == "false":
        return "float32", "--mixed_precision=false"
    if mixed_precision == "true":
        return mixed, "--mixed_precision=true"
    table = GPU_FLOAT16_SPEEDUP if gpu else CPU_BFLOAT16_SPEEDUP
    device = "GPU" if gpu else "CPU"
    if not gpu and not (cpu_has_bfloat16() if bfloat16_cpu is None else bfloat16_cpu):
        return "float32", "auto: this CPU has no bfloat16 arithmetic (AVX512_BF16/AMX)"
    speedup = table.get(backbone)
    if speedup is None:
        return "float32", (f"auto: {mixed} is not measured for {backbone} on a {device} "
                           f"(--mixed_precision=true to use it anyway)")
    reason = f"auto: {mixed} measured {speedup:.2f}x float32 for {backbone} on this kind of {device}"
    return (mixed if speedup >= WORTH_IT else "float32"), reason


def resolve_precision(recipe):
    """The Keras dtype policy name `recipe` trains with (see `precision_choice`)."""
    return precision_choice(recipe.mixed_precision, recipe.backbone)[0]


def per_worker_datasets(strategy, make_dataset, global_batch, start_step):
    """The training data for `strategy`: each worker of a multi-worker cluster builds and decodes only its share.

    `make_dataset(batch_size, start_step, shard, num_shards)` returns a batched dataset (e.g.
    `data.pipeline.train_dataset`). Multi-worker: `distribute_datasets_from_function`, one
    shard per input pipeline (`tf.distribute.InputContext`), batches of the per-replica size,
    `start_step` counted in that shard's batches (global steps x local replicas). Any other
    strategy: one dataset of `global_batch`, which Keras splits over the local replicas.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return make_dataset(global_batch, start_step, 0, 1)

    def dataset_fn(context):
        local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
        return make_dataset(context.get_per_replica_batch_size(global_batch), start_step * local_replicas,
                            context.input_pipeline_id, context.num_input_pipelines)

    return strategy.distribute_datasets_from_function(dataset_fn)
