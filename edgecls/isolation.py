"""Run one function in a fresh Python process: the one isolation helper of export, bench and info.

Why a process: native converters and runtimes can segfault, hang, or keep thread pools, caches
and memory high-water marks that would leak into the next measurement. The parent calls
``run_isolated("package.module:function", payload)``; the child (``python -m edgecls.isolation``)
calls ``function(payload)`` and writes one JSON result file, atomically:

- ``{"ok": <the function's return value>}``
- ``{"error": {"type": "InvalidArgumentError", "message": "...", "user": true}}`` for an
  EdgeclsError (a user error: the parent raises the same class with the same one line)
- ``{"error": {"type": "RuntimeError", "message": "...", "traceback": "..."}}`` for anything else

and no file at all when the interpreter dies (signal, os._exit, timeout): the parent then
describes the exit ("killed by signal 11 (SIGSEGV)") and adds the tail of the child's output.

The child runs in its own process group and session, so a Ctrl-C in the terminal reaches only
the parent, which stops the whole group and re-raises; on Linux it also gets the parent-death
signal (prctl PR_SET_PDEATHSIG), so a SIGKILLed parent does not leave a converter running on.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecls import errors
from edgecls.errors import EdgeclsError

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 3.0


@dataclass
class Outcome:
    """What became of one isolated call."""

    ok: bool
    value: Any = None
    error_type: str | None = None
    message: str | None = None  # one line
    user_error: bool = False
    traceback: str | None = None
    crash: str | None = None  # how the process died, when it wrote no result
    output_tail: str = ""
    returncode: int | None = None
    seconds: float = 0.0

    def raise_for_user_error(self) -> None:
        """Re-raise a child's EdgeclsError in the parent, same class, same line."""
        if self.user_error:
            cls = getattr(errors, self.error_type or "", None)
            if not (isinstance(cls, type) and issubclass(cls, EdgeclsError)):
                cls = EdgeclsError
            raise cls(self.message or "")

    def describe(self) -> str:
        """One line: the error, or how the process died and its last output line."""
        if self.crash:
            last = last_line(self.output_tail)
            return f"{self.crash}" + (f": {last}" if last else "")
        return f"{self.error_type}: {self.message}" if self.error_type and not self.user_error else str(self.message)


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # The child imports this same edgecls (a checkout, a wheel, or a test's own modules).
    package_root = str(Path(__file__).resolve().parents[1])
    paths = [package_root, *(p for p in sys.path if p), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in paths if p))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("PYTHONFAULTHANDLER", "1")  # a segfault leaves a Python traceback in the output
    env.update(extra or {})
    return env


def _die_with_parent() -> None:
    """In the forked child before exec: SIGKILL when the parent dies (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the child's process group, then SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, _STOP_GRACE_SECONDS), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # grandchildren of a child that exited on SIGTERM


def run_isolated(
    function: str,
    payload: dict,
    *,
    timeout: float | None = None,
    workdir: Path | None = None,
    output: Path | None = None,
    env: dict[str, str] | None = None,
) -> Outcome:
    """Call ``function`` ("module:name") with ``payload`` in a fresh interpreter; see the module docstring.

    ``workdir`` holds the payload and result files (a temp folder when None); ``output`` receives
    the child's stdout and stderr (kept there, e.g. as an export log). KeyboardInterrupt (and
    SIGTERM turned into it by the caller) stops the child's process group before propagating.
    """
    with contextlib.ExitStack() as stack:
        folder = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecls-")))
        tag = f"{function.rpartition(':')[2]}-{os.getpid()}-{time.monotonic_ns()}"
        payload_path, result_path = folder / f"{tag}.payload.json", folder / f"{tag}.result.json"
        log_path = Path(output) if output else folder / f"{tag}.log"
        payload_path.write_text(json.dumps(payload))
        started = time.monotonic()
        timed_out = False
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edgecls.isolation", function, str(payload_path), str(result_path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=child_env(env),
                start_new_session=True, preexec_fn=_die_with_parent,
            )
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _stop_group(proc)
            except BaseException:  # KeyboardInterrupt, SystemExit: never leave the child running
                _stop_group(proc)
                raise
        seconds = time.monotonic() - started
        tail = ""
        with contextlib.suppress(OSError):
            tail = log_path.read_text(errors="replace")[-4000:]
        result = None
        if result_path.is_file():
            with contextlib.suppress(OSError, ValueError):
                result = json.loads(result_path.read_text())
        for path in (payload_path, result_path):
            with contextlib.suppress(OSError):
                path.unlink()
        if not output:
            with contextlib.suppress(OSError):
                log_path.unlink()
    if isinstance(result, dict) and "ok" in result and not timed_out:
        return Outcome(True, result["ok"], output_tail=tail, returncode=proc.returncode, seconds=seconds)
    if isinstance(result, dict) and isinstance(result.get("error"), dict) and not timed_out:
        error = result["error"]
        return Outcome(False, error_type=error.get("type"), message=error.get("message"),
                       user_error=bool(error.get("user")), traceback=error.get("traceback"), output_tail=tail,
                       returncode=proc.returncode, seconds=seconds)
    crash = f"timed out after {timeout:.0f} s" if timed_out else describe_exit(proc.returncode)
    return Outcome(False, crash=crash, output_tail=tail, returncode=proc.returncode, seconds=seconds)


def raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM handler: stop like on Ctrl-C, so finally blocks (temp files, children) run."""
    raise KeyboardInterrupt(f"signal {signum}")


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EIO, errno.EFBIG}


def one_line(exc: BaseException) -> str:
    """An exception as one line. An OSError, or a write error a converter wrapped in its own
    exception, names the path and the cause ("No space left on device")."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror and (cause is exc or cause.errno in _WRITE_ERRNOS):
            return f"{cause.filename}: {cause.strerror}" if cause.filename else cause.strerror
        cause = cause.__cause__ or cause.__context__
    text = str(exc).strip()
    first = text.splitlines()[0][:300] if text else ""
    return first or type(exc).__name__


def _write_result(path: Path, result: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(json.dumps(result, default=str))
        os.replace(tmp, path)
    except OSError:
        # A full disk can refuse even the result file: the parent then reports the exit and the
        # output tail, which holds this line.
        with contextlib.suppress(OSError):
            tmp.unlink()
        print(f"edgecls: cannot write the result file {path}", file=sys.stderr)


def _child_main(function: str, payload_path: str, result_path: str) -> int:
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)
    module_name, _, name = function.partition(":")
    payload = json.loads(Path(payload_path).read_text())
    try:
        value = getattr(importlib.import_module(module_name), name)(payload)
        result: dict = {"ok": value}
    except EdgeclsError as exc:
        result = {"error": {"type": type(exc).__name__, "message": one_line(exc), "user": True}}
    except Exception as exc:  # noqa: BLE001 - reported to the parent with its traceback
        traceback.print_exc()
        result = {"error": {"type": type(exc).__name__, "message": one_line(exc),
                            "traceback": traceback.format_exc()[-4000:]}}
    _write_result(Path(result_path), result)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(*sys.argv[1:4]))
