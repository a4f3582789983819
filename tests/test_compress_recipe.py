"""Recipes: validation in the constructor, exact TOML/dict round trips, shipped recipes, flag overrides."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.compress.pipeline import resolve_recipe
from edgekit.compress.prune import pruning_schedule
from edgekit.compress.recipe import Recipe, list_recipes, load_recipe, recipe_defaults
from edgekit.errors import ConfigError

FULL = Recipe(
    sparsity=0.75,
    structured=0.25,
    structured_norm="l2",
    prune_output_layer=True,
    prune_min_weights=4096,
    epochs=3,
    batch_size=16,
    learning_rate=1e-3,
    qat_learning_rate=2e-5,
    distill=True,
    distill_temperature=2.5,
    distill_alpha=0.3,
    qat=True,
    calibration_samples=64,
    max_accuracy_drop=0.5,
    holdout=0.25,
    eval_samples=500,
    seed=7,
    targets=("cpu", "gpu"),
    description='quotes " and \\ and ünïcode\nand a newline',
)


@pytest.mark.parametrize("recipe", [Recipe(), FULL, Recipe(mn="2:4", qat=True)], ids=["defaults", "every-field", "mn"])
def test_round_trips_exactly_through_toml_and_dict(recipe):
    assert Recipe.from_toml(recipe.to_toml()) == recipe
    assert Recipe.from_dict(recipe.to_dict()) == recipe


def test_every_field_is_set_differently_from_its_default_in_the_round_trip_case():
    # So the round trip above really covers each field (a new field must be added to FULL).
    defaults = recipe_defaults()
    same = [f.name for f in dataclasses.fields(Recipe) if getattr(FULL, f.name) == defaults[f.name] and f.name != "mn"]
    assert same == []


@pytest.mark.parametrize("name", list_recipes())
def test_shipped_recipes_load_and_round_trip(name):
    r = load_recipe(name)
    assert Recipe.from_toml(r.to_toml()) == r
    assert r.description


def test_the_three_required_recipes_ship_with_what_they_promise():
    assert {"default", "aggressive-size", "latency"} <= set(list_recipes())
    agg = load_recipe("aggressive-size")
    assert agg.sparsity == 0.8 and agg.qat and "cpu" in agg.targets
    lat = load_recipe("latency")
    assert lat.structured is not None and 0 < lat.structured < 1
    assert load_recipe("default").max_accuracy_drop is not None


def test_unknown_key_names_it(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("sparsity = 0.5\nsparsty = 0.8\n")
    with pytest.raises(ConfigError, match="unknown recipe key 'sparsty'"):
        load_recipe(f)


def test_bad_toml_is_a_config_error(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("sparsity = = 0.5\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_recipe(f)


def test_unknown_recipe_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="aggressive-size") as e:
        load_recipe("agressive")
    assert "default" in str(e.value) and "latency" in str(e.value)


@pytest.mark.parametrize("value", [0, 1, 1.0, -0.1, 1.5, "0.5", True, float("nan")])
def test_sparsity_outside_open_unit_interval_is_refused(value):
    with pytest.raises(ConfigError, match="sparsity"):
        Recipe(sparsity=value, epochs=1)


@pytest.mark.parametrize("value", [0, 1, 2.0, -0.5])
def test_structured_outside_open_unit_interval_is_refused(value):
    with pytest.raises(ConfigError, match="structured"):
        Recipe(structured=value)


@pytest.mark.parametrize("value", ["4:2", "2:2", "0:4", "2-4", "a:b", "2:4:8", "", [4, 2], 24])
def test_invalid_mn_is_refused(value):
    with pytest.raises(ConfigError, match="M:N"):
        Recipe(mn=value)


@pytest.mark.parametrize(("value", "pair"), [("2:4", (2, 4)), (" 1 : 4 ", (1, 4)), ([2, 4], (2, 4)), ("3:8", (3, 8))])
def test_valid_mn_is_normalised(value, pair):
    r = Recipe(mn=value)
    assert r.mn_pair == pair and r.mn == f"{pair[0]}:{pair[1]}"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sparsity": 0.5, "mn": "2:4"}, "both sparsity"),
        ({"epochs": -1}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"sparsity": 0.5, "epochs": 0, "qat": False}, "epochs=0"),
        ({"qat": True, "epochs": 0}, "epochs=0"),
        ({"distill": True, "epochs": 0}, "epochs=0"),
        ({"calibration_samples": 0}, "calibration_samples"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"max_accuracy_drop": -1}, "max_accuracy_drop"),
        ({"holdout": 0}, "holdout"),
        ({"distill_alpha": 1.5}, "distill_alpha"),
        ({"structured_norm": "l3"}, "structured_norm"),
        ({"qat": "yes"}, "qat"),
        ({"prune_output_layer": "yes"}, "prune_output_layer"),
        ({"prune_min_weights": -1}, "prune_min_weights=-1"),
        ({"targets": []}, "targets"),
        ({"targets": ["cpu", "cpu"]}, "twice"),
    ],
)
def test_bad_values_are_refused_in_the_constructor(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Recipe(**kwargs)


def test_structured_alone_may_skip_fine_tuning():
    assert Recipe(structured=0.5, epochs=0).epochs == 0


def test_flags_override_the_recipe_and_none_means_not_given():
    base = load_recipe("aggressive-size")
    r = resolve_recipe("aggressive-size", {"sparsity": 0.5, "epochs": None, "qat": False})
    assert (r.sparsity, r.epochs, r.qat) == (0.5, base.epochs, False)


def test_an_mn_flag_replaces_the_recipes_sparsity_and_vice_versa():
    r = resolve_recipe("aggressive-size", {"mn": "2:4"})
    assert r.mn == "2:4" and r.sparsity is None
    back = resolve_recipe(r, {"sparsity": 0.6})
    assert back.sparsity == 0.6 and back.mn is None


def test_override_validation_names_the_bad_flag():
    with pytest.raises(ConfigError, match="sparsity=1.2"):
        resolve_recipe(None, {"sparsity": 1.2})
    with pytest.raises(ConfigError, match="unknown recipe setting 'sparsty'"):
        Recipe().with_overrides(sparsty=0.5)


# ------------------------------------------------ schedule (tfmot's step counter)


@pytest.mark.parametrize("total", [1, 2, 3, 7, 45, 90, 100, 101, 999, 5000])
def test_pruning_schedule_reaches_the_end_step_on_a_mask_update(total):
    s = pruning_schedule(total)
    assert 1 <= s.end_step <= total
    assert s.end_step % s.frequency == 0 and s.begin_step == 0
    # tfmot updates masks where (step - begin) % frequency == 0 and step <= end: the end step is one.
    assert (s.end_step - s.begin_step) % s.frequency == 0


def test_pruning_schedule_refuses_zero_steps():
    with pytest.raises(ConfigError, match="at least 1"):
        pruning_schedule(0)


# ------------------------------------------------------------------- CLI


def test_cli_help_lists_every_option():
    result = CliRunner().invoke(app, ["compress", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for flag in ("--sparsity", "--mn", "--structured", "--qat", "--distill", "--epochs", "--calibration-samples",
                 "--max-accuracy-drop", "--targets", "--json", "--recipe", "--preprocess"):  # fmt: skip
        assert flag in result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [(["--sparsity", "1.5"], "sparsity=1.5"), (["--mn", "4:2"], "M:N"), (["--structured", "0"], "structured=0"),
     (["--recipe", "nope"], "unknown recipe")],  # fmt: skip
)
def test_cli_bad_flags_fail_in_one_line_before_anything_loads(tmp_path, args, match):
    result = CliRunner().invoke(app, ["compress", "no-model.keras", "--data", str(tmp_path), "--out", str(tmp_path / "b"), *args])
    assert result.exit_code == 2
    assert match in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "b").exists()


def test_importing_the_command_and_the_package_does_not_import_tensorflow():
    code = "import sys, edgekit.cli.compress_cmd, edgekit.compress; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"
