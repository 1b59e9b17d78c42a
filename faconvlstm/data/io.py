"""Reading gridded climate data (NetCDF, Zarr) into the canonical fields form.

``open_dataset`` opens one file, a glob, a list of files or a Zarr store lazily (dask);
``standardize_axes`` finds the axes by CF metadata and renames them ``time``, ``lat``, ``lon``,
``level``; ``select_fields`` picks variables at levels as named channels and crops space, time and
season; ``load_fields`` chains the three. The result is a ``(time, lat, lon, channel)`` float32
``xarray.DataArray`` with a ``units`` coordinate along ``channel``; NaN marks invalid cells.
"""

from __future__ import annotations

import functools
import glob
import os
import re
from collections.abc import Sequence
from pathlib import Path

import cf_xarray  # noqa: F401  (registers the ``.cf`` accessor)
import dask
import numpy as np
import xarray as xr

from faconvlstm.data.alignment import align_monthly_stamps, cut_to_shared_grid
from faconvlstm.data.calendar import check_dates, check_time_axis, is_dates
from faconvlstm.data.storage import first_line, is_system_error
from faconvlstm.errors import InputError
from faconvlstm.validation import is_integer, positive_int

TIME_CHUNK = 32
"""Timesteps per dask chunk of NetCDF data: at least a model window, a few per 0.25-degree year."""

AXIS_NAMES = {
    "time": ("time", "valid_time"),
    "lat": ("lat", "latitude"),
    "lon": ("lon", "longitude"),
    "level": ("level", "plev", "pressure_level", "lev"),
}
CF_KEYS = {
    "time": ("T", "time"),
    "lat": ("latitude",),
    "lon": ("longitude",),
    "level": ("Z", "vertical"),
}
PRESSURE_UNITS_PA = ("Pa", "pa", "pascal", "pascals", "Pascal")
PRESSURE_UNITS_HPA = ("hPa", "hpa", "millibar", "millibars", "mbar", "mb")
VARIABLE_DIMS = ("time", "lat", "lon")
"""The dimensions of one variable at one level, once standardized."""
CANONICAL_DIMS = (*VARIABLE_DIMS, "channel")
"""The dimensions of the canonical fields array :func:`select_fields` returns."""
MONTH_LETTERS = "JFMAMJJASOND"
VARIABLE_PATTERN = re.compile(r"([^@\s,]+)(?:@([^@\s,]+))?")
COORDINATE_TOLERANCE = 1e-6

Source = (str | os.PathLike | xr.Dataset | xr.DataArray
          | Sequence[str | os.PathLike | xr.Dataset | xr.DataArray])
Region = tuple[float, float, float, float]


def open_dataset(source: Source, time_chunk: int = TIME_CHUNK, time_dim: str | None = None,
                 time_units: str | None = None) -> xr.Dataset:
    """Open NetCDF or Zarr data lazily, as dask arrays.

    ``source`` is a NetCDF file, a Zarr store (a directory or a path ending in ``.zarr``), a glob
    pattern (``"data/*.nc"``) or a list of paths; or an xarray Dataset or DataArray (in memory
    or dask-backed) or a list of them, taken as they are. Several files (per year or per variable) are
    combined by their coordinates, as ``xarray.open_mfdataset`` does (an outer join: a level or
    a time present in only some files is NaN in the others); they must share one calendar and
    grids that coincide where they overlap: files covering different regions are cut to the
    region all of them cover, and monthly files stamped on different days of the month are
    stamped at mid-month (each with a :class:`~faconvlstm.data.alignment.DataAligned`
    warning). A file of one variable without ``units``, whose global attributes give them
    (as some tools write), gets those units. Each NetCDF variable is chunked in whole stored chunks: along time, the
    smallest multiple of its stored chunk that holds ``time_chunk`` timesteps (``time_chunk``
    when it is stored contiguously), along the other axes its stored chunks (the whole axis
    when contiguous); Zarr keeps its chunks. A missing path raises ``FileNotFoundError``, a file
    the system cannot read (no permission, an I/O failure) its ``OSError``, and a file that is
    not valid NetCDF or Zarr (another format, truncated, corrupted) an ``InputError`` naming it.
    ``time_dim`` and ``time_units`` fix each file's time axis where its metadata lack them
    (:func:`decode_time_axis`).
    """
    time_chunk = positive_int(time_chunk, "time_chunk")
    time_axis = functools.partial(decode_time_axis, time_dim=time_dim, time_units=time_units)
    objects = _xarray_objects(source)
    if objects:
        datasets = [time_axis(_units_from_global_attributes(ds)) for ds in objects]
        names = [f"dataset {number}" for number in range(1, len(datasets) + 1)]
        return datasets[0] if len(datasets) == 1 else combine_datasets(names, datasets, "data")
    paths = _resolve_paths(source)
    engine = _engine(paths)
    if len(paths) == 1 and engine == "zarr":
        return time_axis(_read(paths[0], functools.partial(xr.open_zarr, paths[0], chunks={})))
    datasets = [
        time_axis(_open_netcdf(path, engine, time_chunk, time_dim)) for path in paths
    ]
    return datasets[0] if len(datasets) == 1 else combine_datasets(paths, datasets, source)


