"""Axial spatial self-attention on the hidden state, applied sparsely in time."""

from __future__ import annotations

import functools
import math

from keras import backend, layers, ops

#: Default cap on the number of attention scores (per chunk) held at once: 2**25 float32
#: values are 128 MiB.
MAX_SCORES_PER_CHUNK = 2**25


def pooling_matrix(length, tokens: int, dtype: str = "float32"):
    """Averages of consecutive cells along an axis: ``(P (L, K), valid (K,) bool or None)``.

    Cells are grouped in windows of ``s = ceil(L / tokens)`` consecutive cells (the last one
    may be shorter), so ``K = ceil(L / s) <= tokens``, and ``P[l, k]`` is ``1 / len(window
    k)`` where cell ``l`` lies in window ``k``. With ``L <= tokens`` ``P`` is the identity.
    For ``L`` unknown until the graph runs (a scalar tensor) ``P`` has ``tokens`` columns and
    ``valid`` marks the windows that exist; for an int ``L`` ``valid`` is None.
    """
    static = isinstance(length, int)
    stride = -(-length // tokens)
    windows = -(-length // stride) if static else tokens
    membership = ops.one_hot(ops.arange(length) // stride, windows, dtype=dtype)
    counts = ops.sum(membership, axis=0)
    matrix = membership / ops.maximum(counts, 1.0)
    return matrix, None if static else counts > 0


@functools.lru_cache(maxsize=64)
def _pooling_values(length: int, tokens: int):
    """:func:`pooling_matrix`'s float32 ``P`` for a known length as a NumPy array, computed
    once; a fresh tensor is made from it at each use (so none outlives a trace or
    ``torch.inference_mode``)."""
    return ops.convert_to_numpy(pooling_matrix(length, tokens)[0])


def attention_steps(steps, every: int):
    """Whether attention runs at each 0-based step of processing order, a ``(T,)`` bool tensor.

    It runs when ``(t + 1) % every == 0`` and on the last step; never when ``every == 0``.
    ``steps`` is an int or, for a time axis unknown until the graph runs, a scalar tensor.
    """
    step = ops.arange(steps)
    last = ops.equal(step, steps - 1)
    if every == 0:
        return ops.logical_and(last, False)
    return ops.logical_or(ops.equal((step + 1) % every, 0), last)


def keys_per_query(length: int, tokens: int) -> int:
    """Keys (windows) each query scores along an axis of ``length`` cells."""
    if not tokens or length <= tokens:
        return length
    return -(-length // -(-length // tokens))


class AxialAttention2D(layers.Layer):
    """Multi-head axial attention over rows then columns, added back with a learned gain.

    ``h -> h + gamma * W_o ColumnAttention(q, k, RowAttention(q, k, v))`` with ``q, k, v``
    projections ``F -> attention_dim`` split into ``heads``. The column pass attends over the
    row-attended values, so every cell sees the whole grid. ``gamma`` (per channel) starts at
    zero: training begins from the cell without attention. ``(B, H, W, F) -> (B, H, W, F)``.

    Each query attends to at most ``tokens`` keys per axis: along a row (column) longer than
    ``tokens`` keys and values are averaged over windows of ``ceil(L / tokens)`` consecutive
    cells (:func:`pooling_matrix`), so the cost per cell stays flat as the grid grows;
    ``tokens=0`` attends to every cell. Scores held: ``B * heads * H * W * K_W`` in a row
    pass and ``B * heads * W * H * K_H`` in a column pass (``K = min(L, tokens)``, or ``L``
    with ``tokens=0``); rows (columns) are processed in chunks of ``chunk_size`` sequences,
    by default as many as keep one chunk under ``MAX_SCORES_PER_CHUNK`` scores.
    """

    def __init__(
        self,
        attention_dim: int,
        heads: int,
        chunk_size: int | None = None,
        tokens: int = 0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.attention_dim = attention_dim
        self.heads = heads
        self.chunk_size = chunk_size
        self.tokens = tokens

    def build(self, input_shape):
        channels = input_shape[-1]
        projection = (channels, self.attention_dim)
        self.query_kernel = self.add_weight(shape=projection, name="query_kernel")
        self.key_kernel = self.add_weight(shape=projection, name="key_kernel")
        self.value_kernel = self.add_weight(shape=projection, name="value_kernel")
        self.output_kernel = self.add_weight(
            shape=(self.attention_dim, channels), name="output_kernel"
        )
        self.gamma = self.add_weight(shape=(channels,), name="gamma", initializer="zeros")

    def _heads(self, h, kernels):
        """Projections of ``h`` by each kernel, split into heads: ``(B, H, W, heads, d)`` each."""
        batch, height, width, _ = ops.shape(h)
        head_shape = (batch, height, width, self.heads, self.attention_dim // self.heads)
        projected = ops.matmul(h, ops.concatenate(kernels, axis=-1))
        return [ops.reshape(t, head_shape) for t in ops.split(projected, len(kernels), axis=-1)]

    def call(self, h):
        if self._uses_torch_kernel(h):
            from faconvlstm.layers.torch_kernels import axial_attention

            height, width = ops.shape(h)[1:3]
            kernels = (self.query_kernel, self.key_kernel, self.value_kernel)
            attended = axial_attention(
                h, *(kernel.value for kernel in kernels), self.heads,
                *(ops.convert_to_tensor(_pooling_values(length, self.tokens))
                  if self._pools(length) else None for length in (width, height)),
            )
        else:
            attended = self._attended(h)
        return h + ops.matmul(attended, self.output_kernel * self.gamma)

    def _uses_torch_kernel(self, h) -> bool:
        """Whether the PyTorch kernel attends (same math, fewer copies): on the torch
        backend in float32, with each pass's scores within one chunk."""
        if backend.backend() != "torch" or self.compute_dtype != "float32":
            return False
        batch, height, width, _ = ops.shape(h)
        return all(
            self._chunk(length, keys_per_query(length, self.tokens)) >= batch * rows
            for rows, length in ((height, width), (width, height))
        )

    def _chunk(self, length: int, keys: int) -> int:
        """Sequences attended at once: ``chunk_size``, by default as many as keep a chunk's
        ``sequences * heads * length * keys`` scores under ``MAX_SCORES_PER_CHUNK``."""
        return self.chunk_size or max(1, MAX_SCORES_PER_CHUNK // (self.heads * length * keys))

    def _attended(self, h):
        """The attended values before the output projection: ``(B, H, W, attention_dim)``."""
        batch, height, width, _ = ops.shape(h)
        query, key, value = (
            ops.cast(t, self._score_dtype)
            for t in self._heads(h, [self.query_kernel, self.key_kernel, self.value_kernel])
        )
        rows = self._attend_along_width(query, key, value)
        columns = self._attend_along_width(
            *(ops.transpose(t, (0, 2, 1, 3, 4)) for t in (query, key, rows))
        )
        attended = ops.reshape(
            ops.transpose(columns, (0, 2, 1, 3, 4)), (batch, height, width, self.attention_dim)
        )
        return ops.cast(attended, self.compute_dtype)

    @property
    def _score_dtype(self) -> str:
        """float32 under a float16 policy: softmax scores overflow float16 easily, and XLA on
        CPU has no float16 attention; other dtypes attend in the compute dtype."""
        return "float32" if self.compute_dtype == "float16" else self.compute_dtype

    def received_attention(self, h):
        """Share of all attention each cell receives, averaged over queries and heads.

        The column pass reads the row pass's output, so query ``(i, j)`` reaches cell
        ``(k, l)`` with weight ``C[j, i, k] * R[k, j, l]`` (``R``, ``C``: the row and column
        softmax weights, spread from pooled windows back to their cells). Averaged over the
        ``H * W`` queries and the heads this is a map that sums to 1; uniform attention gives
        ``1 / (H * W)`` everywhere. ``(B, H, W, F) -> (B, H, W)`` float32. Holds every cell's
        weights at once: meant for inspection, not for training.
        """
        query, key = (
            ops.cast(t, "float32") for t in self._heads(h, [self.query_kernel, self.key_kernel])
        )
        rows = self._cell_weights(query, key)
        columns = self._cell_weights(*(ops.transpose(t, (0, 2, 1, 3, 4)) for t in (query, key)))
        reached = ops.einsum("bnjk,bnkjl->bnkl", ops.sum(columns, axis=3), rows)
        height, width = ops.shape(h)[1:3]
        return ops.mean(reached, axis=1) / (height * width)

    def _cell_weights(self, query, key):
        """Softmax weights of queries along axis 2 of ``(B, R, L, heads, d)`` tensors on the
        cells of their sequence: ``(B, heads, R, L, L)``, pooled windows spread back to the
        cells they average."""
        length = ops.shape(query)[2]
        pooling = self._pooling(length, "float32")
        if pooling is not None:
            key = ops.einsum("brlnd,lk->brknd", key, pooling[0])
        scores = ops.einsum("brlnd,brknd->bnrlk", query, key) / math.sqrt(ops.shape(query)[-1])
        if pooling is not None and pooling[1] is not None:
            scores = ops.where(pooling[1], scores, -math.inf)
        weights = ops.softmax(scores, axis=-1)
        if pooling is None:
            return weights
        return ops.einsum("bnrlk,mk->bnrlm", weights, pooling[0])

    def _pooling(self, length, dtype: str):
        """:func:`pooling_matrix` along an axis of ``length`` cells, or None where no pooling
        applies (``tokens=0`` or a known length within ``tokens``)."""
        return pooling_matrix(length, self.tokens, dtype) if self._pools(length) else None

    def _pools(self, length) -> bool:
        """Whether keys along an axis of ``length`` cells (an int, or a scalar tensor where
        unknown until run time) are window means."""
        return bool(self.tokens) and not (isinstance(length, int) and length <= self.tokens)

    def _attend_along_width(self, query, key, value):
        """Attention along axis 2 of ``(B, R, L, heads, d)`` tensors, one sequence per row,
        on keys and values pooled to at most ``tokens`` windows.

        Rows are attended in chunks that bound the scores held at once; a grid or batch
        size unknown until the graph runs (TensorFlow's generalized traces) is attended
        unchunked.
        """
        batch, rows, length, heads, depth = ops.shape(query)
        mask = None
        pooling = self._pooling(length, self._score_dtype)
        if pooling is not None:
            key, value = (ops.einsum("brlnd,lk->brknd", t, pooling[0]) for t in (key, value))
            if pooling[1] is not None:
                mask = ops.reshape(pooling[1], (1, 1, 1, -1))
        keys = ops.shape(key)[2]
        sequences = batch * rows
        flat = [
            ops.reshape(t, (sequences, size, heads, depth))
            for t, size in ((query, length), (key, keys), (value, keys))
        ]
        if not isinstance(sequences * length * keys, int):
            attended = ops.dot_product_attention(*flat, mask=mask)
        else:
            chunk = self._chunk(length, keys)
            attended = (
                ops.dot_product_attention(*flat) if chunk >= sequences
                else self._chunked_attention(flat, sequences, chunk)
            )
        return ops.reshape(attended, (batch, rows, length, heads, depth))

    @staticmethod
    def _chunked_attention(flat, sequences: int, chunk: int):
        """Attention over ``sequences`` in ``ceil(sequences / chunk)`` sequential chunks."""
        chunks = math.ceil(sequences / chunk)
        padding = chunks * chunk - sequences
        stacked = [
            ops.reshape(
                ops.pad(t, ((0, padding), (0, 0), (0, 0), (0, 0))),
                (chunks, chunk, *ops.shape(t)[1:]),
            )
            for t in flat
        ]
        attended = ops.map(lambda qkv: ops.dot_product_attention(*qkv), tuple(stacked))
        attended = ops.reshape(attended, (chunks * chunk, *ops.shape(flat[0])[1:]))
        return attended[:sequences]
