"""PyTorch kernels used on the torch backend: the peephole LSTM update and axial attention.

The generic ``keras.ops`` version of :class:`~faconvlstm.layers.gates.PeepholeGates`
allocates a new ``(B, H, W, F)`` tensor for every elementwise operation forward and
backward; on CPU those passes over memory, not arithmetic, bound the layer. This autograd
function computes the four gate pre-activations with ``addmm`` (bias fused), updates them in
place, and hand-writes the backward pass: about 2.5x faster forward and 1.4x faster forward +
backward than autograd on the same operations (see BENCHMARKS.md). It implements exactly the
default activations (sigmoid gates, tanh cell); ``tests/layers/test_torch_kernels.py``
checks values and gradients against the generic path.

:func:`axial_attention` lays the heads out once and attends on strided views instead of the
copies ``keras.ops.dot_product_attention`` makes of each operand, with two batched products
and a softmax (:func:`_attention`): the computation of PyTorch's math attention without its
checks for fully masked rows. It keeps a pass's probabilities for the backward pass, so it is
used only where one chunk holds every score (docs/layer.md, "Attention memory").
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

#: Below this many keys PyTorch's CPU softmax takes ~10 ns a score (about 1 ns from 16 on):
#: :class:`ShortSoftmax` is 3-4x faster there.
SHORT_SOFTMAX_KEYS = 16


class ChannelProjection(torch.autograd.Function):
    """``x (..., C) @ kernel (C, R)`` with the kernel's gradient taken in the faster order.

    The gradient is a product with a long inner axis (every cell of the batch). On this
    CPU's BLAS ``x^T g`` is 4-5x slower than ``(g^T x)^T`` where ``C >= 2 R`` (e.g. 92 against
    19 ms for ``C = 32, R = 8`` over 786k cells) and faster otherwise; BENCHMARKS.md.
    """

    @staticmethod
    def forward(ctx, x, kernel):
        ctx.save_for_backward(x, kernel)
        return x @ kernel

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, kernel = ctx.saved_tensors
        grad_x = grad @ kernel.T if ctx.needs_input_grad[0] else None
        grad_kernel = None
        if ctx.needs_input_grad[1]:
            flat_x, flat_grad = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
            if kernel.shape[0] >= 2 * kernel.shape[1]:
                grad_kernel = (flat_grad.T @ flat_x).T.contiguous()
            else:
                grad_kernel = flat_x.T @ flat_grad
        return grad_x, grad_kernel


def channel_projection(x, kernel):
    """``x (..., C) @ kernel (C, R)`` (:class:`ChannelProjection`)."""
    return ChannelProjection.apply(x, kernel)


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """In-place ``tanh(x) = 2 sigmoid(2x) - 1`` (PyTorch's CPU tanh is several times slower)."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def _sigmoid_backward(grad: torch.Tensor, sigmoid: torch.Tensor) -> torch.Tensor:
    """``grad * s * (1 - s)`` in one pass over memory (2-3x faster than three)."""
    return torch.ops.aten.sigmoid_backward(grad, sigmoid)


def _tanh_backward(grad: torch.Tensor, tanh: torch.Tensor) -> torch.Tensor:
    """``grad * (1 - t^2)`` in one pass over memory."""
    return torch.ops.aten.tanh_backward(grad, tanh)


def _gate_blocks(filters: int) -> list[slice]:
    return [slice(gate * filters, (gate + 1) * filters) for gate in range(4)]


class PeepholeLSTMUpdate(torch.autograd.Function):
    """``(u (..., r), E (r, 4F), b (4F,) | None, P (3, F) | None, c_prev (..., F)) -> (h, c)``."""

    @staticmethod
    def forward(ctx, u, expansion, bias, peephole, c_prev):
        filters = c_prev.shape[-1]
        flat_u = u.reshape(-1, u.shape[-1])
        flat_c = c_prev.reshape(-1, filters)
        blocks = _gate_blocks(filters)

        def pre_activation(gate: int) -> torch.Tensor:
            weight = expansion[:, blocks[gate]]
            if bias is None:
                return flat_u @ weight
            return torch.addmm(bias[blocks[gate]], flat_u, weight)

        i, f = pre_activation(0), pre_activation(1)
        if peephole is not None:
            i.addcmul_(flat_c, peephole[0])
            f.addcmul_(flat_c, peephole[1])
        i.sigmoid_()
        f.sigmoid_()
        g = _tanh_(pre_activation(2))
        c = torch.addcmul(f * flat_c, i, g)
        o = pre_activation(3)
        if peephole is not None:
            o.addcmul_(c, peephole[2])
        o.sigmoid_()
        tanh_c = _tanh_(c.clone())
        h = o * tanh_c
        ctx.save_for_backward(flat_u, expansion, peephole, flat_c, i, f, g, o, c, tanh_c)
        ctx.has_bias = bias is not None
        ctx.shapes = (u.shape, c_prev.shape)
        return h.view(c_prev.shape), c.view(c_prev.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h, grad_c):
        flat_u, expansion, peephole, flat_c, i, f, g, o, c, tanh_c = ctx.saved_tensors
        u_shape, c_shape = ctx.shapes
        filters = flat_c.shape[-1]
        grad_h = grad_h.reshape(-1, filters)
        d_o = _sigmoid_backward(grad_h * tanh_c, o)
        d_c = _tanh_backward(grad_h * o, tanh_c)
        if grad_c is not None:
            d_c.add_(grad_c.reshape(-1, filters))
        if peephole is not None:
            d_c.addcmul_(d_o, peephole[2])
        d_i = _sigmoid_backward(d_c * g, i)
        d_f = _sigmoid_backward(d_c * flat_c, f)
        d_g = _tanh_backward(d_c * i, g)
        d_c_prev = d_c.mul_(f)
        d_peephole = None
        if peephole is not None:
            d_c_prev.addcmul_(d_i, peephole[0]).addcmul_(d_f, peephole[1])
            d_peephole = torch.stack(
                [(d_i * flat_c).sum(0), (d_f * flat_c).sum(0), (d_o * c).sum(0)]
            )
        d_gates = (d_i, d_f, d_g, d_o)
        blocks = _gate_blocks(filters)
        d_u = d_gates[0] @ expansion[:, blocks[0]].T
        for gate in range(1, 4):
            d_u.addmm_(d_gates[gate], expansion[:, blocks[gate]].T)
        d_expansion = torch.cat([flat_u.T @ d_gate for d_gate in d_gates], dim=1)
        d_bias = torch.cat([d_gate.sum(0) for d_gate in d_gates]) if ctx.has_bias else None
        return d_u.view(u_shape), d_expansion, d_bias, d_peephole, d_c_prev.view(c_shape)


def peephole_lstm_update(u, expansion, bias, peephole, c_prev):
    """Fused ``(h, c)`` of the peephole LSTM with sigmoid gates and tanh activations."""
    return PeepholeLSTMUpdate.apply(u, expansion, bias, peephole, c_prev)


def axial_attention(h, query_kernel, key_kernel, value_kernel, heads: int, row_pooling,
                    column_pooling):
    """Row then column attention of :class:`~faconvlstm.layers.attention.AxialAttention2D`
    before its output projection: ``(B, H, W, F) -> (B, H, W, d_a)``.

    ``*_pooling``: ``P (L, K)`` from ``pooling_matrix`` for an axis whose keys and values are
    window means, None for one attended cell by cell.
    """
    batch, height, width, _ = h.shape
    attention_dim = query_kernel.shape[1]
    head_dim = attention_dim // heads
    kernels = [query_kernel * head_dim**-0.5, key_kernel, value_kernel]
    projected = channel_projection(h, torch.cat(kernels, dim=1))
    # (B, H, W, 3, heads, d) -> (3, B, H, heads, W, d): sequences along W, heads as batch.
    query, key, value = projected.view(batch, height, width, 3, heads, head_dim).permute(
        3, 0, 1, 4, 2, 5
    )
    rows = _attention(query, *(_window_means(t, row_pooling) for t in (key, value)))
    # (B, H, heads, W, d) -> (B, W, heads, H, d): sequences along H.
    query, key, rows = (t.permute(0, 3, 2, 1, 4) for t in (query, key, rows))
    columns = _attention(query, *(_window_means(t, column_pooling) for t in (key, rows)))
    # (B, W, heads, H, d) -> (B, H, W, heads * d)
    return columns.permute(0, 3, 1, 2, 4).reshape(batch, height, width, attention_dim)


def _attention(scaled_query, key, value):
    """``softmax(q k^T) v`` over the last two axes of ``(..., L, d)`` queries (already scaled
    by ``1 / sqrt(d)``) and ``(..., K, d)`` keys and values."""
    scores = scaled_query @ key.transpose(-1, -2)
    if scores.shape[-1] < SHORT_SOFTMAX_KEYS:
        return ShortSoftmax.apply(scores) @ value
    return torch.softmax(scores, dim=-1) @ value


class ShortSoftmax(torch.autograd.Function):
    """Softmax over the last axis, from ``exp`` and sums: ``(..., K) -> (..., K)``."""

    @staticmethod
    def forward(ctx, scores):
        weights = (scores - scores.amax(-1, keepdim=True)).exp_()
        weights /= weights.sum(-1, keepdim=True)
        ctx.save_for_backward(weights)
        return weights

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_weights):
        (weights,) = ctx.saved_tensors
        weighted = grad_weights * weights
        return weighted.sub_(weights * weighted.sum(-1, keepdim=True))


def _window_means(sequences, pooling):
    """``(..., L, d)`` averaged over the windows of ``pooling (L, K)`` to ``(..., K, d)``."""
    if pooling is None:
        return sequences
    return torch.einsum("...ld,lk->...kd", sequences, pooling)
