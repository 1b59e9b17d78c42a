"""The PyTorch kernels (peephole-LSTM update, axial attention) equal the generic keras.ops
computation."""

import keras
import numpy as np
import pytest

from faconvlstm.layers.attention import AxialAttention2D
from faconvlstm.layers.gates import PeepholeGates

pytestmark = pytest.mark.skipif(keras.backend.backend() != "torch",
                                reason="the fused kernel runs on the torch backend only")


@pytest.mark.parametrize("peephole,use_bias", [(True, True), (False, False)])
def test_fused_update_matches_generic_values_and_gradients(rng, peephole, use_bias):
    import torch

    gates = PeepholeGates(5, keras.activations.tanh, keras.activations.sigmoid,
                          peephole=peephole, use_bias=use_bias)
    gates.build((None, None, None, 3))
    for weight in gates.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    assert gates.uses_torch_kernel
    u = torch.tensor(rng.normal(size=(2, 4, 6, 3)), dtype=torch.float32, requires_grad=True)
    c_prev = torch.tensor(rng.normal(size=(2, 4, 6, 5)), dtype=torch.float32, requires_grad=True)
    upstream_h, upstream_c = (torch.tensor(rng.normal(size=(2, 4, 6, 5)), dtype=torch.float32)
                              for _ in range(2))

    def values_and_gradients(fused: bool):
        generic = PeepholeGates.uses_torch_kernel
        if not fused:
            PeepholeGates.uses_torch_kernel = property(lambda self: False)
        try:
            h, c = gates(u, c_prev)
        finally:
            PeepholeGates.uses_torch_kernel = generic
        loss = (h * upstream_h).sum() + (c * upstream_c).sum()
        inputs = [u, c_prev] + [w.value for w in gates.trainable_weights]
        return [h, c], torch.autograd.grad(loss, inputs)

    fused_values, fused_grads = values_and_gradients(fused=True)
    generic_values, generic_grads = values_and_gradients(fused=False)
    for fused, generic in zip(fused_values + list(fused_grads),
                              generic_values + list(generic_grads)):
        np.testing.assert_allclose(fused.detach().numpy(), generic.detach().numpy(),
                                   rtol=1e-4, atol=1e-5)


def test_other_activations_use_the_generic_path():
    gates = PeepholeGates(4, keras.activations.relu, keras.activations.sigmoid)
    assert not gates.uses_torch_kernel


@pytest.mark.parametrize("grid, tokens", [((4, 6), 0), ((7, 9), 3), ((5, 20), 0)])
def test_attention_kernel_matches_generic_values_and_gradients(rng, grid, tokens):
    import torch

    attention = AxialAttention2D(attention_dim=4, heads=2, tokens=tokens)
    attention.build((None, None, None, 5))
    for weight in attention.weights:
        weight.assign(rng.normal(0, 0.5, weight.shape).astype("float32"))
    h = torch.tensor(rng.normal(size=(2, *grid, 5)), dtype=torch.float32, requires_grad=True)
    assert attention._uses_torch_kernel(h)
    upstream = torch.tensor(rng.normal(size=(2, *grid, 5)), dtype=torch.float32)

    def values_and_gradients(kernel: bool):
        if not kernel:
            attention._uses_torch_kernel = lambda h: False
        try:
            out = attention(h)
        finally:
            vars(attention).pop("_uses_torch_kernel", None)
        inputs = [h] + [w.value for w in attention.trainable_weights]
        return out, torch.autograd.grad((out * upstream).sum(), inputs)

    kernel_out, kernel_grads = values_and_gradients(kernel=True)
    generic_out, generic_grads = values_and_gradients(kernel=False)
    np.testing.assert_allclose(kernel_out.detach().numpy(), generic_out.detach().numpy(),
                               rtol=1e-5, atol=1e-6)
    for got, want in zip(kernel_grads, generic_grads):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("keys", [3, 15])
def test_short_softmax_matches_torch_softmax(rng, keys):
    import torch

    from faconvlstm.layers.torch_kernels import ShortSoftmax

    scores = torch.tensor(rng.normal(0, 3, (4, 5, keys)), dtype=torch.float64,
                          requires_grad=True)
    upstream = torch.tensor(rng.normal(size=(4, 5, keys)), dtype=torch.float64)
    got = ShortSoftmax.apply(scores)
    want = torch.softmax(scores, dim=-1)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12)
    (got_grad,) = torch.autograd.grad((got * upstream).sum(), scores)
    (want_grad,) = torch.autograd.grad((want * upstream).sum(), scores)
    np.testing.assert_allclose(got_grad.numpy(), want_grad.numpy(), rtol=1e-10, atol=1e-12)


def test_a_grid_first_attended_in_inference_mode_still_trains(rng):
    import torch

    attention = AxialAttention2D(attention_dim=4, heads=2, tokens=4)
    attention.build((None, None, None, 5))
    grid = (5, 23)  # lengths no other test pools, so the pooling matrices are built here
    with torch.inference_mode():
        attention(torch.tensor(rng.normal(size=(2, *grid, 5)), dtype=torch.float32))
    h = torch.tensor(rng.normal(size=(2, *grid, 5)), dtype=torch.float32, requires_grad=True)
    (gradient,) = torch.autograd.grad(attention(h).sum(), h)
    assert gradient.shape == h.shape and bool(torch.isfinite(gradient).all())


def test_attention_beyond_one_chunk_uses_the_generic_path():
    attention = AxialAttention2D(attention_dim=4, heads=2, chunk_size=3)
    attention.build((None, None, None, 5))
    assert not attention._uses_torch_kernel(keras.ops.zeros((2, 4, 6, 5)))


@pytest.mark.parametrize("channels, outputs", [(12, 3), (3, 12), (5, 4)])
def test_channel_projection_matches_matmul_values_and_gradients(rng, channels, outputs):
    import torch

    from faconvlstm.layers.torch_kernels import channel_projection

    x = torch.tensor(rng.normal(size=(2, 3, 4, channels)), requires_grad=True)
    kernel = torch.tensor(rng.normal(size=(channels, outputs)), requires_grad=True)
    upstream = torch.tensor(rng.normal(size=(2, 3, 4, outputs)))
    got = channel_projection(x, kernel)
    want = x @ kernel
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-12)
    got_grads = torch.autograd.grad((got * upstream).sum(), [x, kernel])
    want_grads = torch.autograd.grad((want * upstream).sum(), [x, kernel])
    for got_grad, want_grad in zip(got_grads, want_grads):
        assert got_grad.shape == want_grad.shape
        np.testing.assert_allclose(got_grad.numpy(), want_grad.numpy(), rtol=1e-10)
