"""Benchmarks on other machines: SSH devices, device pools, ARM device records.

- ``config``: a device (``ssh://user@host[:port]?key=...`` or a named entry of ``devices.toml``).
- ``ssh``: one SSH session to a device (asyncssh): probe its Python, install a runtime-only edgecls
  of this checkout there, ship artifacts by content hash, run one measurement, fetch its JSON.
- ``agent``: what runs on the device (``python -m edgecls.devices.agent SPEC OUT``).
- ``pool``: measurements fanned out over devices, one at a time per device, with retries.

Nothing here imports asyncssh, torch or a runtime at module level.
"""
