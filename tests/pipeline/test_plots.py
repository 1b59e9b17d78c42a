"""Maps: one symmetric scale per variable, colour bars beside the panels, coastlines with
cartopy (plain axes without it)."""

import itertools
import sys

import numpy as np
import pytest
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh

from faconvlstm.evaluation.report import plot_attention
from faconvlstm.pipeline import plots
from tests.conftest import on_the_default_backend_only

pytestmark = on_the_default_backend_only("the maps are the same on every backend")

LAT, LON = np.linspace(22.0, 70.0, 7), np.linspace(-80.0, 30.0, 12)
#: A coastline across the test box: the shape file a cartopy data folder would hold.
COAST = [[(-80.0, 40.0), (-20.0, 50.0), (30.0, 45.0)]]


#: A tropical Pacific box (117.5E..97.5W) in the [-180, 180) convention, sorted: split by the
#: dateline into -177.5..-97.5 and 117.5..177.5.
PACIFIC_LON = np.concatenate([np.arange(-177.5, -95.0, 5.0), np.arange(117.5, 180.0, 5.0)])


def composites(k: int = 3, lon: np.ndarray = LON) -> tuple[xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(0)
    fields = {
        f"{name}_anomaly": (("cluster", "lat", "lon"),
                            rng.normal(scale=scale, size=(k, LAT.size, lon.size)), {"units": "K"})
        for name, scale in (("t2m", 5.0), ("sst", 0.5))
    }
    composite = xr.Dataset(fields, coords={"lat": LAT, "lon": lon})
    composite["sst_anomaly"][:, 0, :3] = np.nan  # land
    labels = xr.Dataset({"frequency": ("cluster", np.full(k, 1 / k)),
                         "persistence": ("cluster", np.arange(1.0, k + 1))})
    return composite, labels


@pytest.fixture
def no_cartopy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cartopy", None)


@pytest.fixture
def cartopy_with_coastline(monkeypatch, tmp_path):
    """cartopy reading its coastline from a data folder of this test's (no download)."""
    cartopy = pytest.importorskip("cartopy")
    shapefile = pytest.importorskip("shapefile")
    folder = tmp_path / "shapefiles" / "natural_earth" / "physical"
    folder.mkdir(parents=True)
    with shapefile.Writer(str(folder / "ne_110m_coastline"), shapeType=shapefile.POLYLINE) as out:
        out.field("name")
        out.line(COAST)
        out.record("test coast")
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", str(tmp_path))
    plots.coastlines.cache_clear()
    yield cartopy
    plots.coastlines.cache_clear()


def map_axes(figure):
    return [axis for axis in figure.axes if axis.get_title().startswith("regime")]


def assert_colour_bars_cover_no_panel(figure):
    FigureCanvasAgg(figure).draw()
    panels = map_axes(figure)
    bars = [axis for axis in figure.axes if axis not in panels]
    assert bars
    renderer = figure.canvas.get_renderer()
    for one, other in itertools.combinations(panels + bars, 2):
        overlap = one.get_window_extent(renderer).overlaps(other.get_window_extent(renderer))
        assert not overlap, (one.get_title(), other.get_label())


@pytest.mark.parametrize("kind", ["no_cartopy", "cartopy_with_coastline"])
def test_each_variable_has_one_scale_symmetric_about_zero(request, kind):
    request.getfixturevalue(kind)
    composite, labels = composites()
    figure = plots.composites_figure(composite, labels)
    axes = np.array(map_axes(figure)).reshape(3, 2)
    for column, name in enumerate(["t2m_anomaly", "sst_anomaly"]):
        limit = float(np.nanmax(np.abs(composite[name].values)))
        limits = {
            next(c for c in axis.collections if isinstance(c, QuadMesh)).get_clim()
            for axis in axes[:, column]
        }
        assert limits == {(-limit, limit)}
    assert_colour_bars_cover_no_panel(figure)


def test_without_cartopy_the_maps_are_plain_axes_in_degrees(no_cartopy):
    figure = plots.composites_figure(*composites())
    axis = map_axes(figure)[0]
    assert type(axis).__name__ == "Axes"
    assert axis.get_xlim() == (LON.min(), LON.max()) and axis.get_ylim() == (LAT.min(), LAT.max())
    assert axis.get_aspect() == 1.0


def test_with_cartopy_the_maps_have_coastlines(cartopy_with_coastline):
    from cartopy.mpl.feature_artist import FeatureArtist
    from cartopy.mpl.geoaxes import GeoAxes

    figure = plots.composites_figure(*composites())
    for axis in map_axes(figure):
        assert isinstance(axis, GeoAxes)
        coasts = [c for c in axis.collections if isinstance(c, FeatureArtist)]
        assert len(coasts) == 1
        (geometry,) = coasts[0]._feature.geometries()
        np.testing.assert_allclose(np.asarray(geometry.coords), COAST[0])


@pytest.mark.parametrize("kind", ["no_cartopy", "cartopy_with_coastline"])
def test_a_region_across_the_dateline_is_drawn_as_one_block_centred_on_it(request, kind):
    request.getfixturevalue(kind)
    figure = plots.composites_figure(*composites(lon=PACIFIC_LON))
    for axis in map_axes(figure):
        mesh = next(c for c in axis.collections if isinstance(c, QuadMesh))
        mesh_lon = mesh.get_coordinates()[..., 0]
        # 145 degrees of cell centres, 150 of cell edges; split, the mesh would span 355
        assert mesh_lon.min() == pytest.approx(115.0) and mesh_lon.max() == pytest.approx(265.0)
        if kind == "no_cartopy":
            assert axis.get_xlim() == (117.5, 262.5)
        else:  # in the map's own coordinates, centred on the box
            assert axis.projection.proj4_params["pm"] == pytest.approx(190.0)
            west, east, _, _ = axis.get_extent()
            assert (west, east) == (pytest.approx(-72.5, abs=0.5), pytest.approx(72.5, abs=0.5))


def test_offline_without_coastline_data_the_maps_are_drawn_without_them(
    cartopy_with_coastline, monkeypatch
):
    from cartopy.io import shapereader

    def offline(*_):
        raise OSError("no network")

    monkeypatch.setattr(shapereader, "natural_earth", offline)
    monkeypatch.setattr(shapereader, "gshhs", offline)
    with pytest.warns(UserWarning, match="drawn without coastlines"):
        figure = plots.composites_figure(*composites())
    assert not any(axis.collections[1:] for axis in map_axes(figure))  # the mesh alone


@pytest.mark.parametrize(("lat_span", "lon_span", "columns"), [(48, 110, 4), (10, 360, 1)])
def test_attention_maps_wrap_long_bands_into_rows(no_cartopy, tmp_path, lat_span, lon_span,
                                                  columns):
    lat, lon = np.linspace(0, lat_span, 5), np.linspace(0, lon_span, 9)
    attention = xr.DataArray(1 + 0.1 * np.random.default_rng(0).normal(size=(4, 5, 9)),
                             dims=("cluster", "lat", "lon"), coords={"lat": lat, "lon": lon})
    assert plots.panel_columns(lat, lon, 4) == columns
    image = tmp_path / plot_attention(xr.Dataset({"attention": attention}), tmp_path / "a.png")
    assert image.read_bytes().startswith(b"\x89PNG")
