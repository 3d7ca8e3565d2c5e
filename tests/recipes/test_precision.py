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
    assert precision_choice("auto", backbone, gpu=True, bfloat16_cpu=True)[0] == "float32"  # nothing measured on GPU


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
