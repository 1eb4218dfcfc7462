"""A real OpenSSH server on 127.0.0.1 for the device tests: throwaway keys, its own config, in a tmp dir.

Needs Debian's openssh-server (`make setup` installs it). The server runs as root (the test
machine's user) with key-only login; it listens on loopback only and is stopped by the fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgecls-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class Sshd:
    folder: Path
    port: int
    user_key: Path
    known_hosts: Path
    proc: subprocess.Popen

    def url(self, **query: str) -> str:
        from urllib.parse import urlencode

        keys = {"key": str(self.user_key), "known_hosts": str(self.known_hosts), **query}
        return f"ssh://root@127.0.0.1:{self.port}?{urlencode(keys)}"

    def stop(self) -> None:
        """Kill the server and every session it forked, as a device dropping off the network."""
        if self.proc.poll() is not None:
            return
        # Sessions call setsid and leave the server's process group, but stay its descendants:
        # collect them first, then kill each by pid.
        pids = [self.proc.pid, *_descendants(self.proc.pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=10)


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        out += children
        frontier += children
    return out


def start_sshd(folder: Path, user_key: Path | None = None) -> Sshd:
    if not SSHD.is_file():
        raise RuntimeError("openssh-server is not installed: apt-get install -y openssh-server (make setup does)")
    folder.mkdir(parents=True, exist_ok=True)
    host_key = keygen(folder / "host_key")
    user_key = user_key or keygen(folder / "user_key")
    (folder / "authorized_keys").write_text(Path(str(user_key) + ".pub").read_text())
    port = free_port()
    config = folder / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {folder / 'sshd.pid'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", "StrictModes no", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "Subsystem sftp internal-sftp", "LogLevel ERROR", "",
    ]))
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {Path(str(host_key) + '.pub').read_text()}")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    log = open(folder / "sshd.log", "wb")
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(folder / 'sshd.log').read_text()[-500:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("sshd did not start listening within 20 s")
    return Sshd(folder, port, user_key, known_hosts, proc)
