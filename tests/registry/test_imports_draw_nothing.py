"""Importing the project's parts draws no random number, so a seed set before or after the imports gives the same
run (a Keras initializer made at import time draws its seed then: see backbones/iresnet.py's `conv_init`)."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = """
import random
import numpy as np
import keras

keras.utils.set_random_seed(0)
python_state, numpy_state = random.getstate(), np.random.get_state()[1].copy()
import registry
import recipes.train
registry.import_builtins()
print(random.getstate() == python_state, np.array_equal(np.random.get_state()[1], numpy_state))
"""


@pytest.mark.slow
def test_importing_every_built_in_part_leaves_the_random_state_alone():
    result = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "True"]
