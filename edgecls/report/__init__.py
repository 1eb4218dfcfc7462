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


def write_report(paths: list[Path], out_dir: Path, plots: bool = True, html: bool = False,
                 max_drop: float | None = None, latency_ms: float | None = None) -> dict[str, Path]:
    """Write report.md, summary.md, results.csv and the PNG plots into ``out_dir``; returns what was
    written. A folder that cannot be written (a file in the way, no permission, a full disk) is a
    one-line EdgeclsError naming the path.

    Evaluation files (``edgecls evaluate``) among ``paths`` add measured accuracy and the
    accuracy-budget recommendation (edgecls.evaluate.budget); ``html`` adds report.html.
    """
    from edgecls.evaluate import budget

    paths, eval_paths = budget.split_result_paths(paths)
    results = load_results(paths)
    rows = flatten(results)
    if not rows:
        raise EdgeclsError("the results files hold no measurement to report")
    evaluations = budget.load_evaluations(eval_paths)
    budget.apply_evaluations(rows, evaluations)
    budget.apply_published(rows)
    budget_picks = budget.recommend_within_budget(rows, budget.DEFAULT_MAX_DROP if max_drop is None else max_drop)
    out_dir = Path(out_dir)
    try:
        return _write(results, rows, out_dir, plots, html, evaluations, budget_picks, latency_ms)
    except OSError as exc:
        where = exc.filename or out_dir
        raise EdgeclsError(f"cannot write the report to {where}: {exc.strerror or exc}; "
                           "pass --out a folder you can write") from None


def _write(results: list[dict], rows: list[dict], out_dir: Path, plots: bool, html: bool, evaluations: list,
           budget_picks: list, latency_ms: float | None) -> dict[str, Path]:
    from edgecls.evaluate import budget

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
        for name, plot in (*PLOTS, ("pareto_accuracy", budget.plot_pareto)):
            path = out_dir / f"{name}.png"
            if plot(rows, path):
                plot_files.append(path)
                written[name] = path
    picks = recommend(rows)
    summary_lines = summary_markdown(summary(rows, picks))
    (out_dir / "report.md").write_text(markdown(results, rows, picks, plot_files, summary_lines)
                                       + "\n".join(budget.budget_markdown(rows, budget_picks)
                                                   + budget.latency_markdown(rows, latency_ms)) + "\n")
    written["markdown"] = out_dir / "report.md"
    # The summary table alone, for pasting into a README or a PR.
    (out_dir / "summary.md").write_text("\n".join(summary_lines) + "\n")
    written["summary"] = out_dir / "summary.md"
    write_csv(rows, out_dir / "results.csv")
    written["csv"] = out_dir / "results.csv"
    if html:
        from edgecls.report_html import write_html

        written["html"] = write_html(results, rows, picks, budget_picks, evaluations, plot_files, out_dir / "report.html")
    return written


__all__ = ["COLUMNS", "PLOTS", "SCHEMA_PREFIX", "flatten", "int8_speedups", "load_results", "markdown", "parity_passed",
           "recommend", "recommendation_line", "summary", "summary_markdown", "write_csv", "write_report"]
