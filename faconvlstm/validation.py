"""Validation of arguments, with errors that name what was expected.

Shared by the layers and the data handling; imports nothing else of ours but
:mod:`faconvlstm.errors`. Integers may be Python or NumPy integers (not bools); every check
returns the value as a plain Python type.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

from faconvlstm.errors import InputError

SPATIAL_RANK = 2
DATA_FORMATS = ("channels_last", "channels_first")
PADDINGS = ("valid", "same")


def is_integer(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer (bools are not)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """Whether ``value`` is a Python or NumPy real number (bools are not)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def positive_int(value, name: str, allow_none: bool = False) -> int | None:
    """``value`` as an int >= 1 (or None when allowed); InputError otherwise."""
    if value is None and allow_none:
        return None
    if not is_integer(value) or value < 1:
        raise InputError(f"`{name}` must be a positive integer; received {name}={value!r}.")
    return int(value)


def non_negative_int(value, name: str) -> int:
    """``value`` as an int >= 0; InputError otherwise."""
    if not is_integer(value) or value < 0:
        raise InputError(
            f"`{name}` must be a non-negative integer (0 switches it off); "
            f"received {name}={value!r}."
        )
    return int(value)


def positive_pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1, as a 2-tuple; InputError otherwise."""
    pair = (value, value) if is_integer(value) else value
    if not isinstance(pair, Sequence) or len(pair) != SPATIAL_RANK:
        raise InputError(
            f"`{name}` must be an integer or a tuple of 2 integers; received {name}={value!r}."
        )
    for item in pair:
        positive_int(item, name)
    return tuple(int(item) for item in pair)


def dilation_tuple(value, name: str) -> tuple[int, ...]:
    """A non-empty tuple of distinct positive ints; InputError otherwise."""
    if is_integer(value):
        value = (value,)
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        raise InputError(
            f"`{name}` must be a non-empty tuple of positive integers such as (1, 2, 4); "
            f"received {name}={value!r}."
        )
    for item in value:
        positive_int(item, name)
    if len(set(value)) != len(value):
        raise InputError(f"`{name}` must not repeat a dilation; received {name}={value!r}.")
    return tuple(int(item) for item in value)


def padding_mode(value) -> str:
    """``"valid"`` or ``"same"`` (case-insensitive); InputError otherwise."""
    mode = value.lower() if isinstance(value, str) else value
    if mode not in PADDINGS:
        raise InputError(f"`padding` must be 'valid' or 'same'; received padding={value!r}.")
    return mode


def data_format_name(value, default: str) -> str:
    """``"channels_last"`` or ``"channels_first"`` (None: ``default``); InputError otherwise."""
    name = default if value is None else value
    name = name.lower() if isinstance(name, str) else name
    if name not in DATA_FORMATS:
        raise InputError(
            "`data_format` must be 'channels_last' or 'channels_first'; "
            f"received data_format={value!r}."
        )
    return name


def rate(value, name: str) -> float:
    """A float in [0, 1); InputError otherwise."""
    if not is_number(value) or not 0 <= value < 1:
        raise InputError(f"`{name}` must be a float in [0, 1); received {name}={value!r}.")
    return float(value)


def check_strides_and_dilation(strides: tuple[int, int], dilation_rate: tuple[int, int]) -> None:
    """Keras' rule: strides > 1 and dilation_rate > 1 cannot be combined."""
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise InputError(
            "`strides` > 1 cannot be combined with `dilation_rate` > 1; received "
            f"strides={strides} and dilation_rate={dilation_rate}."
        )


def check_heads(attention_dim: int, attention_heads: int) -> None:
    """The attention width must split evenly into heads."""
    if attention_dim % attention_heads:
        raise InputError(
            "`attention_dim` must be divisible by `attention_heads`; received "
            f"attention_dim={attention_dim} and attention_heads={attention_heads}."
        )
