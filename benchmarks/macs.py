"""Multiply-accumulates per image of a Keras model, counted by walking its layers.

Counts the layers that multiply weights by activations: `Conv2D` (H'·W'·k_h·k_w·C_in/groups·C_out),
`DepthwiseConv2D` (H'·W'·k_h·k_w·C·multiplier) and `Dense` (inputs · units per position).
BatchNorm, PReLU, additions and pooling are not counted (they are a fraction of a percent of a
ResNet's work, and can be folded into the convolutions at inference); this is the convention of
the MACs that arcface_torch reports for its backbones (iresnet50 6.31 G, iresnet100 12.09 G,
mobilefacenet 0.44 G at 112×112).

    python -m benchmarks.macs iresnet50 mobilefacenet     # weights and G MACs at 112×112, 512-d
"""
import math
import sys

import keras
from keras import layers


def layer_macs(layer):
    """Multiply-accumulates of one call of `layer` on one image (0 for layers without weights × activations)."""
    if isinstance(layer, layers.DepthwiseConv2D):
        height, width, channels = layer.output.shape[1:]
        return height * width * math.prod(layer.kernel_size) * channels
    if isinstance(layer, layers.Conv2D):
        height, width, filters = layer.output.shape[1:]
        return height * width * math.prod(layer.kernel_size) * layer.input.shape[-1] // layer.groups * filters
    if isinstance(layer, layers.Dense):
        positions = math.prod(layer.output.shape[1:-1])
        return positions * layer.input.shape[-1] * layer.units
    return 0


def model_macs(model):
    """Multiply-accumulates per image of `model`, nested models included (each layer called once)."""
    total = 0
    for layer in model.layers:
        total += model_macs(layer) if isinstance(layer, keras.Model) else layer_macs(layer)
    return total


def main(argv=None):
    import backbones

    names = (argv if argv is not None else sys.argv[1:]) or ["iresnet50", "iresnet100", "mobilefacenet"]
    for name in names:
        model = backbones.build_embedding_model(name, embedding_size=512, image_size=112)
        print(f"{name:14s} {model.count_params():>12,d} weights  {model_macs(model) / 1e9:6.2f} G MACs (112×112, 512-d)")


if __name__ == "__main__":
    main()