def is_in_memory(source: Source | None) -> bool:
    """Whether ``source`` is (or holds) xarray objects rather than paths."""
    entries = source if isinstance(source, (list, tuple)) else [source]
    return any(isinstance(entry, (xr.Dataset, xr.DataArray)) for entry in entries)


def _xarray_objects(source: Source) -> list[xr.Dataset]:
    """The datasets of an in-memory ``source`` (a Dataset, a DataArray or a list of them; a
    DataArray becomes a dataset of one variable named as it is, or ``"data"``); ``[]`` for
    paths. Paths and xarray objects cannot be mixed."""
    if not is_in_memory(source):
        return []
    entries = [source] if isinstance(source, (xr.Dataset, xr.DataArray)) else list(source)
    if not all(isinstance(entry, (xr.Dataset, xr.DataArray)) for entry in entries):
        raise InputError(
            "The data mix paths and xarray objects; expected paths only or xarray objects only."
        )
    return [
        entry if isinstance(entry, xr.Dataset) else entry.to_dataset(name=entry.name or "data")
        for entry in entries
    ]


def decode_time_axis(ds: xr.Dataset, time_dim: str | None = None,
                     time_units: str | None = None) -> xr.Dataset:
    """``ds`` with its time axis decoded to dates, for data whose metadata lack them.

    ``time_dim`` names the time dimension (default: the one :func:`find_axis` finds);
    ``time_units`` gives its CF units (``"hours since 1996-01-05 00:00"``), replacing any the
    coordinate has; a dimension without a coordinate counts its steps from 0. With neither,
    ``ds`` is returned unchanged; a time axis that is dates already keeps them (``time_units``
    is then refused). The decoded coordinate is marked ``axis="T"``.
    """
    if time_dim is None and time_units is None:
        return ds
    dim = time_dim or find_axis(ds, "time") or next(
        (name for name in AXIS_NAMES["time"] if name in ds.dims), None
    )
    if dim is None or dim not in ds.dims:
        named = f"no dimension {dim!r}" if dim else "no time dimension"
        raise InputError(
            f"The data have {named} (dims: {', '.join(map(str, ds.dims))}); name the time "
            "dimension with time_dim (--time-dim)."
        )
    raw = ds[dim] if dim in ds.coords else xr.DataArray(np.arange(ds.sizes[dim]), dims=dim)
    if is_dates(raw):
        if time_units is not None:
            raise InputError(
                f"The time dimension {dim!r} holds dates already; leave out time_units "
                "(--time-units)."
            )
        return ds
    decoded = _decoded_time(dim, raw, time_units or raw.attrs.get("units"))
    return ds.assign_coords({dim: decoded})


def _decoded_time(dim: str, raw: xr.DataArray, units: str | None) -> xr.Variable:
    """The numbers of ``raw`` decoded as CF times in ``units``, or an ``InputError``."""
    example = "expected CF units such as 'hours since 1996-01-05 00:00'"
    if not units:
        raise InputError(
            f"The time dimension {dim!r} holds numbers without units; give them with "
            f"time_units (--time-units), {example}."
        )
    attrs = {"units": units, "calendar": raw.attrs.get("calendar", "standard")}
    try:
        decoded = xr.decode_cf(xr.Dataset(coords={dim: (dim, raw.values, attrs)}))[dim]
    except Exception as error:  # noqa: BLE001 -- xarray's decoding errors vary by version
        raise InputError(
            f"cannot decode the time dimension {dim!r} with units {units!r}: "
            f"{first_line(error).split(' with ')[0]}; {example}."
        ) from error
    if not is_dates(decoded):
        raise InputError(
            f"The time units {units!r} of dimension {dim!r} are not CF time units; {example}."
        )
    variable = decoded.variable.copy()
    variable.attrs["axis"] = "T"
    return variable


