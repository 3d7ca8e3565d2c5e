"""The built-in recipes, registered in `registry.RECIPES`: each returns a `Recipe`."""
import dataclasses

from recipes.recipe import Recipe
from registry import RECIPES


@RECIPES.register("softmax")
def softmax():
    """Softmax cross-entropy on NormDense logits (the spec's first model)."""
    return Recipe(name="softmax", loss="softmax")


SEED_MARGINS = (0.9, 0.4, 0.15)
PAPER_MARGINS_HINT = ("the ArcFace paper's are (1, 0, 0.5): --loss_args.preset=arcface (other presets: cosface, "
                      "sphereface, combined)")


def recipe_notes(resolved):
    """Things a user of the resolved recipe dict `resolved` should know (one sentence each): the seed
    document's default margins where the loss uses them."""
    loss_args = resolved.get("loss_args", {})
    margins = tuple(loss_args.get(key) for key in ("margin1", "margin2", "margin3"))
    if loss_args.get("preset") == "spec" and margins == SEED_MARGINS:
        return [f"the margins (m1, m2, m3) = {SEED_MARGINS} of loss {resolved.get('loss')!r} are the seed "
                f"document's default, not the paper's: {PAPER_MARGINS_HINT}."]
    return []


@RECIPES.register("arcface")
def arcface():
    """Seed document's margins (0.9, 0.4, 0.15), s 64; the paper's ArcFace (1, 0, 0.5): --loss_args.preset=arcface."""
    return Recipe(name="arcface", loss="arcface")


@RECIPES.register("cosface")
def cosface():
    """CosFace: margins (1, 0.35, 0), s = 64."""
    return Recipe(name="cosface", loss="arcface", loss_args={"preset": "cosface"})


@RECIPES.register("center_softmax")
def center_softmax():
    """Softmax + center loss (factor 1, centre step 0.5)."""
    return Recipe(name="center_softmax", loss="center_softmax")


@RECIPES.register("center_arcface")
def center_arcface():
    """Seed margins (0.9, 0.4, 0.15) + center loss (factor 1, step 0.5); paper's (1, 0, 0.5): --loss_args.preset=arcface."""
    return Recipe(name="center_arcface", loss="center_arcface")


@RECIPES.register("adaface")
def adaface():
    """AdaFace (mk-minchul/AdaFace): m 0.4, h 0.333, s 64, t_alpha 0.01."""
    return Recipe(name="adaface", loss="adaface")


@RECIPES.register("magface")
def magface():
    """MagFace (IrvingMeng/MagFace): l_a 10, u_a 110, l_m 0.45, u_m 0.8, λ_g 35, s 64."""
    return Recipe(name="magface", loss="magface")


@RECIPES.register("curricularface")
def curricularface():
    """CurricularFace (HuangYG123/CurricularFace): m 0.5, s 64, t from 0 with momentum 0.01."""
    return Recipe(name="curricularface", loss="curricularface")


@RECIPES.register("elasticface")
def elasticface():
    """ElasticFace-Arc (fdbtrs/ElasticFace): margin ~ N(0.5, 0.05) per sample, s 64."""
    return Recipe(name="elasticface", loss="elasticface")


@RECIPES.register("subcenter_arcface")
def subcenter_arcface():
    """Sub-center ArcFace (insightface): the subcenter head (k = 3) with ArcFace (1, 0, 0.5), s 64."""
    return Recipe(name="subcenter_arcface", head="subcenter", head_args={"k": 3}, loss="arcface",
                  loss_args={"preset": "arcface"})


