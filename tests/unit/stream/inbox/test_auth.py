"""Login throttling by name and address, the users file re-read on change, and safe redirects."""

from __future__ import annotations

import asyncio
import os
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from stream.inbox.auth import MAX_ADDRESS_FAILURES, MAX_FAILURES, Authority, hash_password, load_users
from stream.inbox.web import _safe_next

PASSWORD_HASH = hash_password("right")


def authority(path: Path, users: str) -> Authority:
    path.write_text(users)
    a = Authority(load_users(path), users_file=path)
    a.refresh()
    return a


def log_in(a: Authority, user: str, password: str, address: str) -> bool:
    return asyncio.run(a.log_in(user, password, address)) is not None


def test_guessing_from_one_address_does_not_lock_the_user_out_elsewhere(tmp_path: Path) -> None:
    a = authority(tmp_path / "u.toml", f'[users.sam]\npassword_hash = "{PASSWORD_HASH}"\nqueues = ["*"]\n')
    for _ in range(MAX_FAILURES):
        assert not log_in(a, "sam", "wrong", "10.0.0.66")
    assert not log_in(a, "sam", "right", "10.0.0.66")  # locked from there
    assert log_in(a, "sam", "right", "10.0.0.7")  # not from the colleague's desk


def test_many_names_from_one_address_are_throttled(tmp_path: Path) -> None:
    a = authority(tmp_path / "u.toml", f'[users.sam]\npassword_hash = "{PASSWORD_HASH}"\nqueues = ["*"]\n')
    for i in range(MAX_ADDRESS_FAILURES):
        log_in(a, f"user{i}", "x", "10.0.0.66")
    assert not log_in(a, "sam", "right", "10.0.0.66")
    assert log_in(a, "sam", "right", "10.0.0.7")


def test_the_users_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "u.toml"
    both = f'[users.sam]\npassword_hash = "{PASSWORD_HASH}"\nqueues = ["*"]\n'
    a = authority(path, both + f'[users.rita]\npassword_hash = "{PASSWORD_HASH}"\nqueues = ["returns"]\n')
    assert a.principal("rita") is not None
    path.write_text(both)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    a.refresh()
    assert a.principal("rita") is None and a.principal("sam") is not None
    path.write_text("not [toml")  # broken: the users read before stay
    a.refresh()
    assert a.principal("sam") is not None


@given(st.text(max_size=40))
@example("/\t/evil.example/")
@example("/\r\n/evil.example/")
@example("/\\evil.example")
@example("/%09/evil.example/")
def test_next_is_always_a_path_on_this_site_as_a_browser_reads_it(target: str) -> None:
    got = _safe_next(target)
    # what a browser makes of it: tabs and line breaks dropped, backslashes read as slashes
    read = re.sub(r"[\t\n\r]", "", got).replace("\\", "/")
    assert read.startswith("/") and not read.startswith("//")
    assert urlsplit(read).netloc == "" and urlsplit(read).scheme == ""
