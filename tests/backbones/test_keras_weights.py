"""`--backbone_weights=embedding.keras`: one of our saved embedding models starts the whole embedding model."""
import numpy as np
import pytest

import backbones
from backbones.keras_weights import EmbeddingWeightsError, is_saved_embedding_model


def trained_looking(seed=0, embedding_size=8):
    """A tiny 32×32 embedding model whose every weight is moved off its initial value."""
    model = backbones.build_embedding_model("tiny", embedding_size, dropout=0.0, image_size=32)
    rng = np.random.default_rng(seed)
    model.set_weights([weight + rng.uniform(0.1, 0.2, weight.shape).astype(weight.dtype)
                       for weight in model.get_weights()])
    return model


def test_a_saved_embedding_model_starts_the_whole_embedding_model(tmp_path):
    saved = trained_looking()
    path = str(tmp_path / "embedding.keras")
    saved.save(path)
    assert is_saved_embedding_model(path)
    started = backbones.build_embedding_model("tiny", 8, dropout=0.0, image_size=32, backbone_weights=path)
    for ours, theirs in zip(started.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(ours, theirs)
    feature_network = str(tmp_path / "tiny.weights.h5")
    saved.get_layer("tiny").save_weights(feature_network)
    assert not is_saved_embedding_model(feature_network)
    backbone_only = backbones.build_embedding_model("tiny", 8, dropout=0.0, image_size=32,
                                                    backbone_weights=feature_network)
    np.testing.assert_array_equal(backbone_only.get_layer("tiny").get_weights()[0], saved.get_weights()[0])
    assert not np.array_equal(backbone_only.get_layer("embedding").kernel.numpy(),
                              saved.get_layer("embedding").kernel.numpy())


def test_an_embedding_model_of_another_size_is_refused_naming_the_file_and_weight(tmp_path):
    path = str(tmp_path / "embedding.keras")
    trained_looking(embedding_size=8).save(path)
    with pytest.raises(EmbeddingWeightsError, match=r"embedding\.keras.*embedding/kernel.*\(128, 8\).*\(128, 16\)"):
        backbones.build_embedding_model("tiny", 16, dropout=0.0, image_size=32, backbone_weights=path)
