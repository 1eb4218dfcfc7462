"""The device side: ``python -m edgecls.devices.agent SPEC.json OUT.json``.

SPEC holds targets (as ``edgecls.bench.harness.Target`` fields, paths on the device), thread
counts, batch and timing. The agent runs them through the same harness as a local ``edgecls bench``
(each measurement in a fresh process), so the results carry every statistic of a local run and the
device as it describes itself. Needs only the runtime extra: no torch, no asyncssh.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def run_spec(spec: dict) -> dict:
    from edgecls.bench.device import describe_device
    from edgecls.bench.harness import Target, run_benchmarks
    from edgecls.bench.roofline import attach_roofline
    from edgecls.bench.stats import TimingConfig

    import edgecls

    targets = [Target(**t) for t in spec["targets"]]
    # No thread count given: every usable core of the device, as a local `edgecls bench` does.
    threads = [n or describe_device().usable_cores for n in spec["threads"]]
    results = run_benchmarks(targets, threads, spec.get("batch", 1), TimingConfig(**spec["timing"]))
    attach_roofline(results, threads)  # the device's own cached peaks, as a local run there would
    if spec.get("verify"):
        from edgecls.bench.verify import attach

        attach(results, targets)
    results["agent"] = {"edgecls_version": edgecls.__version__, "edgecls_path": str(Path(edgecls.__file__).parent),
                        "python": sys.executable}
    return results


def main(spec_path: str, out_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    results = run_spec(spec)
    tmp = Path(out_path + ".tmp")
    tmp.write_text(json.dumps(results))
    tmp.replace(out_path)  # the client fetches OUT only once it is whole
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
