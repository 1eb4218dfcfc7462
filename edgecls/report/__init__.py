"""Reports from benchmark results: a Markdown table, a CSV and PNG plots.

Input is one or more results JSON files written by ``edgecls bench --json`` or ``edgecls suite
run``; files from several devices merge into one table with a device column. The package follows
the report's seams: ``rows`` (load and flatten), ``policy`` (parity, recommendation, summary),
``markdown`` and ``plots``; ``write_report`` puts them together.
"""

from __future__ import annotations

from pathlib import Path

from edgecls.errors import EdgeclsError
from edgecls.report.markdown import markdown, recommendation_line, summary_markdown
from edgecls.report.plots import plot_int8_speedup, plot_latency_vs_macs, plot_latency_vs_parity
from edgecls.report.policy import int8_speedups, parity_passed, recommend, summary
from edgecls.report.rows import COLUMNS, SCHEMA_PREFIX, flatten, load_results, write_csv

PLOTS = (("latency_vs_macs", plot_latency_vs_macs), ("int8_speedup", plot_int8_speedup),
         ("latency_vs_parity", plot_latency_vs_parity))


def write_report(paths: list[Path], out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """Write report.md, summary.md, results.csv and the PNG plots into ``out_dir``; returns what was
    written. A folder that cannot be written (a file in the way, no permission, a full disk) is a
    one-line EdgeclsError naming the path."""
    results = load_results(paths)
    rows = flatten(results)
    if not rows:
        raise EdgeclsError("the results files hold no measurement to report")
    out_dir = Path(out_dir)
    try:
        return _write(results, rows, out_dir, plots)
    except OSError as exc:
        where = exc.filename or out_dir
        raise EdgeclsError(f"cannot write the report to {where}: {exc.strerror or exc}; "
                           "pass --out a folder you can write") from None


def _write(results: list[dict], rows: list[dict], out_dir: Path, plots: bool) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    plot_files: list[Path] = []
    if plots:
        try:
            import matplotlib

            matplotlib.use("Agg")  # files only, never a window
        except ImportError:
            plots = False
    if plots:
        for name, plot in PLOTS:
            path = out_dir / f"{name}.png"
            if plot(rows, path):
                plot_files.append(path)
                written[name] = path
    picks = recommend(rows)
    summary_lines = summary_markdown(summary(rows, picks))
    (out_dir / "report.md").write_text(markdown(results, rows, picks, plot_files, summary_lines))
    written["markdown"] = out_dir / "report.md"
    # The summary table alone, for pasting into a README or a PR.
    (out_dir / "summary.md").write_text("\n".join(summary_lines) + "\n")
    written["summary"] = out_dir / "summary.md"
    write_csv(rows, out_dir / "results.csv")
    written["csv"] = out_dir / "results.csv"
    return written


__all__ = ["COLUMNS", "PLOTS", "SCHEMA_PREFIX", "flatten", "int8_speedups", "load_results", "markdown", "parity_passed",
           "recommend", "recommendation_line", "summary", "summary_markdown", "write_csv", "write_report"]