def standardize_axes(ds: xr.Dataset) -> xr.Dataset:
    """Rename the axes ``time``, ``lat``, ``lon``, ``level`` and bring them to canonical form.

    Axes are found by CF metadata with cf_xarray (``axis``, ``standard_name``, ``units``; a
    decoded datetime coordinate is a time axis, a pressure-unit one a level axis), else by the
    usual names (time/valid_time, lat/latitude, lon/longitude, level/plev/pressure_level/lev).
    ERA5's ``number`` (ensemble member) keeps the first member; ``expver`` (ERA5 and ERA5T) is
    merged, taking the first experiment version that has a value at each point (equal to selecting
    the first where it is complete). Levels in Pa (CMIP ``plev``) become hPa. Latitude is sorted
    ascending, longitude wrapped to ``[-180, 180)`` and sorted; the axes' bounds variables, stale
    after that, are dropped. The time axis must be decoded dates, strictly increasing.
    """
    ds = _reduce_ensemble_dims(ds)
    axes = {axis: find_axis(ds, axis) for axis in AXIS_NAMES}
    for axis in VARIABLE_DIMS:
        if axes[axis] is None:
            fix = ("; or name the time dimension and give its units (--time-dim, --time-units)"
                   if axis == "time" else "")
            raise InputError(
                f"No {axis} axis found among the dimensions ({', '.join(map(str, ds.dims))}); "
                f"expected CF metadata or a name in {', '.join(AXIS_NAMES[axis])}{fix}."
            )
    found = {name: axis for axis, name in axes.items() if name is not None}
    ds = _drop_bounds(ds, found)
    ds = ds.drop_vars(
        [axis for axis in found.values() if axis in ds.variables and axis not in found]
    )
    ds = ds.rename({name: axis for name, axis in found.items() if name != axis})
    check_dates(ds["time"])
    check_time_axis(ds["time"])
    if "level" in ds.dims:
        ds = _level_in_hpa(ds)
    return normalize_longitude(_sort_latitude(ds))


def channel_name(name: str, level: float | None) -> str:
    """The channel label of a variable at a level: ``"t2m"``, ``"z@500"``."""
    return name if level is None else f"{name}@{level:g}"


def parse_variables(spec: str | Sequence[str]) -> list[tuple[str, float | None]]:
    """``"z@500,t@850,t2m"`` (or a list of such strings) -> ``[("z", 500.0), ("t", 850.0),
    ("t2m", None)]``. Levels are in the units of the level axis (hPa after standardize_axes)."""
    entries = [spec] if isinstance(spec, str) else list(spec)
    if not entries or not all(isinstance(entry, str) for entry in entries):
        raise InputError(
            f"Variables must be a string like 'z@500,t2m' or a list of them, got {spec!r}."
        )
    parsed = [_parse_variable(item.strip(), spec) for item in ",".join(entries).split(",")]
    labels = [channel_name(name, level) for name, level in parsed]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise InputError(f"Variables {', '.join(repeated)} are requested twice in {spec!r}.")
    return parsed


def season_months(season: str | Sequence[int]) -> list[int]:
    """Month numbers of a season: ``"DJF"`` -> ``[12, 1, 2]``; numbers pass through checked."""
    if isinstance(season, str):
        letters = season.upper()
        cyclic = MONTH_LETTERS * 2
        starts = [start for start in range(12) if cyclic.startswith(letters, start)]
        if not 0 < len(letters) <= 12 or len(starts) != 1:
            reason = "is ambiguous" if len(starts) > 1 else "is not consecutive months"
            raise InputError(
                f"Season {season!r} {reason}; expected consecutive month initials from "
                f"'{MONTH_LETTERS}' such as 'DJF', 'JJA', 'NDJFM', or a list of month numbers."
            )
        return [(starts[0] + offset) % 12 + 1 for offset in range(len(letters))]
    months = list(season)
    if not months or not all(is_integer(month) and 1 <= month <= 12 for month in months):
        raise InputError(f"Season months must be integers 1..12, got {season!r}.")
    return [int(month) for month in months]


