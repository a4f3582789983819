"""The bench JSON format: versioned, documented, validated strictly, round-tripped."""
from __future__ import annotations

import copy
import json

import pytest

import edgekit.bench.schema as schema_module
from edgekit.bench.schema import SCHEMA, SCHEMA_VERSION, is_result_file, load_result, save_result, validate, validation_errors
from edgekit.errors import ConfigError
from test_bench_gate import BASE, artifact, result


def test_schema_is_plain_json_with_a_version():
    text = json.dumps(SCHEMA)
    assert json.loads(text) == SCHEMA
    assert SCHEMA["properties"]["schema_version"] == {"const": SCHEMA_VERSION}
    assert SCHEMA["$schema"].startswith("https://json-schema.org/")


def test_round_trip_through_a_file(tmp_path):
    path = save_result(BASE, tmp_path / "sub" / "bench.json")
    assert is_result_file(path)
    assert load_result(path) == BASE
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]  # no temp file left


def test_skipped_rows_and_gate_sections_validate():
    doc = copy.deepcopy(BASE)
    skipped = artifact("edgetpu:int8", [1.0])
    skipped.update(status="skipped", reason="libedgetpu.so.1 not found", latency_ms=None, stages_ms=None, fps=None,
                   init_ms=None, first_ms=None, repeats=[], spread={"p50": None, "p90": None})
    doc["results"].append(skipped)
    assert validation_errors(doc) == []


@pytest.mark.parametrize(
    "mutate, text",
    [
        (lambda d: d.pop("environment"), "missing key 'environment'"),
        (lambda d: d["results"][0].update(bytes="big"), "$.results[0].bytes: expected integer or null"),
        (lambda d: d["results"][0].update(colour="red"), "unknown key 'colour'"),
        (lambda d: d["results"][0]["latency_ms"].pop("p90"), "missing key 'p90'"),
        (lambda d: d.update(mode="fast"), "expected one of"),
        (lambda d: d["config"].update(runs=0), "expected >= 1"),
        (lambda d: d["results"][0].update(kind="model"), "$.results[0].kind"),
    ],
)
def test_invalid_documents_name_the_problem(mutate, text):
    doc = copy.deepcopy(BASE)
    mutate(doc)
    with pytest.raises(ConfigError) as e:
        validate(doc)
    assert text in str(e.value)


def test_other_files_and_versions_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="not an edgekit bench result"):
        validate({"schema_version": 1})
    newer = dict(copy.deepcopy(BASE), schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ConfigError, match="schema_version"):
        validate(newer)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_result(broken)
    with pytest.raises(ConfigError, match="does not exist"):
        load_result(tmp_path / "missing.json")
    assert not is_result_file(broken) and not is_result_file(tmp_path)


def test_every_row_field_is_documented_in_the_module_docstring():
    doc = schema_module.__doc__
    row_keys = SCHEMA["$defs"]["row"]["properties"]
    top_keys = SCHEMA["properties"]
    missing = [k for k in (*row_keys, *top_keys) if f"``{k}``" not in doc]
    assert missing == []


def test_a_result_of_the_gate_helper_is_valid():
    assert validation_errors(result(artifact("cpu:int8", [3.0, 3.1, 2.9]))) == []
