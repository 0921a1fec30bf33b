"""open_store: which URL opens which backend, and which are refused."""

import os

import pytest

import st2bridge.store
import st2bridge.store.mongo
from st2bridge.errors import ConfigError, StoreUnavailable
from st2bridge.store import Store, open_store
from st2bridge.store.sqlite import SqliteStore


def test_exports():
    assert set(st2bridge.store.__all__) == {"Store", "open_store"}
    assert Store is st2bridge.store.base.Store


def test_sqlite_relative_path_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open_store("sqlite:///state/sub/st2bridge.db", busy_timeout=2.5) as store:
        assert isinstance(store, SqliteStore)
        assert store.path == "state/sub/st2bridge.db"
        assert store.busy_timeout == 2.5
        assert store.schema_version() == Store.SCHEMA_VERSION
    assert (tmp_path / "state" / "sub" / "st2bridge.db").is_file()


def test_sqlite_absolute_path(tmp_path):
    path = tmp_path / "new" / "dir" / "st2bridge.db"
    url = "sqlite:///" + str(path)
    assert url.startswith("sqlite:////")
    with open_store(url) as store:
        assert isinstance(store, SqliteStore)
        assert os.path.isabs(store.path) and store.path == str(path)
        assert store.busy_timeout == 10.0
    assert path.is_file()


class Recorder:
    def __init__(self, url=None, **kwargs):
        self.url, self.kwargs = url, kwargs


@pytest.mark.parametrize(
    "url, database",
    [
        ("mongodb://localhost", "st2bridge"),
        ("mongodb://localhost:27017/", "st2bridge"),
        (
            "mongodb://bridge:s3cret@db1:27017,db2:27017/prod?replicaSet=rs0&authSource=admin",
            "prod",
        ),
        ("mongodb+srv://bridge:pw@cluster0.example.net/st2b_stage?retryWrites=true", "st2b_stage"),
        ("MongoDB://localhost/my%2Ddb", "my-db"),
    ],
)
def test_mongodb_urls(monkeypatch, url, database):
    monkeypatch.setattr(st2bridge.store.mongo, "MongoStore", Recorder)
    store = open_store(url, connect_timeout=1.5)
    assert isinstance(store, Recorder)
    assert store.url == url
    assert store.kwargs == {"database": database, "connect_timeout": 1.5}


def test_unreachable_mongodb_is_unavailable_without_leaking_the_password():
    with pytest.raises(StoreUnavailable) as info:
        open_store("mongodb://bridge:s3cret@127.0.0.1:1/x", connect_timeout=0.2)
    message = str(info.value)
    assert "s3cret" not in message and "\n" not in message
    assert "127.0.0.1:1" in message


def test_invalid_mongodb_url_is_a_config_error():
    with pytest.raises(ConfigError):
        open_store("mongodb://localhost:notaport/x")


@pytest.mark.parametrize(
    "url, named",
    [
        ("postgresql://bridge:s3cret@db/st2bridge", "postgresql"),
        ("redis://localhost:6379/0", "redis"),
        ("mysql+pymysql://h/db", "mysql+pymysql"),
        ("st2bridge.db", "st2bridge.db"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///", "file path"),
        ("sqlite:///state.db?mode=ro", "no options"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_unusable_urls_are_config_errors(url, named):
    with pytest.raises(ConfigError) as info:
        open_store(url)
    message = str(info.value)
    assert named in message
    assert "\n" not in message and "s3cret" not in message