def select_fields(
    ds: xr.Dataset,
    variables: str | Sequence[str],
    region: Region | None = None,
    time: tuple[str, str] | None = None,
    season: str | Sequence[int] | None = None,
    coarsen: int | None = None,
) -> xr.DataArray:
    """Variables of a standardized dataset as a lazy ``(time, lat, lon, channel)`` float32 array.

    ``variables``: as :func:`parse_variables` (a variable on a level axis of a single value
    may be named without ``@level``: its channel is then the plain name); ``channel`` holds
    the labels, ``units`` each variable's units ("1" when it has none). ``region``:
    ``(lat_min, lat_max, lon_min, lon_max)`` in degrees, longitudes in either convention,
    running east from ``lon_min`` to ``lon_max`` (``lon_min > lon_max`` crosses the dateline).
    The crop is one contiguous block whose ``lon``
    coordinate increases from ``lon_min`` wrapped to ``[-180, 180)``: a crop across the dateline
    runs past 180 (``(10, 60, 160, -120)`` gives 160..240), a crop across Greenwich stays in
    ``[-180, 180)``. ``time``: inclusive ``(start, end)`` date strings, any calendar. ``season``:
    consecutive month letters ("DJF", "NDJFM") or month numbers. ``coarsen``: block mean over
    ``coarsen x coarsen`` cells ignoring NaN (a block stays NaN only if all of it is), trimming
    the edge. A channel without a single valid value raises ``InputError``; that check is the
    one computation done here (a streaming pass over the selection).
    """
    missing = [dim for dim in VARIABLE_DIMS if dim not in ds.dims]
    if missing:
        raise InputError(
            f"The dataset has no {', '.join(missing)} dimension (dims: "
            f"{', '.join(map(str, ds.dims))}); run standardize_axes first."
        )
    channels = parse_variables(variables)
    fields = xr.Dataset(
        {channel_name(name, level): _channel_data(ds, name, level) for name, level in channels}
    )
    units = [str(ds[name].attrs.get("units", "1")) for name, _ in channels]
    if time is not None:
        fields = _select_time(fields, time)
    if season is not None:
        fields = _select_season(fields, season)
    if region is not None:
        fields = _crop(fields, region)
    array = fields.to_dataarray(dim="channel").transpose(*CANONICAL_DIMS)
    array = array.astype("float32").assign_coords(units=("channel", units))
    if coarsen is not None:
        array = _coarsen(array, coarsen)
    _check_channel_values(array)
    return array.rename("fields")


def load_fields(
    source: Source,
    variables: str | Sequence[str],
    *,
    region: Region | None = None,
    time: tuple[str, str] | None = None,
    season: str | Sequence[int] | None = None,
    coarsen: int | None = None,
    time_dim: str | None = None,
    time_units: str | None = None,
) -> xr.DataArray:
    """``open_dataset`` + ``standardize_axes`` + ``select_fields``: files or xarray objects to
    lazy fields."""
    ds = standardize_axes(open_dataset(source, time_dim=time_dim, time_units=time_units))
    return select_fields(ds, variables, region=region, time=time, season=season, coarsen=coarsen)


def _resolve_paths(source: Source) -> list[str]:
    entries = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not entries:
        raise InputError(
            "No data source given; expected a path, a glob pattern or a list of paths."
        )
    paths = []
    for entry in entries:
        path = os.path.expanduser(os.fspath(entry))
        if os.path.exists(path):
            paths.append(path)
        elif glob.has_magic(path):
            matches = sorted(glob.glob(path))
            if not matches:
                raise FileNotFoundError(f"No files match the pattern '{path}'.")
            paths.extend(matches)
        else:
            raise FileNotFoundError(f"No such file or Zarr store: '{path}'.")
    unreadable = [path for path in paths if not os.access(path, os.R_OK)]
    if unreadable:
        raise PermissionError(f"'{unreadable[0]}' is not readable (permission denied).")
    return paths


