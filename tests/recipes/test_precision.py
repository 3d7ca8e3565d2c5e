"""--mixed_precision: auto picks mixed precision only where it was measured faster; false is always float32."""
import pytest

import recipes  # noqa: F401
from recipes.distribution import CPU_BFLOAT16_SPEEDUP, WORTH_IT, cpu_has_bfloat16, precision_choice, resolve_precision
from recipes.recipe import Recipe, RecipeError


@pytest.mark.parametrize("backbone", ["tiny", "resnet50v2", "mobilenetv2", "iresnet50", "a_new_backbone"])
@pytest.mark.parametrize("gpu", [False, True])
@pytest.mark.parametrize("bfloat16_cpu", [False, True])
def test_false_is_always_float32_and_auto_needs_a_measured_gain(backbone, gpu, bfloat16_cpu):
    assert precision_choice("false", backbone, gpu, bfloat16_cpu)[0] == "float32"
    assert precision_choice("true", backbone, gpu, bfloat16_cpu)[0] == ("mixed_float16" if gpu else "mixed_bfloat16")
    policy, reason = precision_choice("auto", backbone, gpu, bfloat16_cpu)
    measured_gain = not gpu and bfloat16_cpu and CPU_BFLOAT16_SPEEDUP.get(backbone, 0) >= WORTH_IT
    assert policy == ("mixed_bfloat16" if measured_gain else "float32"), reason
    assert reason.startswith("auto")


@pytest.mark.parametrize("backbone, policy", [("resnet50v2", "mixed_bfloat16"), ("iresnet50", "mixed_bfloat16"),
                                              ("mobilenetv2", "float32"), ("mobilefacenet", "float32"),
                                              ("iresnet100", "float32")])
def test_the_measured_table_decides_on_a_bfloat16_cpu(backbone, policy):
    """Faster in bfloat16 where measured so (benchmarks.precision); slower or unmeasured backbones stay float32."""
    assert precision_choice("auto", backbone, gpu=False, bfloat16_cpu=True)[0] == policy
    assert precision_choice("auto", backbone, gpu=True, bfloat16_cpu=True)[0] == "float32"  # no GPU here: unknown


@pytest.mark.parametrize("capability, policy", [((9, 0), "mixed_bfloat16"), ((8, 0), "mixed_bfloat16"),
                                                ((8, 6), "mixed_bfloat16"), ((7, 5), "mixed_float16"),
                                                ((7, 0), "mixed_float16"), ((6, 1), "float32"), ((3, 7), "float32")])
@pytest.mark.parametrize("backbone", ["iresnet50", "tiny", "a_new_backbone"])
def test_auto_on_a_gpu_follows_its_tensor_cores(capability, policy, backbone):
    chosen, reason = precision_choice("auto", backbone, gpu=True, compute_capability=capability)
    assert chosen == policy and f"compute capability {capability[0]}.{capability[1]}" in reason
    assert ("loss scaling" in reason) == (policy != "float32")
    assert precision_choice("auto", backbone, compute_capability=capability)[0] == policy  # gpu implied
    assert precision_choice("true", backbone, gpu=True, compute_capability=capability)[0] == "mixed_float16"
    assert precision_choice("false", backbone, gpu=True, compute_capability=capability)[0] == "float32"


def test_a_gpu_policy_measured_slower_is_passed_over_and_an_unknown_capability_is_float32():
    chosen, reason = precision_choice("auto", "resnet50v2", gpu=True, compute_capability=(9, 0))
    assert chosen == "mixed_float16" and "mixed_bfloat16 measured 0.88x float32 for resnet50v2" in reason
    assert precision_choice("auto", "resnet50v2", gpu=True, compute_capability=(7, 5))[0] == "mixed_float16"
    chosen, reason = precision_choice("auto", "iresnet50", gpu=True)  # this machine has no GPU to ask
    assert chosen == "float32" and "unknown" in reason


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    with_bf16, without = tmp_path / "with", tmp_path / "without"
    with_bf16.write_text("flags\t\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    without.write_text("flags\t\t: fpu sse2 avx2\n")
    assert cpu_has_bfloat16(str(with_bf16)) and not cpu_has_bfloat16(str(without))
    assert not cpu_has_bfloat16(str(tmp_path / "missing"))


def test_the_field_takes_booleans_and_names_and_refuses_others():
    assert Recipe().mixed_precision == "auto"
    assert Recipe().replace(mixed_precision=True).mixed_precision == "true"
    assert Recipe().replace(mixed_precision="False").mixed_precision == "false"
    assert resolve_precision(Recipe().replace(mixed_precision=False)) == "float32"
    with pytest.raises(RecipeError, match="mixed_precision='sometimes'"):
        Recipe().replace(mixed_precision="sometimes")
