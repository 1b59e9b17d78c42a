"""Maps of cluster composites (matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from faconvlstm.data.storage import atomic_path

ANOMALY_SUFFIX = "_anomaly"


def plot_composites(composite: xr.Dataset, labels: xr.Dataset, path: Path) -> Path:
    """One row per cluster, one column per variable: composite anomaly maps in physical units.

    Each column shares a symmetric color scale; titles give the cluster's frequency and mean
    persistence. Returns ``path``.
    """
    names = [name for name in composite.data_vars if name.endswith(ANOMALY_SUFFIX)]
    k = composite.sizes["cluster"]
    figure = Figure(figsize=(3.2 * len(names), 2.4 * k), layout="constrained")
    axes = figure.subplots(k, len(names), squeeze=False)
    for column, name in enumerate(names):
        field = composite[name]
        limit = float(np.nanmax(np.abs(field.values))) or 1.0
        for row in range(k):
            axis = axes[row, column]
            mesh = axis.pcolormesh(
                field["lon"], field["lat"], field.isel(cluster=row), cmap="RdBu_r",
                vmin=-limit, vmax=limit, shading="auto",
            )
            frequency = float(labels["frequency"][row])
            dwell = float(labels["persistence"][row])
            axis.set_title(
                f"{name.removesuffix(ANOMALY_SUFFIX)} | regime {row}: {frequency:.0%}, "
                f"{dwell:.1f} steps",
                fontsize=8,
            )
            axis.tick_params(labelsize=6)
        figure.colorbar(mesh, ax=axes[:, column], label=field.attrs.get("units", ""), shrink=0.8)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=90, format="png")
    return path
