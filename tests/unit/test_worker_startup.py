"""`bookloop worker` start-up problems are one line and a non-zero exit, found before Kafka is awaited."""
from __future__ import annotations

import re
import socket

import pytest
from click.testing import CliRunner

from batch.cli import cli
from consumers import run as worker_run
from schemas.errors import ConfigError
from schemas.settings import Settings


def worker(*args):
    # 127.0.0.1:1 never answers: these checks must fail before the worker waits for Kafka
    return CliRunner().invoke(cli, ["worker", "--bootstrap", "127.0.0.1:1", *args])


def assert_one_line_error(result, code, text):
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit) and f"Error: {text}" in result.output
    assert "Traceback" not in result.output


def test_a_data_dir_that_is_a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert_one_line_error(worker("--data-dir", str(path)), 1,
                          f"data dir {path} exists and is not a folder (--data-dir / BOOKLOOP_DATA_DIR)")


def test_a_data_dir_that_cannot_be_written(tmp_path, monkeypatch):
    def refuse(*_args, **_kwargs):   # what a read-only folder or file system answers (root ignores chmod)
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(worker_run.tempfile, "mkstemp", refuse)
    assert_one_line_error(worker("--data-dir", str(tmp_path)), 1,
                          f"data dir {tmp_path} cannot be written: Permission denied")


def test_a_web_port_in_use(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = worker("--data-dir", str(tmp_path), "--web-port", str(port))
    assert_one_line_error(result, 1, f"web port 127.0.0.1:{port} is already in use (another worker?)")


def test_a_free_web_port_and_a_writable_data_dir_pass(tmp_path):
    worker_run.prepare_data_dir(tmp_path / "new" / "store")
    assert (tmp_path / "new" / "store").is_dir() and list((tmp_path / "new" / "store").iterdir()) == []
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
    worker_run.check_web_port_free("127.0.0.1", port)


@pytest.mark.parametrize("args, text", [
    (["--web-port", "99999"], "BOOKLOOP_WEB_PORT (web_port) must be between 1 and 65535, got 99999"),
    (["--web-port", "0"], "BOOKLOOP_WEB_PORT (web_port) must be between 1 and 65535, got 0"),
    (["--group-id", ""], "BOOKLOOP_GROUP_ID (group_id) must not be empty"),
    (["--group-id", "  "], "BOOKLOOP_GROUP_ID (group_id) must not be empty"),
])
def test_bad_web_port_and_group_id_flags_are_usage_errors(tmp_path, args, text):
    assert_one_line_error(worker("--data-dir", str(tmp_path), *args), 2, text)


@pytest.mark.parametrize("env, text", [
    ({"BOOKLOOP_WEB_PORT": "70000"}, "BOOKLOOP_WEB_PORT (web_port) must be between 1 and 65535, got 70000"),
    ({"BOOKLOOP_GROUP_ID": " "}, "BOOKLOOP_GROUP_ID (group_id) must not be empty"),
    ({"BOOKLOOP_DURABILITY": "none"}, "BOOKLOOP_DURABILITY='none': use one of syncfs, fsync"),
    ({"BOOKLOOP_DECODE_HELPERS": "-1"}, "BOOKLOOP_DECODE_HELPERS (decode_helpers) must be >= 0, got -1"),
    ({"BOOKLOOP_DECODE_HELPERS": "65"}, "BOOKLOOP_DECODE_HELPERS (decode_helpers) must be at most 64, got 65"),
])
def test_settings_check_port_range_and_group_id(env, text):
    with pytest.raises(ConfigError, match=re.escape(text)):
        Settings.from_env(env)
