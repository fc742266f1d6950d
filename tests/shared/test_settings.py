"""Settings: CUTOVER_* environment variables > TOML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.settings import Settings, describe_settings, load_settings


@pytest.fixture(autouse=True)
def _no_cwd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings reads ./cutover.toml when present: run every test in an empty folder."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


def _toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cutover.toml.conf"
    path.write_text(text)
    return str(path)


def test_defaults_with_empty_environment() -> None:
    settings = load_settings({})
    assert settings == Settings()
    assert settings.chunk_size == 2000
    assert settings.date_order == "month-first"
    assert settings.day_first is False
    assert settings.embedded_broker is True


def test_environment_variables(tmp_path: Path) -> None:
    settings = load_settings({
        "CUTOVER_HOME": str(tmp_path / "h"),
        "CUTOVER_BROKER_URL": "redis://broker:6379/0",
        "CUTOVER_CHUNK_SIZE": "25",
        "CUTOVER_MAX_ATTEMPTS": " 7 ",
        "CUTOVER_DATE_ORDER": "day-first",
        "CUTOVER_LOG_LEVEL": "DEBUG",
        "UNRELATED": "ignored",
    })
    assert settings.home == tmp_path / "h"
    assert isinstance(settings.home, Path)
    assert settings.broker_url == "redis://broker:6379/0"
    assert settings.chunk_size == 25 and isinstance(settings.chunk_size, int)
    assert settings.max_attempts == 7
    assert settings.day_first is True
    assert settings.log_level == "DEBUG"
    assert settings.embedded_broker is False
    assert settings.effective_broker_url == "redis://broker:6379/0"
    assert settings.effective_result_backend == "redis://broker:6379/0", "result backend defaults to the broker"


def test_empty_environment_variable_means_unset() -> None:
    assert load_settings({"CUTOVER_CHUNK_SIZE": "", "CUTOVER_BROKER_URL": ""}) == Settings()


def test_does_not_read_os_environ_when_a_mapping_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUTOVER_CHUNK_SIZE", "3")
    assert load_settings({}).chunk_size == 2000
    assert load_settings().chunk_size == 3


def test_toml_file_from_cutover_config(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'broker_url = "redis://toml:6379/1"\nchunk_size = 50\ndate_order = "day-first"\n'
                             f'home = "{tmp_path / "toml-home"}"\n')
    settings = load_settings({"CUTOVER_CONFIG": config})
    assert settings.broker_url == "redis://toml:6379/1"
    assert settings.chunk_size == 50
    assert settings.day_first is True
    assert settings.home == tmp_path / "toml-home"


def test_cutover_toml_in_the_working_folder_is_read() -> None:
    Path("cutover.toml").write_text("max_in_flight = 42\n")
    assert load_settings({}).max_in_flight == 42


def test_environment_overrides_toml(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'broker_url = "redis://toml:6379/1"\nchunk_size = 50\nlog_level = "WARNING"\n')
    settings = load_settings({"CUTOVER_CONFIG": config, "CUTOVER_CHUNK_SIZE": "75", "CUTOVER_BROKER_URL": "redis://env/2"})
    assert settings.chunk_size == 75
    assert settings.broker_url == "redis://env/2"
    assert settings.log_level == "WARNING", "TOML still applies where the environment says nothing"


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'chunk_size = 10\nbrokerurl = "redis://x"\n')
    with pytest.raises(ConfigError, match="brokerurl"):
        load_settings({"CUTOVER_CONFIG": config})


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({"CUTOVER_CONFIG": str(tmp_path / "nope.toml")})


def test_invalid_toml_is_an_error(tmp_path: Path) -> None:
    config = _toml(tmp_path, "chunk_size = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"CUTOVER_CONFIG": config})


@pytest.mark.parametrize("raw", ["abc", "1.5", "10k"])
def test_bad_int_in_environment_is_an_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="chunk_size") as caught:
        load_settings({"CUTOVER_CHUNK_SIZE": raw})
    assert raw in str(caught.value)


def test_bad_int_in_toml_is_an_error(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'max_attempts = "lots"\n')
    with pytest.raises(ConfigError, match="max_attempts"):
        load_settings({"CUTOVER_CONFIG": config})


@pytest.mark.parametrize("toml_value", ["2.5", "true"])
def test_non_integer_toml_number_is_an_error(tmp_path: Path, toml_value: str) -> None:
    config = _toml(tmp_path, f"chunk_size = {toml_value}\n")
    with pytest.raises(ConfigError, match="chunk_size"):
        load_settings({"CUTOVER_CONFIG": config})


@pytest.mark.parametrize("order", ["dayfirst", "Day-First", "D/M/YYYY", "month_first"])
def test_bad_date_order_is_an_error(order: str) -> None:
    with pytest.raises(ConfigError, match="date_order") as caught:
        load_settings({"CUTOVER_DATE_ORDER": order})
    assert repr(order) in str(caught.value)


def test_bad_date_order_in_toml_is_an_error(tmp_path: Path) -> None:
    config = _toml(tmp_path, 'date_order = "ymd"\n')
    with pytest.raises(ConfigError, match="date_order"):
        load_settings({"CUTOVER_CONFIG": config})


def test_effective_defaults_live_under_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings({"CUTOVER_HOME": str(home)})
    assert settings.embedded_broker is True
    assert settings.redis_socket == home.resolve() / "redis.sock"
    assert settings.effective_broker_url == f"redis+socket://{home.resolve() / 'redis.sock'}"
    assert settings.effective_result_backend == settings.effective_broker_url
    assert settings.effective_database_url == f"sqlite:///{home.resolve() / 'cutover.db'}"


def test_relative_default_home_resolves_against_the_working_folder() -> None:
    settings = load_settings({})
    expected = Path.cwd().resolve() / ".cutover"
    assert settings.redis_socket == expected / "redis.sock"
    assert settings.effective_database_url == f"sqlite:///{expected / 'cutover.db'}"
    assert settings.redis_socket.is_absolute()


def test_explicit_database_url_wins() -> None:
    settings = load_settings({"CUTOVER_DATABASE_URL": "postgresql+psycopg://u@db/cutover"})
    assert settings.effective_database_url == "postgresql+psycopg://u@db/cutover"


def test_as_env_round_trips(tmp_path: Path) -> None:
    settings = load_settings({"CUTOVER_HOME": str(tmp_path / "h"), "CUTOVER_CHUNK_SIZE": "9",
                              "CUTOVER_DATE_ORDER": "day-first", "CUTOVER_VAULT_KEY": "k"})
    env = settings.as_env()
    assert env["CUTOVER_HOME"] == str((tmp_path / "h").resolve())
    assert env["CUTOVER_CHUNK_SIZE"] == "9"
    assert load_settings(env) == settings


def test_with_overrides_returns_a_new_object() -> None:
    base = Settings()
    changed = base.with_overrides(chunk_size=3)
    assert changed.chunk_size == 3 and base.chunk_size == 2000


def test_describe_settings_lists_every_field_with_a_doc() -> None:
    rows = describe_settings()
    names = [name for name, _, _ in rows]
    assert "CUTOVER_BROKER_URL" in names and "CUTOVER_DATE_ORDER" in names
    assert len(names) == len(set(names))
    assert all(doc for _, _, doc in rows)


def test_log_format_is_text_or_json() -> None:
    assert load_settings({}).log_format == "text"
    assert load_settings({"CUTOVER_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(ConfigError, match="log_format must be text or json, not 'xml'"):
        load_settings({"CUTOVER_LOG_FORMAT": "xml"})


def test_a_value_of_the_wrong_type_is_named_in_words() -> None:
    with pytest.raises(ConfigError, match="setting chunk_size: 'abc' is not a whole number"):
        load_settings({"CUTOVER_CHUNK_SIZE": "abc"})
