"""Files shipped inside the edgecls package (target profiles, benchmark suites), found through
importlib.resources so a wheel install finds them exactly as the checkout does.
"""

from __future__ import annotations

import functools
from contextlib import ExitStack
from pathlib import Path

from edgecls.errors import EdgeclsError

# Kept open for the life of the process: a zipped install extracts a folder once, not per call.
_RESOURCES = ExitStack()


@functools.cache
def shipped_dir(package: str, folder: str) -> Path:
    """The folder ``folder`` of the installed package ``package`` as a real path."""
    from importlib.resources import as_file, files

    return _RESOURCES.enter_context(as_file(files(package) / folder))


def shipped_suite_dir() -> Path:
    # In the checkout edgecls/suites links to benchmarks/suites; a wheel holds copies of the files.
    return shipped_dir("edgecls", "suites")


def list_suites() -> list[str]:
    return sorted(p.stem for p in shipped_suite_dir().glob("*.toml"))


def find_suite(suite: str | Path) -> tuple[Path, Path | None]:
    """The suite file for ``suite`` (a path, or a name such as ``quick``) and the folder its relative
    ``dir`` settings start from (None: the suite file's own folder).

    A name is looked up in ./benchmarks/suites first (the checkout, or a user's own copy), then in the
    suites shipped with edgecls. A shipped suite's folders are taken as if it lived in
    ./benchmarks/suites, so exports and results land under ./benchmarks, never inside the install.
    """
    path = Path(suite)
    if path.suffix == ".toml" or path.is_file() or len(path.parts) > 1:
        return path, None
    local = Path("benchmarks") / "suites" / f"{suite}.toml"
    if local.is_file():
        return local, None
    shipped = shipped_suite_dir() / f"{suite}.toml"
    if shipped.is_file():
        return shipped, (Path.cwd() / "benchmarks" / "suites").resolve()
    raise EdgeclsError(f"unknown suite '{suite}': use one of {', '.join(list_suites()) or 'none found'} "
                       "or a path to a suite .toml")


__all__ = ["find_suite", "list_suites", "read_toml", "shipped_dir", "shipped_suite_dir"]


def read_toml(path: Path, what: str, missing_hint: str = "") -> dict:
    """The TOML file ``path`` (a profile, suite or devices file: ``what`` names it in errors) as a
    dict; a missing, unreadable or malformed file is one EdgeclsError line naming the file."""
    import tomllib  # pyproject.toml requires Python 3.11+, where tomllib is in the standard library

    path = Path(path)
    if not path.is_file():
        raise EdgeclsError(f"{what} not found: {path}{missing_hint}")
    try:
        return tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EdgeclsError(f"{what} {path}: not valid TOML: {str(exc).splitlines()[0] if str(exc) else exc}") from None
