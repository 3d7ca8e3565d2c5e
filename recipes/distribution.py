"""TensorFlow's own distribution: choosing a `tf.distribute` strategy and the devices it runs on."""
import json
import os

import tensorflow as tf

from recipes.recipe import STRATEGIES
COLLECTIVE_TIMEOUT_SECONDS = 1800  # long enough for the chief to evaluate big .bin files between steps


def split_cpu(replicas):
    """Split the first CPU into `replicas` logical devices (before TF initialises its devices).

    Lets the mirrored path run and be tested on a machine with no GPU.
    """
    if replicas <= 1:
        return
    cpus = tf.config.list_physical_devices("CPU")
    if len(tf.config.get_logical_device_configuration(cpus[0]) or ()) == replicas:
        return  # split so already, e.g. by the test suite before TensorFlow initialised
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
            raise ValueError("--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task).")
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
WORTH_IT = 1.05  # mixed precision is chosen only when it measured at least this much faster
# Mixed precision on a GPU follows its tensor cores, by compute capability (major, minor): bfloat16 ones from Ampere
# (8.0) on, float16 ones from Volta (7.0) on (Volta, Turing: float16 only), none before.
GPU_TENSOR_CORES = (("mixed_bfloat16", (8, 0), "bfloat16 tensor cores (Ampere or newer): no loss scaling needed"),
                    ("mixed_float16", (7, 0), "float16 tensor cores: with dynamic loss scaling"))
# Measured on a GPU, relative to float32: one H200 (compute capability 9.0), batch 128, the same Keras layers on Keras'
# JAX backend (benchmarks/REPORT.md, "GPU"). A policy measured below WORTH_IT is passed over for the next one.
GPU_SPEEDUP = {"iresnet50": {"mixed_float16": 1.38, "mixed_bfloat16": 1.65},
               "resnet50v2": {"mixed_float16": 1.19, "mixed_bfloat16": 0.88}}


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU has bfloat16 arithmetic (AVX512_BF16 or AMX-BF16 flags in `cpuinfo`)."""
    try:
        with open(cpuinfo) as file:
            flags = set(file.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def gpu_compute_capability():
    """(major, minor) compute capability of the first visible GPU, or None (no GPU, or TensorFlow does not say)."""
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability")
    return tuple(int(part) for part in capability) if capability else None


def precision_choice(mixed_precision, backbone, gpu=None, bfloat16_cpu=None, compute_capability=None):
    """(Keras dtype policy name, reason) for `--mixed_precision` ('auto', 'true' or 'false') and `backbone`.

    true: mixed_float16 on a GPU (Keras adds loss scaling; arcface_torch's fp16), mixed_bfloat16
    on a CPU. auto on a GPU: by its `compute_capability` (default: the first visible GPU's),
    mixed_bfloat16 from 8.0, mixed_float16 on 7.x, float32 below or unknown (`GPU_TENSOR_CORES`),
    passing over a policy measured slower for this backbone (`GPU_SPEEDUP`). auto on a CPU:
    mixed_bfloat16 only where it measured at least WORTH_IT faster for this backbone on a CPU with
    bfloat16 (`CPU_BFLOAT16_SPEEDUP`). Heads, losses and the embedding BatchNorm stay float32 either way.
    """
    if compute_capability is not None and gpu is None:
        gpu = True
    gpu = bool(tf.config.list_physical_devices("GPU")) if gpu is None else gpu
    mixed = "mixed_float16" if gpu else "mixed_bfloat16"
    if mixed_precision == "false":
        return "float32", "--mixed_precision=false"
    if mixed_precision == "true":
        return mixed, "--mixed_precision=true"
    if gpu:
        return _gpu_choice(backbone, gpu_compute_capability() if compute_capability is None else compute_capability)
    if not (cpu_has_bfloat16() if bfloat16_cpu is None else bfloat16_cpu):
        return "float32", "auto: this CPU has no bfloat16 arithmetic (AVX512_BF16/AMX)"
    speedup = CPU_BFLOAT16_SPEEDUP.get(backbone)
    if speedup is None:
        return "float32", (f"auto: mixed_bfloat16 is not measured for {backbone} on a CPU "
                           f"(--mixed_precision=true to use it anyway)")
    reason = f"auto: mixed_bfloat16 measured {speedup:.2f}x float32 for {backbone} on this kind of CPU"
    return ("mixed_bfloat16" if speedup >= WORTH_IT else "float32"), reason


def _gpu_choice(backbone, capability):
    """`precision_choice`'s auto on a GPU of compute `capability` (major, minor) or None."""
    if capability is None:
        return "float32", "auto: the GPU's compute capability is unknown (--mixed_precision=true for mixed_float16)"
    capability = tuple(int(part) for part in capability)
    version = ".".join(map(str, capability))
    passed_over = []
    for policy, first, what in GPU_TENSOR_CORES:
        if capability < first:
            continue
        speedup = GPU_SPEEDUP.get(backbone, {}).get(policy)
        if speedup is not None and speedup < WORTH_IT:
            passed_over.append(f"{policy} measured {speedup:.2f}x float32 for {backbone}")
            continue
        return policy, f"auto: GPU compute capability {version}, {what}" + "".join(f"; {text}" for text in passed_over)
    if passed_over:
        return "float32", f"auto: GPU compute capability {version}; " + "; ".join(passed_over)
    return "float32", f"auto: GPU compute capability {version} has no tensor cores (below 7.0)"


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
