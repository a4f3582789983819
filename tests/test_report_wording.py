"""Small report defects of issue 11, each pinned: recipe wording, Δ sign, 'gains' vs 'loses', tables that never cut numbers."""
from __future__ import annotations

import io

import pytest


def test_recipe_line_follows_the_flags_not_the_files_description():
    from edgekit.compress.pipeline import describe_recipe, resolve_recipe

    assert "QAT" in describe_recipe(resolve_recipe("default"))
    no_qat = describe_recipe(resolve_recipe("default", {"qat": False}))
    assert "QAT" not in no_qat and no_qat.startswith("full int8")
    assert describe_recipe(resolve_recipe("default", {"sparsity": 0.5})).startswith("prune 50% + QAT")


def test_delta_column_is_negative_for_a_loss_as_in_bench():
    from edgekit.cli.compress_cmd import delta_points

    assert delta_points(0.56) == "-0.56"  # lost 0.56 points
    assert delta_points(-7.24) == "+7.24"  # gained
    assert delta_points(0.0) == "0.00" and delta_points(None) == ""


def test_a_gain_is_not_called_a_loss():
    from edgekit.compress.calibrate import change_words

    assert change_words(-7.24) == "gains 7.24 top-1 points"
    assert change_words(0.56) == "loses 0.56 top-1 points"
    assert change_words(1.0) == "loses 1.00 top-1 point"
    assert change_words(0.001) == "loses no top-1 points"


@pytest.mark.parametrize("width", [80, 60, 200])
def test_tables_never_cut_a_number_in_a_narrow_log(width):
    from rich.console import Console

    from edgekit.tables import fit_tables

    header = ["variant", "top-1", "Δ top-1 pts", "F1", "KiB", "gzip KiB", "non-zero", "MMACs"]
    rows = [
        ["cpu int8 + 2 float layer(s) .tflite", "97.22%", "-0.56", "0.971", "2,801.3", "2,512.2", "1,234,567", "10.04"],
        ["float", "97.78%", "0.00", "0.978", "10,801.3", "9,512.2", "12,345,678", "1,210.04"],
    ]
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False).print(fit_tables("Variants", header, rows))
    text = out.getvalue()
    assert "…" not in text
    for row in rows:
        for cell in row[1:]:
            assert cell in text  # every number whole, on one line
    assert max(len(line) for line in text.splitlines()) <= width


def test_bench_tables_use_the_same_helper_and_cut_nothing():
    from rich.console import Console

    from edgekit.bench.report import comparison_rows
    from edgekit.tables import fit_tables

    result = {"comparison": {"recommended": {"cpu": "cpu int8"}, "variants": [], "rows": [
        {"name": "cpu int8 + 2 float layer(s)", "speedup_p50": 10.04, "speedup_p90": 9.87, "size_ratio": 2.8,
         "top1": 0.9722, "accuracy_delta_pts": -0.56, "within_budget": True},
    ]}}  # fmt: skip
    header, body = comparison_rows(result)
    out = io.StringIO()
    Console(file=out, width=80, force_terminal=False).print(fit_tables("compare", header, body))
    assert "…" not in out.getvalue() and "-0.56" in out.getvalue()


def test_package_docstring_example_runs(tf_keras_h5_path):
    """The example in edgekit's docstring once called loaded.report.summary(), which does not exist."""
    import edgekit

    code = edgekit.__doc__.split("::", 1)[1]
    lines = [line.strip() for line in code.strip().splitlines() if line.strip()]
    src = "\n".join(lines).replace('"model.keras"', repr(str(tf_keras_h5_path)))
    exec(compile(src, "edgekit.__doc__", "exec"), {})  # noqa: S102 - our own docstring


def test_unknown_placement_stays_unknown():
    from edgekit.compile.report import CompatReport, OpPlacement

    ops = [OpPlacement(0, "CONV_2D", None, "this LiteRT does not expose its delegated graph", 100, code="unknown"),
           OpPlacement(1, "SOFTMAX", None, "this LiteRT does not expose its delegated graph", 0, code="unknown")]
    r = CompatReport("cpu", "xnnpack", "XNNPACK", "delegated graph", ops)
    assert r.status == "unknown" and r.fraction_ops is None and r.fraction_macs is None
    s = r.summary()
    assert s["fraction_ops"] is None and s["fraction_macs"] is None and s["not_on_accelerator"] == []
    assert "unknown" in r.headline() and "every op runs" not in r.to_text() and "not on XNNPACK" not in r.to_text()
    assert r.to_dict()["placements"][0]["code"] == "unknown"


def test_placement_codes_are_values_and_checked():
    from edgekit.compile.report import OpPlacement

    assert OpPlacement(0, "ADD", True, None).code == "delegated"
    assert OpPlacement(0, "ADD", False, "why", code="outside_partition").code == "outside_partition"
    with pytest.raises(ValueError, match="not one of"):
        OpPlacement(0, "ADD", False, "why", code="because")
    with pytest.raises(ValueError, match="contradicts"):
        OpPlacement(0, "ADD", False, None, code="delegated")


def test_progress_off_a_terminal_names_each_step_instead_of_leaving_blank_lines():
    import io

    from rich.console import Console

    from edgekit.progress import RichProgress

    buf = io.StringIO()
    prog = RichProgress(Console(file=buf, force_terminal=False, width=80))
    for step in ("fine-tuning QAT", "converting cpu"):
        with prog.task(step, 3) as t:
            t.advance(info="x")
    lines = buf.getvalue().splitlines()
    assert lines == ["fine-tuning QAT …", "converting cpu …"], lines