def _engine(paths: list[str]) -> str | None:
    """``"zarr"`` when every path is a Zarr store, else None (xarray guesses each file's engine)."""
    is_zarr = [os.path.isdir(path) or path.rstrip("/").endswith(".zarr") for path in paths]
    return "zarr" if all(is_zarr) else None


def _read(path: str, opener):
    """Run ``opener``; a system error passes through, a library error becomes ``InputError``
    naming ``path``."""
    try:
        return opener()
    except Exception as error:
        if is_system_error(error):
            raise
        reason = first_line(error)
        if "unable to decode time units" in reason:
            expected = "expected CF units such as 'days since 1979-01-01'"
            reason = f"{reason.split(' with ')[0]}; {expected}"
        raise InputError(f"cannot read '{path}' as NetCDF or Zarr: {reason}") from error


def _open_netcdf(path: str, engine: str | None, time_chunk: int,
                 time_dim: str | None = None) -> xr.Dataset:
    """One NetCDF file, each variable in dask chunks of whole stored chunks (see
    :func:`open_dataset`), so no dask chunk splits a chunk of the file; ``time_dim`` is the
    time dimension when the file's metadata do not say."""
    ds = _read(path, functools.partial(xr.open_dataset, path, engine=engine, cache=False))
    time_dim = time_dim or find_axis(ds, "time")

    def chunked(names) -> dict[str, xr.Variable]:
        variables = {name: ds[name].variable for name in names if name not in ds.indexes}
        return {
            name: variable.chunk(_stored_chunks(variable, time_dim, time_chunk))
            for name, variable in variables.items() if variable.ndim
        }

    result = _units_from_global_attributes(
        ds.assign_coords(chunked(ds.coords)).assign(chunked(ds.data_vars))
    )
    result.set_close(ds.close)
    return result


def _units_from_global_attributes(ds: xr.Dataset) -> xr.Dataset:
    """A lone data variable without ``units`` takes the file's global ``units``, if any."""
    names = [name for name in ds.data_vars if ds[name].ndim > 1]
    if len(names) != 1 or "units" in ds[names[0]].attrs or "units" not in ds.attrs:
        return ds
    variable = ds[names[0]]
    return ds.assign({names[0]: variable.assign_attrs(units=str(ds.attrs["units"]))})