# arcface_torch's published configurations (deepinsight/insightface, recognition/arcface_torch/configs/).
# Their lr is for their global batch: 8 GPUs x 128 = 1024. With another global batch, scale --lr linearly.
# Margins: arcface_torch's `margin_list (m1, m2, m3)` = (angle scale, angle add, cosine subtract) is
# (margin1, margin3, margin2) in our (spec's) order.
ARCFACE_TORCH_OPTIMISATION = {"weight_decay_mode": "coupled", "weight_decay_exclude": []}
# Appended to each field recipe's docstring: where each training value comes from.
ARCFACE_TORCH_TRAINING = """

    Trained as arcface_torch trains at that commit (the same lines at d9cb10e and fe116a4, recognition/arcface_torch/):
    - weight_decay_mode=coupled, weight_decay_exclude=[]: train.py 84-86 `torch.optim.SGD(params=[backbone,
      partial_fc], lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)`, PyTorch's L2 decay (wd·w added to
      the gradient) of every parameter, BatchNorm and PReLU included;
    - clip_grad_norm=5: train.py 139-140 `amp.unscale_(opt)`, `torch.nn.utils.clip_grad_norm_(backbone.parameters(), 5)`;
    - lr_schedule polynomial, power 2: lr_scheduler.py 10 `PolyScheduler` `self.power = 2` (warm-up base·t/W): the
      same rate at every update, the first included;
    - margin_gradient=exact: losses.py 44-50 differentiates `cos_theta_m = target_logit * self.cos_m - sin_theta *
      self.sin_m` (since 657ae30, 2022-12-15, arcface_torch computes the margin under torch.no_grad():
      --loss_args.margin_gradient=straight_through);
    - mixed_precision=true (mixed_float16 with dynamic loss scaling on a GPU): configs/<name>.py 14 `config.fp16 = True`.
    Differs on purpose: the margin's guard where θ + m > π keeps cos θ (arcface_torch: cos θ − m·sin m); Keras' loss
    scale starts at 2^15 and doubles after 2,000 finite steps (train.py 126 `GradScaler(growth_interval=100)`: 2^16,
    every 100)."""


def _cites(function):
    """Append ARCFACE_TORCH_TRAINING to a field recipe's docstring."""
    function.__doc__ += ARCFACE_TORCH_TRAINING
    return function


def _arcface_torch(name, backbone, epochs, lr, weight_decay, preset, warmup_epochs=0.0):
    """A recipe with arcface_torch's training setup: SGD momentum 0.9 with PyTorch's (coupled) weight decay of every
    parameter, the backbone's gradient clipped to norm 5, batch 128 per replica, per-step polynomial decay (power 2)
    with linear warm-up, exact margin gradient, 512-d, mixed precision (fp16 on a GPU), no dropout."""
    return Recipe(name=name, backbone=backbone, embedding_size=512, dropout=0.0, loss="arcface",
                  loss_args={"preset": preset, "scale": 64.0, "margin_gradient": "exact"}, optimizer="sgd",
                  optimizer_args={"momentum": 0.9, "weight_decay": weight_decay, **ARCFACE_TORCH_OPTIMISATION},
                  clip_grad_norm=5.0, lr=lr, lr_schedule="polynomial",
                  schedule_args={"warmup_epochs": warmup_epochs, "power": 2.0}, epochs=epochs, batch_size=128,
                  mixed_precision="true")


@RECIPES.register("ms1mv3_r50")
@_cites
def ms1mv3_r50():
    """arcface_torch `configs/ms1mv3_r50.py` (commit d9cb10e): iresnet50, ArcFace (1, 0, 0.5) s 64, SGD lr 0.1
    (global batch 1024) momentum 0.9 wd 5e-4, 20 epochs, no warm-up, fp16. (Its earlier revision 5ef9804 uses
    lr 0.2, 25 epochs and 2 warm-up epochs: `--lr=0.2 --epochs=25 --schedule_args.warmup_epochs=2`.)"""
    return _arcface_torch("ms1mv3_r50", "iresnet50", epochs=20, lr=0.1, weight_decay=5e-4, preset="arcface")


