"""A real PostgreSQL for the tests: Debian's server binaries, a cluster in a temporary directory.

``initdb`` and ``pg_ctl`` refuse to run as root, so as root they run as the ``postgres``
system user (the Debian package creates it), or ``nobody``. The server listens on
127.0.0.1 only, with trust authentication for that address.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from stream.tools.brokers import free_port


def binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, if there is one."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


class Postgres:
    """One throwaway cluster; ``url`` is for SQLAlchemy/asyncpg."""

    def __init__(self) -> None:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError(
                "PostgreSQL is not installed (apt-get install postgresql); .ci/run installs it"
            )
        self.bin = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="survey-alerts-pg-"))
        self.data = self.dir / "data"
        self.user: str | None = None
        if os.geteuid() == 0:
            for name in ("postgres", "nobody"):
                try:
                    pwd.getpwnam(name)
                except KeyError:
                    continue
                self.user = name
                break
            entry = pwd.getpwnam(self.user or "nobody")
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            os.chmod(self.dir, 0o700)

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    @property
    def url(self) -> str:
        return f"postgresql://survey@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "survey", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "server.log"), "-w", "start"
        )
        deadline = time.monotonic() + 30
        while True:
            done = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not start: {(self.dir / 'server.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
