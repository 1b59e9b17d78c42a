"""The analytic cost: the attention's share per cell stays flat with pooled keys."""

import pytest

from faconvlstm.evaluation.cost import fa_macs


def attention_macs_per_cell(height: int, width: int, tokens: int) -> float:
    """Forward MACs of one attention application per cell (one step, attention on it)."""
    common = dict(steps=1, channels=3, filters=16, kernel_size=3, bottleneck=8,
                  attention_dim=4, attention_tokens=tokens)
    with_attention = fa_macs(height=height, width=width, attention_every=1, **common)
    without = fa_macs(height=height, width=width, attention_every=0, **common)
    return (with_attention - without) / (height * width)


def test_attention_cost_per_cell_is_flat_with_pooled_keys_and_grows_without():
    pooled = [attention_macs_per_cell(h, w, 32) for h, w in ((64, 64), (128, 256), (512, 1024))]
    assert pooled[0] == pooled[1] == pooled[2] == 4 * 16 * 4 + 2 * 4 * 64 * 2
    full = [attention_macs_per_cell(h, w, 0) for h, w in ((64, 64), (128, 256))]
    assert full == [4 * 16 * 4 + 2 * 4 * 128, 4 * 16 * 4 + 2 * 4 * 384]


@pytest.mark.parametrize("length", [10, 32])
def test_axes_within_the_tokens_cost_as_keys_of_every_cell(length):
    assert attention_macs_per_cell(length, length, 32) == attention_macs_per_cell(length, length, 0)
