"""What the numbers say: whether an artifact passed parity, the recommended artifact per model,
device, thread count and batch, the best fp32 / int8 summary and int8 speed-ups.

The recommendation per model (and device, thread count, batch) is the fastest artifact by p50
that passed parity, with one rule on top: an int8 artifact slower than the fp32 artifact of the
same runtime is never recommended (it loses accuracy for nothing). The PyTorch eager baseline is
a reference, not a deployable artifact, so it is never recommended.
"""

from __future__ import annotations


def parity_passed(record: dict) -> bool | None:
    """True/False from the export's parity check; None when nothing was checked."""
    if (record.get("device_parity") or {}).get("passed") is False:
        return False  # recomputed where it ran (bench --verify) and broke its precision's rule there
    parity = record.get("parity")
    if isinstance(parity, dict):
        for key in ("passed", "ok", "pass"):
            if isinstance(parity.get(key), bool):
                return parity[key]
    status = record.get("status")
    if status in ("ok", "passed"):
        return True
    if status in ("parity_failed", "failed", "error"):
        return False
    return None


def recommend(rows: list[dict]) -> list[dict]:
    """The recommended artifact per (model, device, threads, batch); see the module docstring."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["runtime"] == "torch" or row["p50_ms"] is None:
            continue
        groups.setdefault((row["model"], row["device"], row["threads"], row["batch"]), []).append(row)
    picks = []
    for (model, device, threads, batch), candidates in sorted(groups.items(), key=lambda kv: str(kv[0])):
        fp32 = {r["runtime"]: r["p50_ms"] for r in candidates if r["precision"] == "fp32"}
        excluded = [r for r in candidates if r["precision"] == "int8" and r["runtime"] in fp32
                    and r["p50_ms"] >= fp32[r["runtime"]]]
        allowed = [r for r in candidates if r not in excluded]
        passed = [r for r in allowed if r["_passed"] is True]
        unchecked = [r for r in allowed if r["_passed"] is None]
        pool, note = (passed, "") if passed else (unchecked, "parity not checked")
        pick = {"model": model, "device": device, "threads": threads, "batch": batch, "row": None,
                "note": note, "excluded_int8": [f"{r['runtime']} int8" for r in excluded]}
        if pool:
            pick["row"] = min(pool, key=lambda r: r["p50_ms"])
        else:
            pick["note"] = "no artifact passed parity"
        picks.append(pick)
    return picks


def summary(rows: list[dict], picks: list[dict]) -> list[dict]:
    """Per (model, device, batch): the best fp32 and the best int8 artifact at each thread count.

    "Best" is the lowest p50 among artifacts that passed parity (or were not checked); the
    PyTorch baseline is left out, as in ``recommend``. ``pick`` is the recommendation per thread count.
    """
    picked = {(p["model"], p["device"], p["threads"], p["batch"]): p for p in picks}
    groups: dict[tuple, dict] = {}
    for row in rows:
        if row["runtime"] == "torch" or row["p50_ms"] is None or row["_passed"] is False:
            continue
        if row["precision"] not in ("fp32", "int8"):
            continue
        entry = groups.setdefault((row["model"], row["device"], row["batch"]),
                                  {"model": row["model"], "device": row["device"], "batch": row["batch"],
                                   "macs_m": row["macs_m"], "best": {}, "pick": {}})
        key = (row["threads"], row["precision"])
        if key not in entry["best"] or row["p50_ms"] < entry["best"][key]["p50_ms"]:
            entry["best"][key] = row
        pick = picked.get((row["model"], row["device"], row["threads"], row["batch"]))
        if pick and pick["row"] is not None:
            entry["pick"][row["threads"]] = pick["row"]
    return [groups[key] for key in sorted(groups, key=lambda k: (k[1], groups[k]["macs_m"] or 0, k[0], k[2]))]


def int8_speedups(rows: list[dict]) -> list[dict]:
    """fp32 p50 / int8 p50 for each (model, device, runtime, threads, batch) that has both."""
    by_key: dict[tuple, dict[str, float]] = {}
    for row in rows:
        if row["p50_ms"] and row["precision"] in ("fp32", "int8"):
            key = (row["model"], row["device"], row["runtime"], row["threads"], row["batch"])
            by_key.setdefault(key, {})[row["precision"]] = row["p50_ms"]
    return [{"model": k[0], "device": k[1], "runtime": k[2], "threads": k[3], "batch": k[4],
             "speedup": v["fp32"] / v["int8"]} for k, v in sorted(by_key.items(), key=lambda kv: str(kv[0]))
            if "fp32" in v and "int8" in v]