def _stored_chunks(variable: xr.Variable, time_dim: str | None, time_chunk: int) -> dict:
    """Dask chunks of ``variable`` ``{dim: size}``: whole stored chunks, about ``time_chunk``
    of them along ``time_dim`` (-1: the whole axis)."""
    stored = variable.encoding.get("preferred_chunks", {})
    chunks = {dim: stored.get(dim, -1) for dim in variable.dims}
    if time_dim in chunks:
        step = stored.get(time_dim, 1)
        chunks[time_dim] = step * -(-time_chunk // step)
    return chunks


def combine_datasets(names: list[str], datasets: list[xr.Dataset], source) -> xr.Dataset:
    """Several datasets (``names``: their files, for messages) combined by their coordinates,
    after checking that they share one calendar, cutting them to the region they share and
    aligning their monthly stamps (:mod:`faconvlstm.data.alignment`); closing the combined
    dataset closes them all."""
    try:
        _check_same_calendar(names, datasets, source)
        aligned = _aligned(names, datasets)
        combined = _combine(aligned, source)
    except InputError:
        _close_all(datasets)
        raise
    combined.set_close(functools.partial(_close_all, datasets))
    return combined


def _aligned(paths: list[str], datasets: list[xr.Dataset]) -> list[xr.Dataset]:
    """The datasets on the lat/lon region they share, monthly stamps aligned."""
    horizontal = [(find_axis(ds, "lat"), find_axis(ds, "lon")) for ds in datasets]
    if all(None not in names for names in horizontal):
        datasets = cut_to_shared_grid(paths, datasets, horizontal)
    time_axes = [find_axis(ds, "time") for ds in datasets]
    if all(axis is not None and is_dates(ds[axis]) for ds, axis in zip(datasets, time_axes)):
        datasets = align_monthly_stamps(paths, datasets, time_axes)
    return datasets


def _combine(datasets: list[xr.Dataset], source: Source) -> xr.Dataset:
    """The datasets combined by their coordinates (an outer join), or an ``InputError``."""
    try:
        return xr.combine_by_coords(
            datasets, data_vars="minimal", coords="minimal", compat="override", join="outer"
        )
    except Exception as error:
        raise InputError(f"cannot combine the files of {source!r}: {first_line(error)}") from error


def _close_all(datasets: list[xr.Dataset]) -> None:
    for dataset in datasets:
        dataset.close()


def _check_same_calendar(paths: list[str], datasets: list[xr.Dataset], source: Source) -> None:
    """Refuse files on different calendars, naming them."""
    calendars = {}
    for path, ds in zip(paths, datasets):
        time_dim = find_axis(ds, "time")
        if time_dim is not None and is_dates(ds[time_dim]):
            calendars[path] = ds[time_dim].dt.calendar
    if len(set(calendars.values())) > 1:
        found = ", ".join(f"{Path(path).name}: {name}" for path, name in calendars.items())
        raise InputError(
            f"The files of {source!r} use different calendars ({found}); expected one "
            "calendar (convert the files with xarray's convert_calendar)."
        )


def find_axis(ds: xr.Dataset, axis: str) -> str | None:
    """The dimension coordinate of ``axis``: CF metadata first, then the usual names."""
    dimension_coordinates = [dim for dim in ds.dims if dim in ds.coords]
    candidates = [name for key in CF_KEYS[axis] for name in ds.cf.axes.get(key, [])]
    candidates += [name for key in CF_KEYS[axis] for name in ds.cf.coordinates.get(key, [])]
    if axis == "time":
        candidates += [dim for dim in dimension_coordinates if is_dates(ds[dim])]
    if axis == "level":
        pressure_units = PRESSURE_UNITS_PA + PRESSURE_UNITS_HPA
        candidates += [
            d for d in dimension_coordinates if ds[d].attrs.get("units") in pressure_units
        ]
    candidates += AXIS_NAMES[axis]
    return next((name for name in candidates if name in dimension_coordinates), None)


def _reduce_ensemble_dims(ds: xr.Dataset) -> xr.Dataset:
    if "number" in ds.dims:
        ds = ds.isel(number=0, drop=True)
    if "expver" in ds.dims:
        versions = [ds.isel(expver=index, drop=True) for index in range(ds.sizes["expver"])]
        ds = functools.reduce(lambda merged, version: merged.combine_first(version), versions)
    return ds.drop_vars(["number", "expver"], errors="ignore")


def _drop_bounds(ds: xr.Dataset, found: dict[str, str]) -> xr.Dataset:
    bounds = [ds[name].attrs.get("bounds") for name in found]
    return ds.drop_vars([name for name in bounds if name in ds.data_vars])


def _level_in_hpa(ds: xr.Dataset) -> xr.Dataset:
    level = ds["level"]
    if level.attrs.get("units") not in PRESSURE_UNITS_PA:
        return ds
    in_hpa = level.copy(data=level.values / 100.0)
    in_hpa.attrs["units"] = "hPa"
    return ds.assign_coords(level=in_hpa)


def _sort_latitude(ds: xr.Dataset) -> xr.Dataset:
    steps = np.diff(ds["lat"].values)
    if np.all(steps > 0):
        return ds
    if np.all(steps < 0):
        return ds.isel(lat=slice(None, None, -1))
    return ds.sortby("lat")


def normalize_longitude(data: xr.Dataset | xr.DataArray) -> xr.Dataset | xr.DataArray:
    """Wrap ``data``'s longitude to ``[-180, 180)``, sort it, and drop a repeated meridian
    (0 and 360); a regional grid that crosses the dateline stays one contiguous block
    (:func:`contiguous_longitudes`)."""
    lon = data["lon"]
    order, values = _longitude_order(lon.values)
    if np.array_equal(order, np.arange(lon.size)) and np.array_equal(values, lon.values):
        return data
    data = data.isel(lon=_as_slice(order))
    return data.assign_coords(lon=data["lon"].copy(data=values.astype(lon.dtype)))


def contiguous_longitudes(lon: np.ndarray) -> np.ndarray:
    """Longitudes in either convention as one increasing block, as :func:`normalize_longitude`
    orders them: wrapped to ``[-180, 180)`` and sorted; those of a regional grid split by the
    dateline (its widest gap elsewhere) run past 180 (150..275, not -180..-85 then 150..175)."""
    return _longitude_order(np.asarray(lon, dtype=float))[1]


def _longitude_order(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The indices that order ``lon`` as :func:`contiguous_longitudes`, and the values."""
    wrapped = np.mod(lon + 180.0, 360.0) - 180.0
    order = np.argsort(wrapped, kind="stable")
    order = order[np.concatenate(([True], np.diff(wrapped[order]) > 0))]
    values = _contiguous(wrapped[order])
    order = order[np.argsort(values, kind="stable")]
    return order, np.sort(values)


def _contiguous(lon: np.ndarray) -> np.ndarray:
    """Sorted longitudes in ``[-180, 180)``; those of a regional grid split by the dateline
    (its widest gap elsewhere) moved past 180, so the grid is one increasing block."""
    if lon.size < 3:
        return lon
    gaps = np.diff(np.concatenate([lon, [lon[0] + 360.0]]))
    widest = int(np.argmax(gaps))
    if widest == lon.size - 1 or gaps[widest] <= 1.5 * np.median(gaps):
        return lon  # the widest gap is at the dateline already, or the grid is global
    return np.where(np.arange(lon.size) > widest, lon, lon + 360.0)


def _as_slice(indices: np.ndarray) -> slice | np.ndarray:
    """A slice when ``indices`` are one increasing run (cheaper for dask), else the indices."""
    if indices.size and np.all(np.diff(indices) == 1):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


def _parse_variable(entry: str, spec) -> tuple[str, float | None]:
    match = VARIABLE_PATTERN.fullmatch(entry)
    level = None
    if match and match.group(2) is not None:
        try:
            level = float(match.group(2))
        except ValueError:
            match = None
    if not match or (level is not None and not np.isfinite(level)):
        raise InputError(
            f"Cannot parse variable {entry!r} in {spec!r}; expected 'name' or 'name@level', "
            "comma-separated, e.g. 'z@500,t@850,t2m'."
        )
    return match.group(1), level


def _channel_data(ds: xr.Dataset, name: str, level: float | None) -> xr.DataArray:
    """Variable ``name`` at ``level`` as a lazy ``(time, lat, lon)`` array, checked; a
    variable on a level axis of one value needs no ``level``."""
    if name not in ds.data_vars:
        available = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        raise InputError(f"Variable '{name}' is not in the dataset; available: {available}.")
    variable = ds[name]
    if not (np.issubdtype(variable.dtype, np.number) or variable.dtype == bool):
        raise InputError(
            f"Variable '{name}' holds values of type {variable.dtype}; expected numbers."
        )
    extra = [str(dim) for dim in variable.dims if dim not in (*VARIABLE_DIMS, "level")]
    missing = [dim for dim in VARIABLE_DIMS if dim not in variable.dims]
    if extra or missing:
        raise InputError(
            f"Variable '{name}' has dimensions ({', '.join(map(str, variable.dims))}); expected "
            "time, lat, lon and optionally level."
        )
    if "level" not in variable.dims:
        if level is not None:
            raise InputError(
                f"Variable '{name}' has no level dimension; write '{name}' instead of "
                f"'{channel_name(name, level)}'."
            )
        return variable.reset_coords(drop=True)
    levels = variable["level"].values
    listed = (
        f"{', '.join(f'{value:g}' for value in levels)} {variable['level'].attrs.get('units', '')}"
    )
    if level is None and levels.size == 1:
        return variable.isel(level=0).reset_coords(drop=True)
    if level is None:
        raise InputError(
            f"Variable '{name}' has levels {listed.strip()}; choose one as '{name}@<level>', "
            f"e.g. '{channel_name(name, float(levels[0]))}'."
        )
    matches = np.flatnonzero(np.isclose(levels, level, rtol=0.0, atol=COORDINATE_TOLERANCE))
    if not matches.size:
        raise InputError(
            f"Level {level:g} of '{name}' is not in the data; levels: {listed.strip()}."
        )
    return variable.isel(level=int(matches[0])).reset_coords(drop=True)


def _select_time(fields: xr.Dataset, time: tuple[str, str]) -> xr.Dataset:
    if isinstance(time, str) or len(time) != 2:
        raise InputError(
            f"time must be a (start, end) pair like ('2000-01-01', '2000-12-31'), got {time!r}."
        )
    start, end = time
    try:
        selected = fields.sel(time=slice(start, end))
    except Exception as error:
        raise InputError(f"Cannot select the time range {start!r} to {end!r}: {error}") from error
    if not selected.sizes["time"]:
        raise InputError(
            f"No timesteps between {start!r} and {end!r}; the data run from "
            f"{fields.time.values[0]} to {fields.time.values[-1]}."
        )
    return selected


def _select_season(fields: xr.Dataset, season: str | Sequence[int]) -> xr.Dataset:
    months = season_months(season)
    inside = np.flatnonzero(np.isin(fields.time.dt.month.values, months))
    if not inside.size:
        raise InputError(f"No timesteps fall in season {season!r} (months {months}).")
    return fields.isel(time=_as_slice(inside))


def _crop(fields: xr.Dataset, region: Region) -> xr.Dataset:
    lat_min, lat_max, lon_min, lon_max = _check_region(region)
    lat = fields["lat"].values
    rows = np.flatnonzero(
        (lat >= lat_min - COORDINATE_TOLERANCE) & (lat <= lat_max + COORDINATE_TOLERANCE)
    )
    start = float(np.mod(lon_min + 180.0, 360.0) - 180.0)
    width = 360.0 if lon_max - lon_min >= 360.0 else float(np.mod(lon_max - lon_min, 360.0))
    offsets = np.mod(fields["lon"].values - start, 360.0)
    offsets[offsets > 360.0 - COORDINATE_TOLERANCE] -= 360.0
    columns = np.flatnonzero(offsets <= width + COORDINATE_TOLERANCE)
    columns = columns[np.argsort(offsets[columns], kind="stable")]
    if not rows.size or not columns.size:
        raise InputError(
            f"The region {tuple(region)} holds no grid cells; the grid spans latitudes "
            f"{lat.min():g}..{lat.max():g} and longitudes {fields['lon'].values.min():g}.."
            f"{fields['lon'].values.max():g}."
        )
    cropped = fields.isel(lat=_as_slice(rows), lon=_as_slice(columns))
    lon = cropped["lon"]
    return cropped.assign_coords(lon=lon.copy(data=(start + offsets[columns]).astype(lon.dtype)))


def _check_region(region: Region) -> Region:
    try:
        lat_min, lat_max, lon_min, lon_max = (float(value) for value in region)
    except (TypeError, ValueError) as error:
        raise InputError(
            f"region must be (lat_min, lat_max, lon_min, lon_max) in degrees, got {region!r}."
        ) from error
    if not (-90.0 <= lat_min <= lat_max <= 90.0) or not np.isfinite([lon_min, lon_max]).all():
        raise InputError(
            f"region {region!r} needs -90 <= lat_min <= lat_max <= 90 and finite longitudes."
        )
    return lat_min, lat_max, lon_min, lon_max


def _coarsen(array: xr.DataArray, factor: int) -> xr.DataArray:
    factor = positive_int(factor, "coarsen")
    if factor > min(array.sizes["lat"], array.sizes["lon"]):
        raise InputError(
            f"coarsen factor {factor} exceeds the grid ({array.sizes['lat']} x "
            f"{array.sizes['lon']} cells)."
        )
    return array.coarsen(lat=factor, lon=factor, boundary="trim").mean()


def _check_channel_values(array: xr.DataArray) -> None:
    """Every channel has some valid value and no infinite one (one pass over the data)."""
    has_data, has_infinity = dask.compute(
        array.notnull().any(dim=VARIABLE_DIMS), np.isinf(array).any(dim=VARIABLE_DIMS)
    )
    names = [str(name) for name in array["channel"].values]
    empty = [name for name, valid in zip(names, has_data.values) if not valid]
    if empty:
        raise InputError(
            f"Channel(s) {', '.join(empty)} are all NaN in the selection; expected valid values "
            "(check the level, region, time range and season)."
        )
    infinite = [name for name, found in zip(names, has_infinity.values) if found]
    if infinite:
        raise InputError(
            f"Channel(s) {', '.join(infinite)} hold infinite values; expected finite values, "
            "with NaN (or the variable's _FillValue) where data are missing."
        )
