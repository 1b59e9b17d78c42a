"""Maps (matplotlib, written atomically): cluster composites, and panels of lat-lon fields.

With cartopy installed (``pip install "faconvlstm[maps]"``) the panels are Plate Carrée maps
with coastlines; without it, plain axes in degrees. Each variable has one colour scale,
symmetric about its centre, and the colour bars sit beside the panels, never on them.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from faconvlstm.data.io import contiguous_longitudes, normalize_longitude
from faconvlstm.data.storage import atomic_path

ANOMALY_SUFFIX = "_anomaly"
#: Width of one map panel in inches (up to 3x for long, narrow bands); its height follows the
#: domain's shape.
PANEL_WIDTH = 3.2
#: Widest figure (inches) that a row of panels may make before they wrap to the next row.
FIGURE_WIDTH = 14.0


def cartopy_available() -> bool:
    try:
        import cartopy  # noqa: F401
    except ImportError:
        return False
    return True


#: Where Debian's ``python-cartopy-data`` package puts cartopy's data (GSHHS shorelines).
SYSTEM_CARTOPY_DATA = Path("/usr/share/cartopy/data")


@functools.cache
def coastlines() -> tuple | None:
    """Coastline geometries: Natural Earth's 1:110m (cartopy fetches and caches it), else the
    coarse GSHHS shorelines; ``None``, with a warning, where neither can be read (offline, no
    cached copy). cartopy looks in ``CARTOPY_DATA_DIR`` first, or where that is unset in
    :data:`SYSTEM_CARTOPY_DATA` when that folder exists."""
    import cartopy
    from cartopy.io import shapereader

    unset = str(cartopy.config.get("pre_existing_data_dir", "")) in ("", ".")  # its default
    if unset and SYSTEM_CARTOPY_DATA.is_dir():
        cartopy.config["pre_existing_data_dir"] = str(SYSTEM_CARTOPY_DATA)

    readers = (
        lambda: shapereader.natural_earth("110m", "physical", "coastline"),
        lambda: shapereader.gshhs("c", 1),
    )
    quiet = logging.getLogger("shapefile")  # GSHHS rings pyshp reports, harmless here
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        for path in readers:
            try:
                return tuple(shapereader.Reader(path()).geometries())
            except Exception:  # noqa: BLE001 -- offline or no data: try the next source
                continue
    finally:
        quiet.setLevel(level)
    warnings.warn(
        "cartopy could not read coastline data (offline and none cached; set "
        "CARTOPY_DATA_DIR to a folder holding Natural Earth or GSHHS shapefiles, or install "
        "Debian's python-cartopy-data); maps are drawn without coastlines",
        stacklevel=2,
    )
    return None


def symmetric_limit(values, center: float = 0.0) -> float:
    """The largest finite distance of ``values`` from ``center`` (a small positive number when
    there is none), so that ``center -/+ limit`` spans them all."""
    distances = np.abs(np.asarray(values, dtype=float) - center)
    finite = distances[np.isfinite(distances)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1e-6


def panel_size(lat, lon) -> tuple[float, float]:
    """Width and height in inches of one map panel of the lat-lon box, title and ticks
    included: equal degrees on both axes, long narrow bands drawn wider."""
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    aspect = min(float(np.ptp(lat)) / max(float(np.ptp(lon)), 1e-6), 1.5)
    width = PANEL_WIDTH * min(max(np.sqrt(0.5 / max(aspect, 1e-3)), 1.0), 3.0)
    return width, width * aspect + 0.6


def panel_columns(lat, lon, panels: int) -> int:
    """How many of ``panels`` map panels fit side by side in :data:`FIGURE_WIDTH`."""
    return max(1, min(panels, int(FIGURE_WIDTH // panel_size(lat, lon)[0])))


def map_figure(lat, lon, rows: int, columns: int):
    """A constrained-layout figure of ``rows`` x ``columns`` map panels of the lat-lon box,
    centred on its own longitudes (a box across the dateline is one block, not two halves at
    the edges of a global map).

    Returns ``(figure, axes)``, ``axes`` of shape ``(rows, columns)``.
    """
    lat, lon = np.asarray(lat, dtype=float), contiguous_longitudes(lon)
    width, height = panel_size(lat, lon)
    figure = Figure(figsize=(width * columns + 0.6, height * rows + 0.8), layout="constrained")
    keywords = {}
    if cartopy_available():
        import cartopy.crs as ccrs

        center = float(lon.min() + lon.max()) / 2
        keywords["projection"] = ccrs.PlateCarree(central_longitude=center)
    axes = figure.subplots(rows, columns, squeeze=False, subplot_kw=keywords)
    for axis in axes.flat:
        _frame(axis, lat, lon)
        if not _is_map(axis):
            axis.label_outer()  # the panels share their extent: ticks on the outer ones
    return figure, axes


def _is_map(axis) -> bool:
    """Whether ``axis`` is a cartopy map (it has a projection) rather than plain axes."""
    return hasattr(axis, "projection")


def _frame(axis, lat: np.ndarray, lon: np.ndarray) -> None:
    """Extent, coastlines and lat/lon ticks of one panel (equal degrees on both axes)."""
    box = [float(lon.min()), float(lon.max()), float(lat.min()), float(lat.max())]
    if not _is_map(axis):
        axis.set(xlim=box[:2], ylim=box[2:], xlabel="lon", ylabel="lat")
        axis.set_aspect("equal")
        axis.tick_params(labelsize=6)
        return
    import cartopy.crs as ccrs

    axis.set_extent(box, crs=ccrs.PlateCarree())
    shorelines = coastlines()
    if shorelines is not None:
        axis.add_geometries(shorelines, ccrs.PlateCarree(), facecolor="none",
                            edgecolor="0.2", linewidth=0.6)
    grid = axis.gridlines(draw_labels={"bottom": "x", "left": "y"}, linewidth=0.3,
                          color="0.5", alpha=0.5)
    grid.xlabel_style = grid.ylabel_style = {"size": 6}


def draw_field(axis, field: xr.DataArray, center: float, limit: float, cmap: str = "RdBu_r"):
    """``field`` (lat, lon) as a mesh on ``axis``, coloured from ``center - limit`` to
    ``center + limit``, its longitudes one contiguous block; returns the mesh for a colour
    bar."""
    field = normalize_longitude(field)
    keywords = {}
    if _is_map(axis):
        import cartopy.crs as ccrs

        keywords["transform"] = ccrs.PlateCarree()
    return axis.pcolormesh(
        field["lon"].values, field["lat"].values, field.transpose("lat", "lon").values,
        cmap=cmap, vmin=center - limit, vmax=center + limit, shading="auto", **keywords,
    )


def colour_bar(figure: Figure, mesh, axes: Sequence, label: str) -> None:
    """One horizontal colour bar below ``axes``, in space of its own."""
    figure.colorbar(mesh, ax=list(axes), location="bottom", shrink=0.8, aspect=30,
                    label=label)


def save_png(figure: Figure, path: Path) -> Path:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90, format="png")
    return path


def plot_composites(composite: xr.Dataset, labels: xr.Dataset, path: Path) -> Path:
    """:func:`composites_figure` written to ``path`` (PNG); returns ``path``."""
    return save_png(composites_figure(composite, labels), path)


def composites_figure(composite: xr.Dataset, labels: xr.Dataset) -> Figure:
    """One row per cluster, one column per variable: composite anomaly maps in physical units.

    Each column shares one colour scale, symmetric about zero, with its colour bar below it;
    titles give the cluster's frequency and mean persistence.
    """
    names = [name for name in composite.data_vars if name.endswith(ANOMALY_SUFFIX)]
    k = composite.sizes["cluster"]
    figure, axes = map_figure(composite["lat"], composite["lon"], k, len(names))
    for column, name in enumerate(names):
        field = composite[name]
        limit = symmetric_limit(field.values)
        for row in range(k):
            mesh = draw_field(axes[row, column], field.isel(cluster=row), 0.0, limit)
            frequency = float(labels["frequency"][row])
            dwell = float(labels["persistence"][row])
            axes[row, column].set_title(
                f"regime {row}: {frequency:.0%} of steps, {dwell:.1f} steps long", fontsize=8
            )
        units = field.attrs.get("units", "")
        variable = name.removesuffix(ANOMALY_SUFFIX)
        colour_bar(figure, mesh, axes[:, column], f"{variable} anomaly ({units})" if units
                   else f"{variable} anomaly")
    return figure
