"""Path parameters stay inside the allowed roots: `..`, absolute paths, symlinks and
SQLite URLs that lead elsewhere are refused before a run touches anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from flows.monitor import MonitorParams
from flows.nightly import main as nightly_main
from flows.nightly import nightly
from flows.params import NightlyParams
from flows.rollback import RollbackParams
from tasks.settings import get_settings


@pytest.fixture
def allowed(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "allowed"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "dataset.toml").write_text("")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "dataset.toml").write_text("")
    (root / "escape").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    monkeypatch.setenv("RECS_ALLOWED_ROOTS", str(root))
    return root


def refused(match: str, **fields) -> None:
    with pytest.raises(ValidationError, match=match) as caught:
        NightlyParams(**fields)
    assert "outside the allowed folders" in str(caught.value)


def test_paths_inside_the_allowed_root_are_accepted(allowed):
    params = NightlyParams(
        data_root=allowed / "runs" / ".." / "data",  # `..` that stays inside is fine
        dataset_config=allowed / "shop" / "dataset.toml",
        source=str(allowed / "shop"),
    )
    assert params.data_root == allowed / "runs" / ".." / "data"  # kept as given
    NightlyParams(data_root=allowed / "data", source=f"sqlite:///{allowed}/shop/store.db")
    NightlyParams(data_root=allowed / "data", source="postgresql+psycopg://db.example/shop")
    NightlyParams(data_root=allowed, dataset_config=get_settings().dataset_config)  # the default


def test_traversal_absolute_paths_symlinks_and_sqlite_files_outside_are_refused(allowed):
    refused("data_root", data_root=allowed / ".." / "elsewhere")
    refused("data_root", data_root="/etc")
    refused("data_root", data_root=allowed / "escape" / "data")  # a symlink leading out
    refused("dataset_config", data_root=allowed, dataset_config="/etc/passwd")
    refused("dataset_config", data_root=allowed, dataset_config=allowed / "escape/dataset.toml")
    refused("source", data_root=allowed, source=str(allowed / ".." / "elsewhere"))
    refused("source", data_root=allowed, source="sqlite:////etc/shop.db")
    refused("source", data_root=allowed, source=f"sqlite:///{allowed}/../elsewhere/x.db")
    with pytest.raises(ValidationError, match="outside the allowed folders"):
        RollbackParams(version="20261127T020000Z-abc123def0", data_root="/var")
    with pytest.raises(ValidationError, match="outside the allowed folders"):
        MonitorParams(nightly={"data_root": str(allowed / ".." / "elsewhere")})


def test_a_run_given_a_path_outside_touches_nothing(allowed, tmp_path, capsys):
    """From the command line: exit 2 naming the parameter; from Prefect (the UI's route,
    parameters as JSON): the flow run fails on its parameters. Nothing is created."""
    outside = tmp_path / "elsewhere" / "data"
    with pytest.raises(SystemExit) as exit_:
        nightly_main(["--data_root", str(outside)])
    assert exit_.value.code == 2
    assert "--data_root: Value error, data_root=" in capsys.readouterr().err
    with pytest.raises(Exception, match="outside the allowed folders"):
        nightly(params={"data_root": str(outside)})
    assert not outside.exists()
