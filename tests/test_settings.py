"""Settings from a TOML file (PENNY_CONFIG or ./penny.toml) under environment variables, over the defaults."""

from __future__ import annotations

import pytest

from penny import PennyError, Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in ("PENNY_CONFIG", "PENNY_LLM_THREADS", "PENNY_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_a_named_file_sets_fields_and_the_environment_wins(tmp_path, monkeypatch):
    config = tmp_path / "elsewhere.toml"
    config.write_text('data_dir = "/srv/penny"\nllm_threads = 1\ndocument_languages = ["eng", "deu"]\n')
    monkeypatch.setenv("PENNY_CONFIG", str(config))
    settings = Settings()
    assert (str(settings.data_dir), settings.llm_threads, settings.document_languages) == (
        "/srv/penny",
        1,
        ["eng", "deu"],
    )
    monkeypatch.setenv("PENNY_LLM_THREADS", "3")
    assert Settings().llm_threads == 3 and str(Settings().data_dir) == "/srv/penny"


def test_penny_toml_in_the_working_directory_is_read_without_being_named(tmp_path):
    assert Settings().llm_threads == 2
    (tmp_path / "penny.toml").write_text("llm_threads = 1\n")
    assert Settings().llm_threads == 1


def test_bad_files_fail_with_what_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("PENNY_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(PennyError, match="missing.toml, which does not exist"):
        Settings()
    broken = tmp_path / "broken.toml"
    broken.write_text("llm_threads = \n")
    monkeypatch.setenv("PENNY_CONFIG", str(broken))
    with pytest.raises(PennyError, match="not valid TOML"):
        Settings()
    broken.write_text("llm_thread = 1\n")  # a misspelt field is refused, not ignored
    with pytest.raises(ValueError, match="llm_thread"):
        Settings()


def test_process_wide_services_are_keyed_by_the_settings_values(tmp_path):
    from api.services import release, services_for
    from retrieval.search import get_searcher

    first, equal, other = (Settings(data_dir=tmp_path / name) for name in ("a", "a", "b"))
    assert get_searcher(first) is get_searcher(equal) and get_searcher(first) is not get_searcher(other)
    services = services_for(first)
    assert services_for(equal) is services and services_for(other) is not services
    release(equal)  # an app shutting down: its services close, and the next caller gets fresh ones
    assert services_for(first) is not services
    release(first)
    release(other)
