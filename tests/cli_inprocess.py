"""The edgecls CLI run inside the test process: no interpreter start, torch already loaded.

For tests that call the CLI many times; tests of isolation, signals or a torch-less install keep
running it in a subprocess.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``edgecls ARGS``: exit code, stdout and stderr as a CompletedProcess."""
    from edgecls.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_argv, old_cwd, code = sys.argv, os.getcwd(), 0
    sys.argv = ["edgecls", *args]
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
        os.chdir(old_cwd)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
