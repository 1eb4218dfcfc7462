"""What a device is: an SSH target plus how to run Python there.

Two ways to name one, with the same keys:

- a URL: ``ssh://user@host[:port]`` with optional query keys, e.g.
  ``ssh://pi@raspberrypi.local?python=/usr/bin/python3&threads=4``;
- a name from a devices file (``benchmarks/devices.toml``)::

      [[device]]
      name = "pi4"
      ssh = "ssh://pi@raspberrypi.local"
      python = "/usr/bin/python3"      # the device's interpreter (default python3)
      threads = [1, 4]                 # default thread counts on this device
      tags = ["arm64", "cortex-a72"]
      runtimes = "install"             # "install": a venv with edgecls[runtime] from PyPI;
                                       # "existing": that python already has the runtimes
      key = "~/.ssh/id_ed25519"        # default: ssh-agent and ~/.ssh/id_*
      known_hosts = "~/.ssh/known_hosts"
      cache = "~/.cache/edgecls"       # on the device: artifacts, edgecls installs
      connect_timeout = 15

Every key is checked: a typo names the key and the allowed ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from edgecls.errors import EdgeclsError, InvalidArgumentError

DEVICE_KEYS = {"name", "ssh", "python", "threads", "tags", "runtimes", "key", "known_hosts", "cache",
               "connect_timeout"}
URL_KEYS = DEVICE_KEYS - {"name", "ssh", "tags"}
RUNTIME_MODES = ("install", "existing")
DEFAULT_DEVICES_FILE = Path("benchmarks/devices.toml")


class DeviceError(EdgeclsError):
    """A device that cannot be used (unreachable, refused key, no Python, install failed)."""


@dataclass(frozen=True)
class Device:
    name: str
    host: str
    user: str | None = None
    port: int = 22
    python: str = "python3"
    threads: tuple[int, ...] = ()
    tags: tuple[str, ...] = ()
    runtimes: str = "install"
    key: str | None = None
    known_hosts: str | None = None  # None: asyncssh's default, ~/.ssh/known_hosts
    cache: str = "~/.cache/edgecls"
    connect_timeout: float = 15.0

    @property
    def target(self) -> str:
        """``ssh://user@host:port``, the way people name it (no query keys)."""
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ssh://{user}{host}:{self.port}"

    def label(self) -> str:
        return self.name if self.name == self.target else f"{self.name} ({self.target})"


def _threads(value, where: str) -> tuple[int, ...]:
    items = value if isinstance(value, list) else [p for p in str(value).split(",") if p.strip()]
    out = []
    for item in items:
        try:
            number = int(item)
        except (TypeError, ValueError):
            number = 0
        if number < 1 or isinstance(item, bool):
            raise InvalidArgumentError(f"{where}: threads must be positive integers, got {value!r}")
        out.append(number)
    return tuple(out)


def _build(where: str, url: str, keys: dict, name: str | None = None, tags=()) -> Device:
    unknown = sorted(set(keys) - DEVICE_KEYS)
    if unknown:
        raise InvalidArgumentError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(DEVICE_KEYS))})")
    parts = urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise InvalidArgumentError(f"{where}: expected ssh://user@host[:port], got {url!r}")
    try:
        port = parts.port or 22
    except ValueError:
        raise InvalidArgumentError(f"{where}: bad port in {url!r}") from None
    runtimes = keys.get("runtimes", "install")
    if runtimes not in RUNTIME_MODES:
        raise InvalidArgumentError(f"{where}: runtimes must be one of {', '.join(RUNTIME_MODES)}, got {runtimes!r}")
    try:
        timeout = float(keys.get("connect_timeout", 15.0))
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{where}: connect_timeout must be a number of seconds") from None
    user = unquote(parts.username) if parts.username else None
    target = f"ssh://{user + '@' if user else ''}{parts.hostname}:{port}"
    return Device(
        name=name or target, host=parts.hostname, user=user, port=port,
        python=str(keys.get("python", "python3")),
        threads=_threads(keys["threads"], where) if "threads" in keys else (),
        tags=tuple(str(t) for t in tags), runtimes=runtimes,
        key=str(Path(keys["key"]).expanduser()) if keys.get("key") else None,
        known_hosts=str(Path(keys["known_hosts"]).expanduser()) if keys.get("known_hosts") else None,
        cache=str(keys.get("cache", "~/.cache/edgecls")), connect_timeout=timeout,
    )


def parse_url(url: str) -> Device:
    """``ssh://user@host[:port][?python=...&key=...]`` -> Device."""
    parts = urlsplit(url)
    keys = dict(parse_qsl(parts.query, keep_blank_values=True))
    bad = sorted(set(keys) - URL_KEYS)
    if bad:
        raise InvalidArgumentError(f"device {url}: unknown query key '{bad[0]}' (allowed: {', '.join(sorted(URL_KEYS))})")
    return _build(f"device {parts.scheme}://{parts.netloc}", parts._replace(query="").geturl(), keys)


def load_devices(path: Path) -> dict[str, Device]:
    """name -> Device from a devices file (see the module docstring)."""
    from edgecls.resources import read_toml

    path = Path(path)
    data = read_toml(path, "devices file", " (write one like benchmarks/devices.toml, or pass ssh://...)")
    extra = sorted(set(data) - {"device"})
    if extra:
        raise EdgeclsError(f"devices file {path}: unknown table '{extra[0]}' (devices are [[device]] entries)")
    devices: dict[str, Device] = {}
    for index, entry in enumerate(data.get("device", [])):
        where = f"devices file {path.name}, device[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not isinstance(entry.get("ssh"), str):
            raise EdgeclsError(f"{where}: every [[device]] needs a 'name' and an 'ssh' = \"ssh://user@host\"")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", entry["name"]):
            raise EdgeclsError(f"{where}: name {entry['name']!r} must be letters, digits, '.', '_' or '-'")
        if entry["name"] in devices:
            raise EdgeclsError(f"{where}: device name {entry['name']!r} is used twice")
        keys = {k: v for k, v in entry.items() if k not in ("name", "ssh", "tags")}
        unknown = sorted(set(entry) - DEVICE_KEYS)
        if unknown:
            raise EdgeclsError(f"{where}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(DEVICE_KEYS))})")
        tags = entry.get("tags", [])
        if not isinstance(tags, list):
            raise EdgeclsError(f"{where}: tags must be a list of strings")
        devices[entry["name"]] = _build(where, entry["ssh"], keys, name=entry["name"], tags=tags)
    return devices


def resolve_devices(names: list[str], devices_file: Path | None = None) -> list[Device]:
    """``ssh://...`` URLs and names from the devices file (default benchmarks/devices.toml)."""
    out: list[Device] = []
    known: dict[str, Device] | None = None
    for name in names:
        for item in [p.strip() for p in name.split(",") if p.strip()] if not name.startswith("ssh://") else [name]:
            if item.startswith("ssh://"):
                out.append(parse_url(item))
                continue
            if known is None:
                known = load_devices(devices_file or DEFAULT_DEVICES_FILE)
            if item not in known:
                hint = ", ".join(sorted(known)) or "none"
                raise EdgeclsError(f"unknown device '{item}' (devices in {devices_file or DEFAULT_DEVICES_FILE}: {hint})")
            out.append(known[item])
    names_seen = [d.name for d in out]
    if len(set(names_seen)) != len(names_seen):
        raise InvalidArgumentError(f"a device is named twice: {', '.join(names_seen)}")
    return out
