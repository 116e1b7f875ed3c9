"""Profiles: where they are read from, interpolation, the built-in `local`, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow_jobs.sdk import AgentFlow, ConfigError
from agentflow_jobs.sdk.profiles import config_path, load_profile
from tests.fakes.anthropic import FakeAnthropic


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_default_file_is_under_the_home_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / ".config/agentflow/profiles.yaml",
          "profiles:\n  prod:\n    base_url: https://af.example\n    api_key: k\n")
    profile = load_profile("prod")
    assert (profile.engine, profile.base_url, profile.api_key) == ("http", "https://af.example", "k")
    assert config_path() == tmp_path / ".config/agentflow/profiles.yaml"


def test_agentflow_config_and_interpolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", """
profiles:
  local:
    engine: embedded
    store: ${STORE_DIR:-/tmp}/x.db
    model: small
    provider: {type: openai, base_url: "${LLM_URL}", api_key: "${LLM_KEY}", concurrency: 4}
""")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    monkeypatch.setenv("LLM_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("LLM_KEY", "sk-secret")
    profile = load_profile(None)
    assert profile.engine == "embedded" and profile.store == "/tmp/x.db"
    assert profile.provider == {"type": "openai", "base_url": "http://127.0.0.1:1/v1",
                                "api_key": "sk-secret", "concurrency": 4}
    assert "sk-secret" not in repr(profile)


def test_unset_variable_names_file_and_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "profiles:\n  prod:\n    base_url: x\n    api_key: ${NOPE_KEY}\n")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"p\.yaml:profiles\.prod\.api_key: .*NOPE_KEY"):
        AgentFlow.from_profile("prod")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("profiles: [a, b]\n", "expected a mapping"),
        ("profiles:\n  prod: {base_url: x, apikey: k}\n", r"profiles\.prod\.apikey: unknown key"),
        ("profiles:\n  prod: {engine: http}\n", r"profiles\.prod\.base_url: .*needs base_url"),
        ("profiles:\n  prod: 3\n", r"profiles\.prod: a profile must be a mapping"),
        ("profiles:\n  prod: {base_url: [\n", "cannot read profiles file"),
    ],
)
def test_broken_profiles_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "broken.yaml", text)
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    with pytest.raises(ConfigError, match=message) as caught:
        load_profile("prod")
    assert str(path) in str(caught.value)


def test_missing_profiles_file_says_so_first(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "profiles.yaml"
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    with pytest.raises(ConfigError) as caught:
        load_profile("nope")
    assert str(caught.value) == (
        f"no profile `nope`: {path} does not exist (set AGENTFLOW_CONFIG or create it)"
    )
    assert (caught.value.path, caught.value.key) == (str(path), "profiles.nope")


def test_missing_profile_lists_the_known_ones(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", "profiles:\n  staging: {base_url: http://x}\n")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"p\.yaml:profiles\.prod: no profile named 'prod'.*staging"):
        load_profile("prod")


def test_builtin_local_uses_openai_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("AGENTFLOW_MODEL", "qwen")
    profile = load_profile("local")
    assert profile.source == "built-in" and profile.engine == "embedded"
    assert profile.provider == {"type": "openai", "base_url": "http://127.0.0.1:1/v1",
                                "api_key": "sk-x", "model": "qwen"}


def test_builtin_local_without_a_provider_says_how_to_configure() -> None:
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL") as caught:
        AgentFlow()
    assert "agentflow-jobs[local]" in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(
    ("prices", "key", "says"),
    [
        ("{input_per_mtok: 1, outptu_per_mtok: 2}", "prices.outptu_per_mtok", "did you mean `output_per_mtok`?"),
        ("{input_per_mtok: -1}", "prices.input_per_mtok", "must not be negative"),
        ("{batch_discount: 2}", "prices.batch_discount", "fraction of the sync price"),
        ("{input_per_mtok: cheap}", "prices.input_per_mtok", "expected a number"),
        ("[1, 2]", "prices", "expected a mapping"),
    ],
)
def test_provider_prices_are_checked_naming_file_and_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prices: str, key: str, says: str
) -> None:
    path = write(
        tmp_path / "profiles.yaml",
        "profiles:\n  own:\n    provider:\n      type: openai\n"
        f"      base_url: http://127.0.0.1:9/v1\n      prices: {prices}\n",
    )
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    with pytest.raises(ConfigError) as info:
        load_profile("own")
    assert str(info.value).startswith(f"{path}:profiles.own.provider.{key}: ")
    assert says in str(info.value)


def test_provider_prices_that_are_right_load(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(
        tmp_path / "profiles.yaml",
        "profiles:\n  own:\n    provider:\n      type: openai\n      base_url: http://127.0.0.1:9/v1\n"
        "      prices: {input_per_mtok: 0.1, output_per_mtok: 0.4, batch_discount: 0.5}\n",
    )
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    provider = load_profile("own").provider or {}
    assert provider["prices"] == {"input_per_mtok": 0.1, "output_per_mtok": 0.4, "batch_discount": 0.5}


def test_a_profile_timeout_reaches_its_embedded_provider(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "p.yaml", """
profiles:
  slow:
    timeout: 240
    provider: {type: openai, base_url: "http://127.0.0.1:8080/v1"}
  own:
    timeout: 240
    provider: {type: openai, base_url: "http://127.0.0.1:8080/v1", timeout: 30}
