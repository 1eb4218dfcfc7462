"""One SSH session to a device: probe, install edgecls, ship artifacts, measure, fetch.

SSH library: asyncssh (pinned in constraints.txt). Why it over paramiko/fabric: a device pool
runs one session per device at once, and asyncssh's asyncio API does that in one thread with
timeouts and keep-alives per connection; it has SFTP built in, and its exceptions tell a refused
key, an unknown host key and a lost connection apart, which is what one-line device errors need.
paramiko is blocking (a thread per device) and fabric adds a shell-task layer on top of it that
this does not need.

Commands go over SSH as argv lists joined with ``shlex.join``: every argument is quoted, nothing
is pasted into a shell string. On the device (under ``cache``, default ``~/.cache/edgecls``):

- ``artifacts/<sha256>/<file>``: shipped artifacts (side files beside them), written to a temp
  folder and renamed, so a dropped upload never looks complete;
- ``edgecls/<version>-<digest>/``: this checkout's wheel unpacked for ``runtimes = "existing"``
  (the device's python already has the runtimes), put first on PYTHONPATH;
- ``venvs/<version>-<digest>/``: a venv with ``edgecls[runtime]`` from the wheel and PyPI for
  ``runtimes = "install"``;
- ``runs/<id>/``: one measurement's spec and result, removed once fetched.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import shlex
import socket
import uuid
from dataclasses import asdict, replace
from pathlib import Path

from edgecls.devices.config import Device, DeviceError
from edgecls.devices.package import artifact_files, build_wheel, file_digest, install_tag

# What the device's python says about itself before anything is installed.
_PROBE = (
    "import json, os, platform, sys; "
    "print(json.dumps({'python': sys.executable, 'version': platform.python_version(), "
    "'machine': platform.machine(), 'cache': os.path.expanduser(sys.argv[1])}))"
)
_CHECK_IMPORT = (
    "import json, sys; import numpy, edgecls, edgecls.bench.harness; "
    "print(json.dumps({'edgecls': edgecls.__file__, 'version': edgecls.__version__}))"
)


class DeviceDropped(DeviceError):
    """The connection to a device broke or timed out: worth retrying."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


