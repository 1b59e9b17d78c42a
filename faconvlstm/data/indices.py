"""Climate index time series (ENSO, NAO, ...) read from a user's file and put on the data's time.

A CSV file has the dates in its first column and one index per further column; a NetCDF file
holds the indices as variables along its time axis. :func:`align_index` interpolates an index
linearly in (fractional) year onto the data's timestamps, so a monthly index (stamped at the
start or the end of each month, read as mid-month) meets daily data, whatever their calendars.
:func:`region_index` makes the classic box indices (Nino 3.4: SST anomalies averaged over
5S-5N, 170W-120W) from gridded fields, and :func:`write_index` writes one as such a CSV.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from faconvlstm.data.calendar import decimal_year
from faconvlstm.data.io import find_axis, open_dataset
from faconvlstm.data.preprocessing import Anomalies, area_weights
from faconvlstm.data.storage import atomic_path
from faconvlstm.errors import InputError

CSV_SUFFIXES = (".csv", ".txt")


def _read_csv(path: Path) -> xr.Dataset:
    try:
        table = pd.read_csv(path, index_col=0, comment="#")
        table.index = pd.to_datetime(table.index)
    except (ValueError, TypeError, pd.errors.ParserError) as error:
        raise InputError(
            f"Cannot read index file '{path}' as CSV with dates in the first column: {error}"
        ) from None
    numeric = table.select_dtypes("number")
    if numeric.columns.size < table.columns.size:
        other = sorted(set(table.columns) - set(numeric.columns))
        raise InputError(
            f"Index file '{path}': columns {other} are not numeric; expected dates in the first "
            "column and one numeric column per index."
        )
    return xr.Dataset.from_dataframe(numeric.rename_axis("time"))


def read_indices(path: str | os.PathLike) -> dict[str, xr.DataArray]:
    """Every index in ``path`` (CSV or NetCDF) as a 1-D series along ``time``, by name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Index file '{path}' does not exist.")
    if path.suffix.lower() in CSV_SUFFIXES:
        dataset = _read_csv(path)
    else:
        dataset = open_dataset(path).load()
        time_axis = find_axis(dataset, "time")
        if time_axis is None:
            raise InputError(f"Index file '{path}' has no time axis; expected dated values.")
        dataset = dataset.rename({time_axis: "time"})
    indices = {
        name: series.dropna("time").sortby("time")
        for name, series in dataset.data_vars.items()
        if series.dims == ("time",) and np.issubdtype(series.dtype, np.number)
    }
    if not indices:
        raise InputError(
            f"Index file '{path}' holds no numeric series along time; expected a CSV with dates "
            "in the first column or a NetCDF with 1-D variables of time."
        )
    if any(series.sizes["time"] < 2 for series in indices.values()):
        short = [name for name, series in indices.items() if series.sizes["time"] < 2]
        raise InputError(f"Index file '{path}': {short} have fewer than 2 valid values.")
    return indices


def align_index(index: xr.DataArray, time: xr.DataArray, min_overlap: int = 30) -> np.ndarray:
    """``index`` (sorted by time) interpolated linearly onto ``time``, NaN outside its span.

    Raises InputError when fewer than ``min_overlap`` timesteps of ``time`` fall in the span.
    ``(T,)``.
    """
    values = np.interp(
        decimal_year(time), decimal_year(index["time"]), index.values, left=np.nan, right=np.nan
    )
    overlap = int(np.isfinite(values).sum())
    if overlap < min_overlap:
        raise InputError(
            f"The index {index.name!r} spans {index['time'].values[0]} to "
            f"{index['time'].values[-1]}, which covers {overlap} of the data's timesteps "
            f"({time.values[0]} to {time.values[-1]}); expected at least {min_overlap}."
        )
    return values


def region_index(fields: xr.DataArray) -> xr.DataArray:
    """The area-weighted (cos latitude) mean over the grid of the anomalies of one channel of
    fields ``(time, lat, lon, channel)``, invalid cells left out: ``(time,)``, in the
    channel's units.

    The anomalies are departures from the channel's seasonal climatology per cell (the
    :class:`~faconvlstm.data.preprocessing.Anomalies` step: mean and 3 annual harmonics,
    fitted on all of ``fields``), so a box crop of SST gives the Nino indices.
    """
    if fields.sizes["channel"] != 1:
        raise InputError(
            f"An index is made of one variable; got {fields.sizes['channel']} channels "
            f"({', '.join(map(str, fields['channel'].values))})."
        )
    anomalies = Anomalies().fit(fields).transform(fields).isel(channel=0)
    weights = xr.DataArray(area_weights(fields["lat"].values), dims="lat") * anomalies.notnull()
    index = (anomalies.fillna(0.0) * weights).sum(("lat", "lon")) / weights.sum(("lat", "lon"))
    return index.rename(str(fields["channel"].values[0])).assign_attrs(
        units=str(fields["units"].values[0]), long_name="area-mean seasonal anomaly"
    )


def write_index(index: xr.DataArray, path: str | os.PathLike, name: str) -> Path:
    """Write ``index`` (``(time,)``) atomically as a CSV that :func:`read_indices` reads:
    dates, then one column ``name``."""
    table = pd.DataFrame({name: index.values}, index=pd.Index(
        [str(stamp)[:19] for stamp in index["time"].values], name="time"))
    with atomic_path(Path(path)) as temporary:
        table.to_csv(temporary)
    return Path(path)