""")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    assert load_profile("slow").provider == {"type": "openai", "base_url": "http://127.0.0.1:8080/v1",
                                             "timeout": 240.0}
    assert load_profile("own").provider["timeout"] == 30  # type: ignore[index]


def test_an_unknown_provider_key_is_named_not_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write(tmp_path / "profiles.yaml", "profiles:\n  cheap:\n    provider:\n      type: openai\n"
                 "      base_url: https://api.openai.com/v1\n      bacth: native\n")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    with pytest.raises(ConfigError) as error:
        load_profile("cheap")
    assert error.value.key == "profiles.cheap.provider.bacth"
    assert "did you mean `batch`" in str(error.value) and str(path) in str(error.value)
    write(path, "profiles:\n  cheap:\n    provider:\n      base_url: https://api.openai.com/v1\n"
          "      batch: native\n      batch_max_requests: 500\n      keep_batch_files: true\n")
    assert load_profile("cheap").provider == {"base_url": "https://api.openai.com/v1", "batch": "native",
                                              "batch_max_requests": 500, "keep_batch_files": True}
    write(path, "profiles:\n  cheap:\n    provider:\n      base_url: https://x/v1\n      batch: later\n")
    with pytest.raises(ConfigError, match=r"provider\.batch: must be engine or native"):
        load_profile("cheap")


def test_an_anthropic_profile_loads_and_answers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fake_anthropic: FakeAnthropic
) -> None:
    path = write(tmp_path / "p.yaml", f"""
profiles:
  claude:
    engine: embedded
    store: {tmp_path / "claude.db"}
    provider:
      type: anthropic
      base_url: {fake_anthropic.base_url}
      api_key: ${{ANTHROPIC_API_KEY}}
      model: claude-haiku-4-5
      self_hosted: false
""")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-SECRET-123")
    profile = load_profile("claude")
    assert profile.model_identity() == f"anthropic:claude-haiku-4-5@{fake_anthropic.base_url}"
    assert "SECRET" not in repr(profile)
    with AgentFlow.from_profile("claude") as client:
        result = client.completions.classify(items=["I love it"], categories=["positive", "negative"])
    assert result.results[0]["result"]["label"] == "positive"
    assert fake_anthropic.request_headers[0]["x-api-key"] == "sk-ant-SECRET-123"


def test_an_anthropic_profile_without_base_url_is_anthropics_api(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write(tmp_path / "p.yaml", "profiles:\n  claude:\n    engine: embedded\n"
                 "    provider: {type: anthropic, api_key: k, model: claude-sonnet-4-5}\n")
    monkeypatch.setenv("AGENTFLOW_CONFIG", str(path))
    profile = load_profile("claude")
    assert profile.model_identity() == "anthropic:claude-sonnet-4-5@https://api.anthropic.com"