@RECIPES.register("ms1mv3_r100")
@_cites
def ms1mv3_r100():
    """arcface_torch `configs/ms1mv3_r100.py` (commit fe116a4): iresnet100, ArcFace (1, 0, 0.5) s 64, SGD lr 0.2
    (global batch 1024) momentum 0.9 wd 5e-4, 25 epochs, no warm-up, fp16."""
    return _arcface_torch("ms1mv3_r100", "iresnet100", epochs=25, lr=0.2, weight_decay=5e-4, preset="arcface")


@RECIPES.register("glint360k_r50")
@_cites
def glint360k_r50():
    """arcface_torch `configs/glint360k_r50.py` (commit d9cb10e): iresnet50, CosFace (margin_list (1.0, 0.0, 0.4),
    i.e. (1, 0.4, 0) in our order) s 64, SGD lr 0.1 (global batch 1024) momentum 0.9 wd 1e-4, 20 epochs, fp16;
    Partial FC (`partial_fc` head) at its `sample_rate = 1.0`: the 360,232-class matrix sharded over the replicas.
    (CosFace's target cos θ − m has derivative 1: both margin gradients are the same here.)"""
    recipe = _arcface_torch("glint360k_r50", "iresnet50", epochs=20, lr=0.1, weight_decay=1e-4, preset="cosface")
    return dataclasses.replace(recipe, loss_args={**recipe.loss_args, "margin2": 0.4},
                               head="partial_fc", head_args={"sample_rate": 1.0})


@RECIPES.register("ms1mv3_mbf")
@_cites
def ms1mv3_mbf():
    """arcface_torch `configs/ms1mv3_mbf.py` (commit d9cb10e): mobilefacenet, ArcFace (1, 0, 0.5) s 64, SGD lr 0.1
    (global batch 1024) momentum 0.9 wd 1e-4, 40 epochs, no warm-up, fp16."""
    return _arcface_torch("ms1mv3_mbf", "mobilefacenet", epochs=40, lr=0.1, weight_decay=1e-4, preset="arcface")


@RECIPES.register("finetune")
def finetune():
    """Fine-tune a pretrained face model (--backbone_weights=FILE.onnx or a run's embedding.keras; --backbone names
    its family, mobilefacenet by default) on a folder of your own identities (--data=DIR):

    - head_init=class_means: each class vector starts at its identity's normalised mean embedding under the
      pretrained model, so the first steps' gradients are those of a head that already classifies, not of a
      random one (which, at s = 64 with a margin, sends large, arbitrary gradients into the backbone);
    - freeze=batchnorm for the whole run: the BatchNorm statistics come from the pretraining data (millions of
      images); re-estimating them from small fine-tuning batches of few identities is noisier than keeping them;
    - lr 0.001, lr_mult.backbone=0.1: the head learns at 0.001, the pretrained network at 0.0001. A frozen
      BatchNorm no longer renormalises what comes before it, so a step moves the embedding far more than the same
      step under batch statistics: measured, at lr 0.01 with frozen BatchNorms the embedding norm grew from 13 to
      1e15 within three epochs (insightface issue #2089 reports NaN after freezing them); at 0.001 it stays stable;
    - ArcFace (1, 0, 0.5), s 64: the loss insightface's released models were trained with; SGD momentum 0.9,
      PyTorch's (coupled) weight decay 5e-4 as arcface_torch; 10 epochs, linear decay to 0 after one warm-up epoch;
      batch 64, 512-d, no dropout.
    Measured in benchmarks/REPORT.md ("Fine-tuning a pretrained model")."""
    return Recipe(name="finetune", backbone="mobilefacenet", embedding_size=512, dropout=0.0, loss="arcface",
                  loss_args={"preset": "arcface", "scale": 64.0}, optimizer="sgd",
                  optimizer_args={"momentum": 0.9, "weight_decay": 5e-4, "weight_decay_mode": "coupled"}, lr=0.001,
                  lr_schedule="polynomial", schedule_args={"warmup_epochs": 1.0, "power": 1.0}, epochs=10,
                  batch_size=64, head_init="class_means", freeze="batchnorm", lr_mult={"backbone": 0.1})