class DeviceSession:
    """``async with DeviceSession(device) as s: await s.measure(...)``."""

    def __init__(self, device: Device):
        self.device = device
        self.conn = None
        self.sftp = None
        self.info: dict = {}
        self.python: str = device.python
        self.env: dict[str, str] = {}
        self._shipped: dict[str, str] = {}

    # -- connection -------------------------------------------------------------------------

    def _fail(self, cause: str, dropped: bool = False) -> DeviceError:
        cls = DeviceDropped if dropped else DeviceError
        return cls(f"device {self.device.label()}: {cause}")

    async def connect(self) -> None:
        import asyncssh

        d = self.device
        options: dict = {"port": d.port, "connect_timeout": d.connect_timeout,
                         "keepalive_interval": 5, "keepalive_count_max": 3}
        if d.user:
            options["username"] = d.user
        if d.key:
            if not Path(d.key).is_file():
                raise self._fail(f"key file {d.key} not found")
            options["client_keys"] = [d.key]
            options["agent_path"] = None  # the named key only: a refused key must say so
        if d.known_hosts:
            options["known_hosts"] = d.known_hosts
        try:
            self.conn = await asyncssh.connect(d.host, **options)
            self.sftp = await self.conn.start_sftp_client()
        except asyncssh.PermissionDenied:
            raise self._fail(f"the server refused the key {d.key or '(ssh-agent and ~/.ssh/id_*)'} for user "
                             f"{d.user or 'default'}: add its public key to the device's authorized_keys") from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise self._fail(f"host key not trusted ({exc.reason}): add it to "
                             f"{d.known_hosts or '~/.ssh/known_hosts'} (ssh to the device once)") from None
        except ConnectionRefusedError:
            raise self._fail(f"connection refused on port {d.port}: is sshd running there?", dropped=True) from None
        except socket.gaierror as exc:
            raise self._fail(f"cannot resolve host {d.host}: {exc.strerror or exc}") from None
        except (asyncio.TimeoutError, TimeoutError):
            raise self._fail(f"no answer within {d.connect_timeout:.0f} s: host unreachable?", dropped=True) from None
        except (OSError, asyncssh.Error) as exc:
            raise self._fail(f"cannot connect: {exc}", dropped=True) from None

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            try:
                await asyncio.wait_for(self.conn.wait_closed(), 5)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - closing a dead connection
                pass
        self.conn = self.sftp = None

    async def __aenter__(self) -> "DeviceSession":
        await self.connect()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def run(self, argv: list[str], timeout: float | None = 120, env: dict | None = None):
        """Run argv on the device (``env`` as leading NAME=VALUE of /usr/bin/env): (exit code, stdout, stderr)."""
        import asyncssh

        if env:
            argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
        try:
            result = await self.conn.run(shlex.join(argv), check=False, timeout=timeout)
        except asyncssh.TimeoutError:
            raise self._fail(f"{argv[0]} did not finish within {timeout:.0f} s", dropped=True) from None
        except (OSError, asyncssh.Error) as exc:
            raise self._fail(f"connection lost: {exc or type(exc).__name__}", dropped=True) from None
        status = result.exit_status if result.exit_status is not None else -1
        return status, str(result.stdout or ""), str(result.stderr or "")

    async def _sftp(self, coro):
        import asyncssh

        try:
            return await coro
        except (OSError, asyncssh.Error) as exc:
            if isinstance(exc, asyncssh.SFTPError):
                raise self._fail(f"file transfer failed: {exc.reason}") from None
            raise self._fail(f"connection lost during a file transfer: {exc}", dropped=True) from None

    # -- preparing the device ---------------------------------------------------------------

    async def probe(self) -> dict:
        status, out, err = await self.run([self.device.python, "-c", _PROBE, self.device.cache], timeout=60)
        if status == 127 or (status != 0 and ("No such file" in err or "not found" in err)):
            raise self._fail(f"no Python at {self.device.python}: {_last_line(err)} (set python = ... for this device)")
        if status != 0:
            raise self._fail(f"{self.device.python} failed: {_last_line(err)}")
        try:
            self.info = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            raise self._fail(f"{self.device.python} is not a Python: it printed {_last_line(out)!r}") from None
        major_minor = tuple(int(p) for p in self.info["version"].split(".")[:2])
        if major_minor < (3, 10):
            raise self._fail(f"Python {self.info['version']} at {self.device.python} is too old: edgecls needs 3.10+")
        return self.info

    def _remote(self, *parts: str) -> str:
        return posixpath.join(self.info["cache"], *parts)

    async def _exists(self, path: str) -> bool:
        return await self._sftp(self.sftp.exists(path))

    async def _upload(self, local: Path, remote_dir: str) -> str:
        await self._sftp(self.sftp.makedirs(remote_dir, exist_ok=True))
        remote = posixpath.join(remote_dir, local.name)
        await self._sftp(self.sftp.put(str(local), remote))
        return remote

    async def ensure_edgecls(self) -> None:
        """Make this checkout's edgecls importable by the device's python (installed once per digest)."""
        tag = install_tag()
        if self.device.runtimes == "existing":
            target = self._remote("edgecls", tag)
            if not await self._exists(posixpath.join(target, ".installed")):
                wheel = await self._upload(build_wheel(), self._remote("wheels"))
                staging = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
                status, _, err = await self.run([self.device.python, "-m", "pip", "install", "--quiet", "--no-deps",
                                                 "--no-index", "--target", staging, wheel], timeout=600)
                if status != 0:
                    raise self._fail(f"installing the edgecls wheel with {self.device.python} -m pip failed: "
                                     f"{_last_line(err)}")
                await self._touch(posixpath.join(staging, ".installed"))
                if not await self._exists(target):  # another client may have installed it meanwhile
                    await self._sftp(self.sftp.rename(staging, target))
                else:
                    await self.run(["rm", "-rf", staging])
            self.python, self.env = self.device.python, {"PYTHONPATH": target}
        else:
            venv = self._remote("venvs", tag)
            python = posixpath.join(venv, "bin", "python")
            if not await self._exists(posixpath.join(venv, ".installed")):
                wheel = await self._upload(build_wheel(), self._remote("wheels"))
                await self.run(["rm", "-rf", venv])
                status, _, err = await self.run([self.device.python, "-m", "venv", venv], timeout=300)
                if status != 0:
                    raise self._fail(f"creating a venv with {self.device.python} failed: {_last_line(err)} "
                                     "(Debian: apt install python3-venv)")
                status, _, err = await self.run([python, "-m", "pip", "install", "--quiet", f"{wheel}[runtime]"],
                                                timeout=1800)
                if status != 0:
                    raise self._fail(f"pip install edgecls[runtime] on the device failed (it needs PyPI): "
                                     f"{_last_line(err)}")
                await self._touch(posixpath.join(venv, ".installed"))
            self.python, self.env = python, {}
        status, out, err = await self.run([self.python, "-c", _CHECK_IMPORT], timeout=120, env=self.env)
        if status != 0:
            raise self._fail(f"edgecls does not import with {self.python}: {_last_line(err)} "
                             "(runtimes = \"existing\" needs numpy and the runtimes there; or use runtimes = \"install\")")

    async def _touch(self, path: str) -> None:
        async def write() -> None:
            async with self.sftp.open(path, "w") as handle:
                await handle.write(install_tag())

        await self._sftp(write())

    async def prepare(self) -> dict:
        """Probe the device's Python and make edgecls importable there."""
        await self.probe()
        await self.ensure_edgecls()
        return self.info

    async def ship(self, path: str) -> str:
        """The artifact's path on the device, uploading it (with side files) unless already there."""
        if path in self._shipped:
            return self._shipped[path]
        files = artifact_files(Path(path))
        digest = file_digest(files)
        folder = self._remote("artifacts", digest)
        if not await self._exists(posixpath.join(folder, ".complete")):
            staging = f"{folder}.tmp-{uuid.uuid4().hex[:8]}"
            for local in files:
                await self._upload(local, staging)
            await self._touch(posixpath.join(staging, ".complete"))
            if await self._exists(folder):
                await self.run(["rm", "-rf", folder])
            await self._sftp(self.sftp.rename(staging, folder))
        else:
            # Same bytes shipped before under another name: the runtime loads side files by name
            # (an IR's .bin), so add the names this artifact uses.
            for local in files:
                if not await self._exists(posixpath.join(folder, local.name)):
                    temp = posixpath.join(folder, f".{local.name}.tmp-{uuid.uuid4().hex[:8]}")
                    await self._sftp(self.sftp.put(str(local), temp))
                    await self._sftp(self.sftp.rename(temp, posixpath.join(folder, local.name)))
        remote = posixpath.join(folder, Path(path).name)
        self._shipped[path] = remote
        return remote

    # -- measuring --------------------------------------------------------------------------

    async def measure(self, targets: list, threads: list, batch: int, timing, verify: bool = False) -> dict:
        """``run_benchmarks`` on the device for local Targets; the results as the device wrote them.

        ``verify``: ship the export's parity inputs and PyTorch outputs too and recompute parity there.
        """
        from edgecls.bench.verify import parity_files

        remote_targets = []
        for target in targets:
            remote_path = await self.ship(target.path) if target.path else None
            entry = dict(target.manifest_entry)
            files = parity_files(target) if verify else None
            if files:
                entry["parity_data"] = {"inputs": await self.ship(str(files[0])),
                                        "reference": await self.ship(str(files[1]))}
            else:
                entry.pop("parity_data", None)
            remote_targets.append(asdict(replace(target, path=remote_path, export_dir=None, manifest_entry=entry)))
        spec = {"targets": remote_targets, "threads": list(threads), "batch": batch, "timing": timing.to_dict(),
                "verify": verify}
        run_dir = self._remote("runs", uuid.uuid4().hex)
        await self._sftp(self.sftp.makedirs(run_dir, exist_ok=True))
        spec_path, out_path = posixpath.join(run_dir, "spec.json"), posixpath.join(run_dir, "out.json")

        async def write_spec() -> None:
            async with self.sftp.open(spec_path, "w") as handle:
                await handle.write(json.dumps(spec))

        await self._sftp(write_spec())
        # The harness's own per-measurement timeout is max_seconds x 2 + 600 s; leave it room.
        timeout = (timing.max_seconds * 2 + 660) * max(1, len(targets) * len(threads))
        status, _, err = await self.run([self.python, "-m", "edgecls.devices.agent", spec_path, out_path],
                                        timeout=timeout, env=self.env)
        if status != 0:
            raise self._fail(f"the measurement agent failed (exit {status}): {_last_line(err)}")

        async def read_out() -> str:
            async with self.sftp.open(out_path, "r") as handle:
                return await handle.read()

        results = json.loads(await self._sftp(read_out()))
        await self.run(["rm", "-rf", run_dir])
        return results
