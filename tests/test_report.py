"""Plots and the report page: each plot is drawn, opened and checked; the page holds the
conversion's numbers. One small MLP is converted (no C++ compilation) for the module."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hgq_chip.cli import main
from hgq_chip.errors import ProjectError
from hgq_chip.report import (
    load_conversion, load_trajectories, plot_bit_heatmaps, plot_bit_histograms, plot_pareto, plot_trajectories,
    write_report,
)
from mlp_models import MLPSpec, saved_model

pytest.importorskip("matplotlib", reason="plots need the `plot` extra: pip install '.[plot]'")
from matplotlib.image import imread  # noqa: E402

SPECS = [MLPSpec(n_in=12, widths=(24, 10, 4), granularity="per-element", seed=3, weight_f=(-1, 5))]


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    import hgq_chip

    root = tmp_path_factory.mktemp("report")
    model, _ = saved_model(root / "model.keras", SPECS)
    hgq_chip.convert(model, root / "prj", backend="Vitis", log=lambda m: None)
    return root, model


def opened(path, min_height=300, min_width=500):
    """The PNG as an array, after checking it is a real, non-blank image of a readable size."""
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] >= min_height and image.shape[1] >= min_width, image.shape
    pixels = image[..., :3].reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 20  # more than a blank canvas with a frame
    return image


def red_fraction(image) -> float:
    r, g, b = image[..., 0], image[..., 1], image[..., 2]
    return float(np.mean((r > 0.85) & (g < 0.2) & (b > 0.2) & (b < 0.4)))  # PRUNED_COLOUR #e6194b


def test_conversion_files_read_back_as_arrays(converted):
    root, model = converted
    conversion = load_conversion(root / "prj")
    kernels = conversion.weights_of("kernel")
    assert [w.layer for w in kernels] == ["b0_d0", "b0_d1", "b0_d2"]
    layer = model.get_layer("b0_d0")
    fmt = layer.kq.fixed_format(layer.fused_kernel())
    assert np.array_equal(kernels[0].bits, np.where(fmt.width > 0, fmt.width, 0))
    assert np.array_equal(kernels[0].pruned, layer.kq.quantized(layer.fused_kernel()) == 0)
    assert kernels[0].pruned.any() and (~kernels[0].pruned).any()


def test_bit_histograms_and_heat_maps_show_pruned_weights(converted, tmp_path):
    root, _ = converted
    weights = load_conversion(root / "prj").weights
    histograms = opened(plot_bit_histograms(weights, tmp_path / "hist.png"))
    heat = opened(plot_bit_heatmaps(weights, tmp_path / "heat.png"))
    assert red_fraction(histograms) > 0.002 and red_fraction(heat) > 0.05  # pruned weights are drawn in red
    unpruned = [w for w in weights if w.name == "kernel"]
    for w in unpruned:
        w.pruned[...] = False
        w.bits[w.bits == 0] = 1
    # Only the colour bar's "0 pruned" entry stays red.
    assert red_fraction(opened(plot_bit_heatmaps(unpruned, tmp_path / "heat_none.png"))) < 0.01


def test_pareto_plot_with_and_without_luts(tmp_path):
    front = [{"path": "a.keras", "epoch": e, "metric": m, "ebops": b}
             for e, m, b in [(3, 0.71, 900), (9, 0.83, 2500), (14, 0.90, 7000), (20, 0.93, 21000)]]
    (tmp_path / "pareto.json").write_text(json.dumps(front))
    single = opened(plot_pareto(front, tmp_path / "p1.png", metric_name="val accuracy"))
    double = opened(plot_pareto(front, tmp_path / "p2.png", luts=[300, 800, 2100, 6000]))
    assert double.shape[1] > 1.6 * single.shape[1]  # a second panel: metric vs estimated LUTs
    with pytest.raises(ValueError, match="2 LUT values for 4"):
        plot_pareto(front, tmp_path / "p3.png", luts=[1, 2])


def test_trajectories_from_dict_and_both_csv_layouts(tmp_path):
    trajectories = {"dense N_w": [8, 7.6, 7.1, 6.4, 6.2, 5.9], "dense N_a": [8, 7.9, 7.7, 7.2, 6.9, 6.95]}
    opened(plot_trajectories(trajectories, tmp_path / "t.png"))
    wide = tmp_path / "wide.csv"
    wide.write_text("step,dense N_w\n0,8\n10,7.5\n20,6.2\n")
    long = tmp_path / "long.csv"
    long.write_text("step,layer,kind,bits,ceil,frozen,task_gradient,cost_gradient\n"
                    "10,dense,w,7.5,8,0,0.1,0.2\n10,dense,a,7.9,8,0,0,0\n20,dense,w,6.2,7,0,0,0\n")
    assert load_trajectories(wide) == {"dense N_w": ([0.0, 10.0, 20.0], [8.0, 7.5, 6.2])}
    assert load_trajectories(long) == {"dense N_w": ([10.0, 20.0], [7.5, 6.2]), "dense N_a": ([10.0], [7.9])}
    opened(plot_trajectories(long, tmp_path / "t2.png"))


def test_report_page_html_and_markdown(converted, tmp_path):
    root, _ = converted
    prj = root / "prj"
    summary = json.loads((prj / "summary.json").read_text())
    front = [{"path": str(root / "model.keras"), "epoch": 1, "metric": 0.8, "ebops": summary["total_ebops"]}]
    (tmp_path / "pareto.json").write_text(json.dumps(front))
    page = write_report(prj, output=tmp_path / "r.html", plots=True, pareto=tmp_path,
                        trajectories={"b0_d0 N_w": [6, 5.5, 5.2]})
    text = page.read_text()
    for layer in summary["layers"]:
        assert f"<td>{layer['layer']}</td>" in text and f"<td>{layer['ebops']}</td>" in text
    assert f"<td>{summary['total_ebops']}</td>" in text and "Resource estimate" in text
    for name in ("bit_histograms", "kernel_bits", "pareto", "adaqat_bits"):
        assert f"report_files/{name}.png" in text
        opened(tmp_path / "report_files" / f"{name}.png")
    markdown = write_report(prj, output=tmp_path / "r.md", format="markdown").read_text()
    assert markdown.startswith("# hgq_chip report") and "| b0_d1 | HDense |" in markdown and "![" not in markdown


def test_report_cli(converted, tmp_path, capsys):
    root, _ = converted
    out = tmp_path / "page.md"
    assert main(["report", str(root / "prj"), "--format", "markdown", "--plots", "--output", str(out)]) == 0
    assert f"report: {out}" in capsys.readouterr().out
    assert "report_files/kernel_bits.png" in out.read_text()
    assert main(["report", str(tmp_path)]) == ProjectError.exit_code  # not a conversion directory
    assert "lacks summary.json" in capsys.readouterr().err
