"""Data-parallel training: every global batch split evenly across ``devices``.

- **JAX:** one process; ``keras.distribution.DataParallel`` shards each batch over the
  first ``devices`` devices and XLA computes the step over the whole batch.
- **PyTorch:** one process per device, launched by ``torchrun`` (``fit`` launches it itself:
  :mod:`faconvlstm.pipeline.launch`). Each process reads its share of every global batch;
  ``torch.nn.parallel.DistributedDataParallel`` averages the gradients (gloo on CPU, nccl
  on GPU). The subspace head's batch-standardization statistics, the loss's weight
  normalizer and the logged losses are taken over the global batch, so N devices follow
  the loss curve of one device with the same global batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os

import keras

import faconvlstm.backends
from faconvlstm import validation
from faconvlstm.errors import InputError
from faconvlstm.layers import SubspaceHead
from faconvlstm.models.autoencoder import RECONSTRUCTION_LAYER
from faconvlstm.models.losses import lead_errors, lead_loss


@dataclasses.dataclass(frozen=True)
class DataParallel:
    """How this process takes part in training on ``devices`` devices.

    ``processes > 1`` only under PyTorch's one-process-per-device training; ``rank`` is this
    process's index among them, and only rank 0 (the chief) writes files;
    ``local_processes`` of them run on this host.
    """

    devices: int = 1
    rank: int = 0
    processes: int = 1
    local_processes: int = 1

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        """``(index, count)``: which equal part of every global batch this process reads."""
        return self.rank, self.processes

    @property
    def batching(self) -> dict:
        """:class:`~faconvlstm.data.windows.WindowDataset` options: every batch full (a
        global batch splits evenly only when complete) and this process's share of it."""
        return {"drop_remainder": self.devices > 1, "shard": self.shard}

    def scope(self):
        """The context to train in: on PyTorch the process group, joined on entering and left
        on leaving; on JAX the distribution over the devices."""
        if self.processes > 1:
            return _process_group_scope()
        if self.devices > 1:
            devices = keras.distribution.list_devices()[: self.devices]
            return keras.distribution.DataParallel(devices=devices).scope()
        return contextlib.nullcontext()

    def agree(self, value: int, what: str) -> int:
        """``value``, after checking every process found the same (e.g. the epochs done)."""
        if self.processes == 1:
            return value
        import torch.distributed as dist

        values = [None] * self.processes
        dist.all_gather_object(values, value)
        if len(set(values)) > 1:
            raise InputError(
                f"The {self.processes} processes found different {what} ({values}); the run "
                "directory must be the same for every process (on several hosts, a shared "
                "file system)."
            )
        return value

    def prepare(self, model: keras.Model) -> None:
        """Make ``model``'s ``fit`` train across the processes (no change in one process).

        Keras' PyTorch trainer calls the model itself, never a wrapper, so the model's train
        step is replaced by one that runs the forward pass through ``DistributedDataParallel``
        (whose hooks then average the gradients in ``backward``); the subspace heads'
        standardizations take their statistics over all processes.
        """
        if self.processes == 1:
            return
        from torch.nn.parallel import DistributedDataParallel

        for layer in model.layers:
            if isinstance(layer, SubspaceHead) and layer.pooled_norm is not None:
                layer.pooled_norm.moments = _global_moments
        device = model.weights[0].value.device
        wrapped = DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
        reconstruction = model.get_layer(RECONSTRUCTION_LAYER)
        model.train_step = functools.partial(
            _train_step, model, wrapped, reconstruction, self.processes
        )
        model.test_step = functools.partial(_test_step, model, reconstruction, self.processes)


def data_parallel(devices: int, batch_size: int) -> DataParallel:
    """Check that ``batch_size`` windows can train on ``devices`` devices here, and how.

    On PyTorch, more than one device needs one process per device (``torchrun``); they train
    in one process group inside :meth:`DataParallel.scope`.
    """
    validation.positive_int(devices, "devices")
    backend = faconvlstm.backend()
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    if devices == 1 and processes == 1:
        return DataParallel()
    if processes > 1 and backend != "torch":
        raise InputError(
            f"This is one of {processes} processes (WORLD_SIZE), but one process per device "
            f"is how PyTorch trains; the {backend!r} backend trains on several devices from "
            "one process: start it once, without torchrun."
        )
    if backend == "jax":
        _check_jax_devices(devices)
    elif backend == "torch":
        _check_torch_processes(devices, processes)
    else:
        raise InputError(
            f"Training on {devices} devices needs the JAX or PyTorch backend; the active "
            f"backend is {backend!r}. Set KERAS_BACKEND=jax or KERAS_BACKEND=torch."
        )
    check_batch_split(devices, batch_size)
    if processes == 1:
        return DataParallel(devices)
    return DataParallel(devices, int(os.environ.get("RANK", "0")), processes, _local_processes())


def needs_torchrun(devices: int) -> bool:
    """Whether training on ``devices`` devices must start one process per device first."""
    return devices > 1 and faconvlstm.backend() == "torch" and "WORLD_SIZE" not in os.environ


def check_batch_split(devices: int, batch_size: int) -> None:
    if batch_size % devices:
        raise InputError(
            f"The batch of {batch_size} windows cannot be split evenly across {devices} devices; "
            "use a batch size that is a multiple of the device count."
        )


