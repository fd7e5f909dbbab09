"""Every sub-command, every flag, each of a list of bad values: one line on stderr naming the flag,
exit status 1 or 2, no traceback, and nothing sent anywhere.

The cases are generated from the parser itself (`build_parser()`), so a flag added later is
covered, and a flag without a checking type fails `test_every_value_flag_is_checked`. The commands
run in-process (`pacsbrowser.cli.main(argv)`); a few run through the real entry point.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pacsbrowser.cli import build_parser, main

LONG = "x" * 5000
NUL = "bad\x00value"

# The bad values for each kind of check (the `type=` functions of pacsbrowser.cli.inputs are named
# after their core.validation check). {placeholders} are made in a temporary folder per test.
BAD: dict[str, list[str]] = {
    "birth date": ["19701301", "1970*", "abc", "19800101-19700101", LONG, NUL],
    "listen port": ["65536", "-1", "", "abc", "1.5", LONG, NUL],
    "port": ["0", "65536", "-1", "", " ", "abc", "1.5", "1e3", "99999999999999999999", LONG, NUL],
    "timeout": ["-1", "0", "", "abc", "nan", "inf", "-inf", "1e309", "100000", LONG, NUL],
    "retries": ["-1", "", "abc", "1.5", "101", LONG],
    "count": ["0", "-1", "", "abc", "1.5", "99999999", LONG, NUL],
    "size": ["-1", "", "abc", "nan", "inf", "1e12", LONG],
    "ae title": ["", "   ", "A" * 17, "BACK\\SLASH", "TAB\tX", "ÄRZTE", "NEW\nLINE", LONG, NUL],
    "uid": ["", "not a uid!", "1.02.3", "1..2", ".1", "1.2.", "1" * 65, "1.2.*", "1.2.3\\1.2.4", "1.2 .3",
            LONG, NUL],
    "uid list": ["", "not a uid!", "1.02.3", "1..2", "1.2.*", "1.2\\", "1" * 65, LONG, NUL],
    "host": ["", "a b", "bad\thost", "x" * 300, "a/b", NUL],
    "any host": ["a b", "bad\thost", "x" * 300, "a/b", NUL],
    "readable file": ["", "{missing}", "{dir}", "{under_file}", "{dangling}", "{fifo}", "{unreadable}", LONG, NUL],
    "readable path": ["", "{missing}", "{under_file}", "{dangling}", "{fifo}", "{unreadable}", LONG, NUL],
    "directory": ["", "{file}", "{under_file}", LONG, NUL],
    "name": ["", "  ", "x" * 65, "bad\x01name", NUL],
    "charset": ["", "UTF-8", "ISO_IR 999", LONG, NUL],
    "date range": ["20241301", "2024-02-30", "abc", "2024*", "20250101-20240101", "1-2-3", LONG, NUL],
    "query key": ["", "=F", "NotAKeyword=1", "0000000X=1", "PatientSex=a\x01", "PatientSex=" + LONG, NUL],
    "code list": ["C\x01T", "x" * 17, "CT;MR", LONG],
    "text key": ["a\\b", "a\x01b", LONG, NUL],
    "choice": ["", "nonsense"],
    "web url": ["", "ftp://x/dw", "https://user:pw@x/dw", "https:///dw", "https://x/dw?q=1", "http://a b/",
                "https://x:0/dw", LONG, NUL],
    "web user": ["a:b", "bad\x01user", "x" * 300, NUL],
    "secret file": ["", "{missing}", "{dir}", "{under_file}", "{dangling}", "{fifo}", "{unreadable}", LONG, NUL],
    "move destination": ["", "ORTHANC", "ORTHANC=127.0.0.1", "=127.0.0.1:4242", "ORTHANC=:4242",
                         "ORTHANC=127.0.0.1:0", "ORTHANC=127.0.0.1:port", "BACK\\SLASH=127.0.0.1:4242", LONG, NUL],
}


def _leaf_parsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from _leaf_parsers(sub, (*path, name))


def _kind(action: argparse.Action) -> str | None:
    if action.choices is not None and action.type is None:
        return "choice"
    if action.type is None:
        return None
    return getattr(action.type, "__name__", None)


def _value_actions():
    for path, parser in _leaf_parsers(build_parser()):
        for action in parser._actions:
            if action.nargs == 0 or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            yield path, action


def _cases():
    for path, action in _value_actions():
        kind = _kind(action)
        for value in BAD.get(kind or "", []):
            flag = action.option_strings[0] if action.option_strings else None
            label = (flag or action.metavar or action.dest) + "=" + (repr(value[:12]) if value else "''")
            yield pytest.param(path, flag, action.metavar or action.dest, kind, value, id=f"{' '.join(path)} {label}")


def test_every_value_flag_is_checked():
    """By construction: every flag that takes a value has a checking type (or fixed choices)."""
    unchecked = [f"{' '.join(path)} {action.option_strings or action.dest}" for path, action in _value_actions()
                 if _kind(action) not in BAD]
    assert not unchecked, unchecked


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("PACSBROWSER_ARCHIVE_DIR", str(tmp_path / "archive"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file.pem").write_text("x")
    (tmp_path / "a-folder").mkdir()
    os.symlink(tmp_path / "gone", tmp_path / "dangling")
    os.mkfifo(tmp_path / "fifo")
    unreadable = tmp_path / "unreadable.pem"
    unreadable.write_text("x")
    unreadable.chmod(0)
    if os.geteuid() == 0:  # root reads every file: let the check see what another user would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if Path(p) == unreadable
                            else real_access(p, mode, *a, **k))
    return {"missing": str(tmp_path / "missing.pem"), "dir": str(tmp_path / "a-folder"),
            "file": str(tmp_path / "a-file.pem"), "under_file": str(tmp_path / "a-file.pem" / "inside"),
            "dangling": str(tmp_path / "dangling"), "fifo": str(tmp_path / "fifo"), "unreadable": str(unreadable)}


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("path, flag, name, kind, value", list(_cases()))
def test_bad_value_is_one_line_naming_the_flag(path, flag, name, kind, value, places, capsys):
    value = value.format(**places) if value.startswith("{") else value
    action = next(a for p, a in _value_actions() if p == path and (a.option_strings[:1] or [None])[0] == flag
                  and (flag or a.metavar == name or a.dest == name))
    if action.type is not None:  # never run a command with a value its flag accepts (it might listen...)
        with pytest.raises(argparse.ArgumentTypeError):
            action.type(value)
    argv = [*path, f"{flag}={value}"] if flag else [*path, value]
    status = main(argv)
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert status in (1, 2), (status, line)
    assert out == ""
    assert (flag or name) in line, line


# Bad input that each flag alone cannot see: refused after parsing, with exit status 1.
CROSS_CASES = [
    (["echo"], "--profile NAME, or --host, --port, --called-ae"),
    (["echo", "--profile", "nope"], "--profile nope: no profile named 'nope'"),
    (["echo", "--host", "127.0.0.1", "--port", "104", "--called-ae", "X", "--tls-cert", "{file}"],
     "--tls-cert and --tls-key go together"),
    (["get", "--study-uid", "1.2.3", "--instance-uid", "1.2.4", "--host", "127.0.0.1", "--port", "104",
      "--called-ae", "X"], "--instance-uid needs --series-uid"),
    (["listen", "--tls-cert", "{file}"], "--tls-cert and --tls-key go together"),
    (["store", "{dir}", "--parallel", "2"], "--profile NAME, or --host, --port, --called-ae"),
]


@pytest.mark.parametrize("argv, words", CROSS_CASES, ids=[" ".join(c[0][:3]) for c in CROSS_CASES])
def test_combinations_are_refused_in_one_line(argv, words, places, capsys):
    status = main([a.format(**places) if a.startswith("{") else a for a in argv])
    line = _one_error_line(capsys.readouterr().err)
    assert status == 1 and words in line, (status, line)


@pytest.mark.parametrize("argv, words", [
    (["find", "--level", "series", "--study-uid", "1.2.3\\1.2.4", "--host", "h", "--port", "104",
      "--called-ae", "X"], "--study-uid: a series query takes one UID here, not a list"),
    (["find", "--level", "patient", "--study-date", "today", "--host", "h", "--port", "104", "--called-ae", "X"],
     "--study-date cannot be used with --level patient"),
])
def test_query_rules_per_level(argv, words, places, capsys):
    status = main(argv)
    line = _one_error_line(capsys.readouterr().err)
    assert status == 2 and words in line, (status, line)


def test_a_birth_date_is_not_repeated(places, capsys):
    assert main(["find", "--birth-date", "19701301", "--host", "h", "--port", "104", "--called-ae", "X"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--birth-date" in line and "month 13" in line and "19701301" not in line


def test_a_config_dir_that_is_a_file_is_named(places, monkeypatch, capsys):
    monkeypatch.setenv("PACSBROWSER_CONFIG_DIR", places["file"])
    status = main(["echo", "--profile", "lab"])
    line = _one_error_line(capsys.readouterr().err)
    assert status == 1 and "PACSBROWSER_CONFIG_DIR" in line and "a folder is expected" in line


def test_an_archive_dir_that_is_a_file_is_named(places, monkeypatch, capsys):
    monkeypatch.setenv("PACSBROWSER_ARCHIVE_DIR", places["file"])
    status = main(["archive", "list"])
    line = _one_error_line(capsys.readouterr().err)
    assert status == 1 and "PACSBROWSER_ARCHIVE_DIR" in line and "a folder is expected" in line


def test_a_damaged_profiles_file_is_one_line_with_its_line_number(places, capsys):
    config = Path(os.environ["PACSBROWSER_CONFIG_DIR"])
    config.mkdir()
    (config / "profiles.toml").write_text('schema_version = 1\n[[profiles]]\nname = "a"\nport = \n')
    status = main(["echo", "--profile", "a"])
    line = _one_error_line(capsys.readouterr().err)
    assert status == 1 and "line 4" in line


def test_an_unexpected_error_is_one_line_and_debug_shows_the_trace(places, monkeypatch, capsys):
    from pacsbrowser.cli import profile

    def broken(args):
        raise RuntimeError("something nobody expected\nsecond line")

    monkeypatch.setattr(profile, "handle_list", broken)
    assert main(["profile", "list"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("error: unexpected RuntimeError: something nobody expected second line")
    assert "--debug" in line
    assert main(["--debug", "profile", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: something nobody expected" in err


def test_nothing_is_sent_for_bad_input(places, capsys):
    """A listening socket on loopback sees no connection: bad input is refused before any association."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = str(server.getsockname()[1])
        for argv in (["get", "--study-uid", "not a uid!"], ["move", "--study-uid", "1.2.3", "--dest", "A\\B"],
                     ["find", "--study-uid", "1.2.*"], ["echo", "--timeout", "-1"],
                     ["store", places["file"], "--parallel", "0"]):
            status = main([*argv, "--host", "127.0.0.1", "--port", port, "--called-ae", "X"])
            assert status == 2, (argv, capsys.readouterr().err)
        with pytest.raises(BlockingIOError):
            server.accept()
    capsys.readouterr()


def _run(*args: str, env_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PACSBROWSER_CONFIG_DIR=str(env_dir))
    return subprocess.run([sys.executable, "-m", "pacsbrowser", *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.mark.parametrize("args, flag", [
    (["echo", "--port", "0", "--host", "127.0.0.1", "--called-ae", "X"], "--port"),
    (["echo", "--port", "104", "--host", "127.0.0.1", "--called-ae", "BACK\\SLASH"], "--called-ae"),
    (["echo", "--timeout", "-1", "--port", "104", "--host", "127.0.0.1", "--called-ae", "X"], "--timeout"),
    (["get", "--study-uid", "not a uid!", "--port", "104", "--host", "127.0.0.1", "--called-ae", "X"],
     "--study-uid"),
])
def test_the_real_entry_point(args, flag, tmp_path, unused_port):
    args = [str(unused_port) if a == "104" else a for a in args]  # were anything sent: connection refused
    result = _run(*args, env_dir=tmp_path)
    assert result.returncode == 2, result.stderr
    line = _one_error_line(result.stderr)
    assert flag in line and "connection" not in line.lower()
