"""`python -m flows.nightly` takes the same parameter names as the flow, validated the same way."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.cli import parse_params
from flows.params import NightlyParams
from tests.conftest import REPO


def test_help_lists_every_parameter():
    result = subprocess.run(
        [sys.executable, "-m", "flows.nightly", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for option in (
        "--source",
        "--source_secret",
        "--data_root",
        "--dataset_config",
        "--top_n",
        "--model.no_components",
        "--model.loss",
        "--model.epochs",
        "--gate.min_lift",
        "--gate.min_ndcg",
        "--seed",
    ):
        assert option in result.stdout, option
    assert "{warp,bpr,warp-kos,logistic}" in result.stdout


def test_options_map_onto_the_flow_parameters(tmp_path):
    params = parse_params(
        NightlyParams,
        [
            "--top-n",
            "5",
            "--model.loss",
            "bpr",
            "--gate.min_lift",
            "0.1",
            "--data_root",
            str(tmp_path),
        ],
        prog="nightly",
        description="",
    )
    assert params.top_n == 5
    assert params.model.loss == "bpr"
    assert params.model.no_components == NightlyParams().model.no_components
    assert params.gate.min_lift == 0.1
    assert params.data_root == tmp_path


def test_out_of_bounds_value_is_refused_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_params(NightlyParams, ["--top_n", "0"], prog="nightly", description="")
    assert exit_info.value.code == 2
    assert "--top_n: Input should be greater than or equal to 1" in capsys.readouterr().err


def test_parameters_have_a_json_schema_for_the_ui_form():
    schema = NightlyParams.model_json_schema()
    assert schema["properties"]["top_n"]["minimum"] == 1
    loss = schema["$defs"]["LightFMParams"]["properties"]["loss"]
    assert loss["enum"] == ["warp", "bpr", "warp-kos", "logistic"]
