"""`agentflow-jobs serve` refuses unsafe or impossible set-ups before listening."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_jobs.cli import main
from agentflow_jobs.errors import ConfigError
from agentflow_jobs.server.auth import KeyRing, read_keys


def test_refuses_to_start_without_api_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert main(["serve", "--store", str(tmp_path / "s.db")]) == 2
    assert "--no-auth" in capsys.readouterr().err


def test_refuses_a_profile_that_is_another_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "p.yaml"
    config.write_text("profiles:\n  prod: {base_url: 'http://elsewhere', api_key: k}\n")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(config))
    assert main(["serve", "--profile", "prod", "--no-auth"]) == 2
    assert "needs an embedded profile" in capsys.readouterr().err


def test_without_a_provider_it_says_how_to_configure_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--no-auth"]) == 2
    assert "OPENAI_BASE_URL" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["not sqlite", "under a file"])
def test_a_store_that_cannot_open_is_an_error_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    (tmp_path / "notdb.db").write_bytes(b"this is not a database file at all, just text\n" * 200)
    store = tmp_path / ("notdb.db" if kind == "not sqlite" else "notdb.db/s.db")
    code = main(["serve", "--store", str(store), "--no-auth", "--port", "0"])
    err = capsys.readouterr().err
    assert code == 5, err
    assert err.startswith("error: ") and str(store) in err and "cannot open batch store" in err
    assert "Traceback" not in err


def test_keys_from_file_and_environment_are_kept_as_hashes(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text("# team keys\nkey-one\n\n  key-two  \n")
    keys = read_keys(str(keys_file), env="key-three, ,key-one")
    assert keys == ["key-one", "key-two", "key-three", "key-one"]
    ring = KeyRing(keys)
    assert len(ring) == 3 and "key-one" not in repr(vars(ring))
    assert ring.owner("Bearer key-two") == ring.owner("bearer  key-two")
    assert ring.owner("Bearer key-two") != ring.owner("Bearer key-one")
    assert ring.owner("Bearer nope") is None and ring.owner(None) is None
    with pytest.raises(ConfigError, match="missing"):
        read_keys(str(tmp_path / "missing"))
