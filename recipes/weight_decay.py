"""The weight-decay options `recipes.optimizers.build_optimizer` adds to Keras' own, known without importing Keras
(so that recipe validation needs no TensorFlow)."""

# Default substrings of variable names that weight decay leaves alone: BatchNorm γ/β (decaying them only
# rescales what the next layer undoes), PReLU slopes (decay pulls them towards ReLU) and biases, as timm's
# "no decay on 1-d parameters". arcface_torch decays them all (weight_decay_exclude=[]).
NO_DECAY_NAMES = ("gamma", "beta", "bias", "alpha")
WEIGHT_DECAY_MODES = ("decoupled", "coupled")
# Options every optimizer of `build_optimizer` takes besides Keras' own ({option: default}).
FACE_OPTIONS = {"weight_decay_mode": "decoupled", "weight_decay_exclude": list(NO_DECAY_NAMES)}