def check_gpus(processes: int) -> None:
    """Refuse more processes on this host than it has GPUs (when it has any)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() < processes:
        raise InputError(
            f"{processes} processes on this host but only {torch.cuda.device_count()} GPUs; "
            "start at most one process per GPU."
        )


def _check_jax_devices(devices: int) -> None:
    available = keras.distribution.list_devices()
    if len(available) < devices:
        raise InputError(
            f"{devices} devices requested but only {len(available)} found "
            f"({', '.join(available)}); "
            "on a CPU, set XLA_FLAGS=--xla_force_host_platform_device_count=N before starting."
        )


def _check_torch_processes(devices: int, processes: int) -> None:
    if processes == 1:
        raise InputError(
            f"Training on {devices} devices with PyTorch runs one process per device: launch "
            f"with `torchrun --nproc-per-node={devices} -m faconvlstm train ... --devices "
            f"{devices}` (fit and `faconvlstm train` do this themselves); see docs/scale.md."
        )
    if processes != devices:
        raise InputError(
            f"torchrun started {processes} processes but devices is {devices}; with PyTorch "
            f"each device is one process, so pass --devices {processes}."
        )
    check_gpus(_local_processes())


def _local_processes() -> int:
    """How many of torchrun's processes run on this host."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))


@contextlib.contextmanager
def _process_group_scope():
    """Inside: the process group torchrun set up, joined here unless the caller already
    had; a group joined here ends on leaving, however that happens."""
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group("gloo")
    try:
        yield
    finally:
        dist.destroy_process_group()


@functools.cache
def _global_sum_function():
    """The autograd function of :func:`_global_sum` (defined once torch is needed)."""
    import torch
    import torch.distributed as dist

    class GlobalSum(torch.autograd.Function):
        @staticmethod
        def forward(context, value):
            total = value.clone()
            dist.all_reduce(total)
            return total

        @staticmethod
        def backward(context, gradient):
            total = gradient.clone()
            dist.all_reduce(total)
            return total

    return GlobalSum


def _global_sum(tensor):
    """The sum of ``tensor`` over all processes, differentiable: the gradient each process
    receives is the sum of all processes' gradients of the result."""
    return _global_sum_function().apply(tensor)


def _global_moments(inputs):
    """``(mean, variance)``, each ``(features,)``, of ``inputs`` ``(..., features)`` over
    every axis but the last and the global batch (all processes): the
    :meth:`~faconvlstm.layers.normalization.BatchStandardization.moments` of data-parallel
    training."""
    import torch

    axes = tuple(range(inputs.ndim - 1))
    count = torch.full_like(inputs[(0,) * len(axes)], inputs[..., 0].numel())
    sums = _global_sum(torch.stack([
        torch.sum(inputs, dim=axes), torch.sum(inputs * inputs, dim=axes), count,
    ]))
    mean = sums[0] / sums[2]
    return mean, sums[1] / sums[2] - mean * mean


def _global_loss(model: keras.Model, reconstruction_layer, x: dict, y_pred, processes: int,
                 training: bool):
    """This process's loss, rescaled so that its average over the processes is the loss of
    the global batch: the error of each lead is normalized by the weight of all processes'
    targets of that lead, not of this process's alone."""
    loss = model.compute_loss(x=x, y_pred=y_pred, training=training)
    predicted = keras.ops.expand_dims(y_pred["reconstruction"], 2)
    if "forecast" in y_pred:
        predicted = keras.ops.concatenate([predicted, y_pred["forecast"]], axis=2)
    frames, weights = (keras.ops.convert_to_tensor(x[name]) for name in ("frames", "weights"))
    errors, totals = lead_errors(predicted, frames, weights)
    totals = _global_sum(totals.detach())
    rescaled = processes * lead_loss(errors, totals, reconstruction_layer.reconstruction_share)
    return loss - reconstruction_layer.losses[0] + rescaled


def _update_metrics(model: keras.Model, loss, processes: int) -> dict:
    """Track the loss of the global batch: the mean of the processes' rescaled losses."""
    global_loss = _global_sum(loss.detach())
    for metric in model.metrics:
        if metric.name == "loss":
            metric.update_state(global_loss / processes)
    return {metric.name: metric.result() for metric in model.metrics}


def _train_step(model: keras.Model, wrapped, reconstruction_layer, processes: int,
                data) -> dict:
    """Keras' PyTorch train step, with the forward pass through ``DistributedDataParallel``
    (whose hooks average the gradients during ``backward``)."""
    import torch

    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = wrapped(x, training=True)
    model.zero_grad()
    loss = _global_loss(model, reconstruction_layer, x, y_pred, processes, training=True)
    model.optimizer.scale_loss(loss).backward()
    weights = model.trainable_weights[:]
    with torch.no_grad():
        model.optimizer.apply([weight.value.grad for weight in weights], weights)
    return _update_metrics(model, loss, processes)


def _test_step(model: keras.Model, reconstruction_layer, processes: int, data) -> dict:
    x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = model(x, training=False)
    loss = _global_loss(model, reconstruction_layer, x, y_pred, processes, training=False)
    return _update_metrics(model, loss, processes)
