"""``edgecls evaluate``: labeled data through models and artifacts, side by side.

A target is a model name (PyTorch, with ``--weights`` or built-in weights), an artifact file, or
an export folder (every passed artifact of its manifest.json, each beside the PyTorch model it was
exported from when torch is installed). Each target is fed with its own preprocessing (the model's
metadata, or the artifact's manifest entry / embedded metadata), so an artifact is judged on
exactly the input an app would give it. Artifacts run through ``edgecls.runtime`` only: on a
runtime-only install (no torch) they are compared with the fp32 artifact of their format instead.

Images are decoded and preprocessed once per distinct preprocessing, in chunks, and every target
sharing that preprocessing runs on the chunk, so memory stays bounded by the logits.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError
from edgecls.formats import format_of, is_artifact_path

SCHEMA = "edgecls-eval/1"
RESULTS_NAME = "evaluation.json"
CHUNK = 128  # images decoded and preprocessed at a time


@dataclass(frozen=True)
class Preprocessing:
    resolution: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 0.875
    interpolation: str = "bicubic"

    @classmethod
    def of_model(cls, info, resolution: int | None = None) -> "Preprocessing":
        return cls(resolution or info.resolution, tuple(info.mean), tuple(info.std), info.crop_pct, info.interpolation)

    def as_dict(self) -> dict:
        return {"resolution": self.resolution, "mean": list(self.mean), "std": list(self.std),
                "crop_pct": self.crop_pct, "interpolation": self.interpolation}

    def apply(self, image) -> np.ndarray:
        from edgecls.preprocess import preprocess

        return preprocess(image, self.resolution, self.mean, self.std, self.crop_pct, self.interpolation)


@dataclass
class EvalTarget:
    label: str
    format: str  # "torch", "onnx", "openvino", "tflite"
    num_classes: int | None
    preprocessing: Preprocessing
    model: str | None = None
    precision: str | None = None
    path: Path | None = None  # artifact file
    weights: str | None = None  # torch: checkpoint path
    pretrained: bool = False
    random_seed: int | None = None  # torch: random weights drawn like the export pipeline's
    model_classes: list[str] | None = None  # the model's own class names; None: ImageNet head or numbered
    output_names: list[str] | None = None  # a name per output, for display
    reference: "EvalTarget | None" = None
    manifest_entry: dict = field(default_factory=dict)

    @property
    def is_artifact(self) -> bool:
        return self.path is not None


# -- what the user typed -> targets ---------------------------------------------------------------


def _parse_floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return tuple(float(v) for v in value)
    text = str(value).strip()
    try:
        parsed = json.loads(text) if text.startswith("[") else [float(v) for v in text.split(",")]
    except ValueError:
        return None
    return tuple(float(v) for v in parsed)


def artifact_properties(path: Path) -> dict[str, str]:
    """The metadata the exporter embedded in the artifact (every format, one form: see
    edgecls.runtime.registry.read_metadata), as strings; {} when the runtime cannot read it."""
    from edgecls.errors import MissingDependencyError
    from edgecls.runtime.registry import read_metadata

    try:
        raw = read_metadata(path)
    except (EdgeclsError, MissingDependencyError, OSError):
        return {}
    return {key: (json.dumps(value) if isinstance(value, (list, tuple)) else str(value)) for key, value in raw.items()}


def _preprocessing_from(entry: dict, props: dict[str, str], path: Path) -> Preprocessing:
    pre = dict(entry.get("preprocessing") or {})
    for key in ("resolution", "mean", "std", "crop_pct", "interpolation"):
        pre.setdefault(key, props.get(key))
    mean, std = _parse_floats(pre.get("mean")), _parse_floats(pre.get("std"))
    if pre.get("resolution") in (None, "") or not mean or not std:
        raise EdgeclsError(
            f"{path.name} carries no preprocessing (resolution, mean, std): keep it in its export folder beside "
            "manifest.json, or evaluate the export folder"
        )
    return Preprocessing(int(pre["resolution"]), mean, std, float(pre.get("crop_pct") or 0.875),
                         str(pre.get("interpolation") or "bicubic"))


def _imagenet_names() -> list[str] | None:
    try:
        from edgecls.labels import imagenet_labels

        return list(imagenet_labels())
    except EdgeclsError:
        return None


def _class_names(num_classes: int | None, labels: list[str] | None) -> tuple[list[str] | None, list[str] | None]:
    """(model classes for mapping, output names for display) of a head with ``num_classes`` outputs."""
    imagenet = _imagenet_names() if num_classes == 1000 else None
    if labels and len(labels) == (num_classes or len(labels)):
        if imagenet is not None and list(labels) == imagenet:
            return None, labels  # an ImageNet head: synset ids and indices map too
        return list(labels), list(labels)
    if num_classes == 1000:
        return None, imagenet
    return None, None


def _find_weights(name: str, folders: Sequence[Path], given: str | None) -> str | None:
    if given:
        return given
    for folder in folders:
        if (folder / name).is_file():
            return str(folder / name)
    return None


def _artifact_target(path: Path, entry: dict, given_weights: str | None) -> EvalTarget:
    from edgecls.datasets import checkpoint_classes

    props = artifact_properties(path)
    pre = _preprocessing_from(entry, props, path)
    num = entry.get("num_classes") or props.get("num_classes")
    num_classes = int(num) if num not in (None, "") else None
    labels = entry.get("labels") or entry.get("classes")
    if not labels and props.get("labels"):
        try:
            labels = json.loads(props["labels"])
        except ValueError:
            labels = None
    weights = entry.get("weights") or ""
    checkpoint = None
    if weights.startswith("file:"):
        checkpoint = _find_weights(weights[5:], [path.parent, path.parent.parent, Path.cwd()], given_weights)
        if not labels and checkpoint:
            labels = checkpoint_classes(checkpoint)
    model_classes, names = _class_names(num_classes, labels)
    target = EvalTarget(label=str(path), format=entry.get("format") or format_of(path).name,
                        num_classes=num_classes, preprocessing=pre, model=entry.get("model") or props.get("model") or props.get("name"),
                        precision=entry.get("precision") or props.get("precision"), path=path,
                        weights=checkpoint,  # the reference model's weights, when found
                        model_classes=model_classes, output_names=names, manifest_entry=entry)
    return target


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_reference(artifact: EvalTarget, warnings: list[str]) -> EvalTarget | None:
    """The PyTorch model an artifact was exported from, fed the artifact's preprocessing."""
    entry = artifact.manifest_entry
    weights = entry.get("weights") or ""
    if not artifact.model or not entry:
        return None
    if weights.startswith("file:") and not artifact.weights:
        warnings.append(f"{Path(artifact.label).name} was exported from {weights[5:]}, which is not found: "
                        "pass --weights PATH to compare it with PyTorch")
        return None
    return EvalTarget(label=f"{artifact.model} (PyTorch)", format="torch", num_classes=artifact.num_classes,
                      preprocessing=artifact.preprocessing, model=artifact.model, precision="fp32",
                      weights=artifact.weights if weights.startswith("file:") else None,
                      pretrained=weights == "pretrained", random_seed=0 if weights == "random" else None,
                      model_classes=artifact.model_classes, output_names=artifact.output_names)


def _model_target(name: str, weights: str | None, pretrained: bool, num_classes: int | None,
                  resolution: int | None) -> EvalTarget:
    from edgecls.datasets import checkpoint_classes, checkpoint_metadata
    from edgecls.models.registry import get_model_info

    try:
        info = get_model_info(name)
    except ImportError:
        raise EdgeclsError(f"'{name}' is not a file, and evaluating a model name runs PyTorch: pip install 'edgecls[export]'") from None
    if resolution:
        info.check_resolution(resolution)
    labels = checkpoint_classes(weights) if weights else None
    if labels and num_classes and num_classes != len(labels):
        raise InvalidArgumentError(f"--num-classes {num_classes} but the checkpoint names {len(labels)} classes")
    num = num_classes or (len(labels) if labels else info.num_classes)
    model_classes, names = _class_names(num, labels)
    preprocessing = Preprocessing.of_model(info, resolution)
    trained = checkpoint_metadata(weights) if weights else None
    if trained and not resolution:  # a fine-tuned model is fed the way it was trained
        preprocessing = _preprocessing_from(trained, {}, Path(weights))
    return EvalTarget(label=info.name if not weights else f"{info.name} ({Path(weights).name})", format="torch",
                      num_classes=num, preprocessing=preprocessing, model=info.name,
                      precision="fp32", weights=weights, pretrained=pretrained, model_classes=model_classes,
                      output_names=names)


def resolve_targets(items: Sequence[str], weights: str | None = None, pretrained: bool = False,
                    num_classes: int | None = None, resolution: int | Sequence[int] | None = None,
                    compare: bool = True) -> tuple[list[EvalTarget], list[str]]:
    """Targets for what the user typed, each artifact with its reference; and warnings."""
    from edgecls.manifest import manifest_beside, read_manifest

    if not items:
        raise InvalidArgumentError("nothing to evaluate: give a model name, an artifact file or an export folder")
    if weights and pretrained:
        raise InvalidArgumentError("give either --weights or --pretrained, not both")
    if weights and not Path(weights).is_file():
        raise EdgeclsError(f"checkpoint not found: {weights}")
    targets: list[EvalTarget] = []
    warnings: list[str] = []
    artifacts: list[EvalTarget] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            manifest = read_manifest(path)
            found = [e.to_dict() for e in manifest.passed_entries() if (path / e.file).is_file()]
            if not found:
                raise EdgeclsError(f"the manifest in {path} lists no passed artifact that exists")
            artifacts += [_artifact_target(path / e["file"], e, weights) for e in found]
        elif path.is_file():
            format_of(path)  # one line for a file that is no artifact
            beside = manifest_beside(path)
            entry = beside[1].to_dict() if beside else {}
            artifacts.append(_artifact_target(path, entry if entry.get("file") else {}, weights))
        elif is_artifact_path(path) or "/" in item:
            raise EdgeclsError(f"artifact not found: {item}")
        else:
            # Several resolutions: one target each, so a user sees what a smaller input costs in accuracy.
            sides = resolution if isinstance(resolution, (list, tuple)) else [resolution]
            for side in sides:
                target = _model_target(item, weights, pretrained, num_classes, side)
                if len(sides) > 1:
                    target.label += f" @{target.preprocessing.resolution}"
                targets.append(target)
    for artifact in artifacts:
        if artifact.manifest_entry.get("weights") == "random":
            warnings.append(f"{Path(artifact.label).name} was exported with random weights: its accuracy is meaningless "
                            "(benchmark only)")
    if artifacts and compare:
        torch_ok = _torch_available()
        if not torch_ok:
            warnings.append("torch is not installed: artifacts are compared with the fp32 artifact of their format")
        references: dict[tuple, EvalTarget] = {}
        for artifact in artifacts:
            if torch_ok:
                reference = _torch_reference(artifact, warnings)
                if reference is not None:
                    key = (reference.model, reference.weights, reference.pretrained, reference.random_seed,
                           reference.num_classes, reference.preprocessing)
                    artifact.reference = references.setdefault(key, reference)
                    continue
            if artifact.precision != "fp32":
                artifact.reference = next((a for a in artifacts if a.precision == "fp32" and a.format == artifact.format
                                           and a.preprocessing == artifact.preprocessing), None)
        targets += list(references.values())
    targets += artifacts
    return targets, warnings


# -- running ----------------------------------------------------------------------------------------


def _torch_predictor(target: EvalTarget, batch: int, threads: int | None) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from edgecls.models import create_model

    if threads:
        torch.set_num_threads(threads)
    with torch.random.fork_rng():
        if target.random_seed is not None:
            torch.manual_seed(target.random_seed)  # the same draw the export pipeline made
        model = create_model(target.model, num_classes=target.num_classes or 1000, weights=target.weights,
                             pretrained=target.pretrained)

    def predict(x: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(0, len(x), batch):
                out.append(model(torch.from_numpy(np.ascontiguousarray(x[start:start + batch]))).float().numpy())
        return np.concatenate(out).reshape(len(x), -1)

    return predict


def _artifact_predictor(target: EvalTarget, batch: int, threads: int | None) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    from edgecls.runtime.run import describe_runner, open_verified, run_batches

    # An artifact from an export folder is checked against its manifest's sha256 like bench does.
    runner = open_verified(target.path, threads=threads)
    return (lambda x: run_batches(runner, x, batch)), describe_runner(runner)


def predictor(target: EvalTarget, batch: int = 32, threads: int | None = None) -> tuple[Callable[[np.ndarray], np.ndarray], dict]:
    """A function from NCHW preprocessed inputs to logits, and what ran it."""
    if target.is_artifact:
        return _artifact_predictor(target, batch, threads)
    import torch

    return _torch_predictor(target, batch, threads), {"runtime": "torch", "runtime_version": torch.__version__}


def _decode(paths: Sequence[Path], pre: Preprocessing) -> tuple[np.ndarray, list[int]]:
    """Preprocessed images of ``paths`` that decode, and the positions of those that do not."""
    from edgecls.datasets import read_image

    arrays, corrupt = [], []
    for i, p in enumerate(paths):
        image = read_image(p)
        if image is None:
            corrupt.append(i)
            continue
        arrays.append(pre.apply(image))
    shape = (0, 3, pre.resolution, pre.resolution)
    return (np.stack(arrays) if arrays else np.zeros(shape, np.float32)), corrupt


def collect_logits(targets: Sequence[EvalTarget], paths: Sequence[Path], batch: int = 32, threads: int | None = None,
                   progress: Callable[[str, int], None] | None = None) -> tuple[dict[int, np.ndarray], dict[int, dict], list[int]]:
    """Logits per target (keyed by id), runtime descriptions, and positions of images that do not decode."""
    groups: dict[Preprocessing, list[EvalTarget]] = {}
    for target in targets:
        groups.setdefault(target.preprocessing, []).append(target)
    logits: dict[int, list[np.ndarray]] = {id(t): [] for t in targets}
    described: dict[int, dict] = {}
    corrupt_all: set[int] = set()
    for pre, members in groups.items():
        runs = {}
        for target in members:
            runs[id(target)], described[id(target)] = predictor(target, batch, threads)
        names = ", ".join(Path(t.label).name for t in members)
        for start in range(0, len(paths), CHUNK):
            chunk = list(paths[start:start + CHUNK])
            x, corrupt = _decode(chunk, pre)
            corrupt_all.update(start + i for i in corrupt)
            if len(x):
                for target in members:
                    logits[id(target)].append(runs[id(target)](x))
            if progress:
                progress(names, len(chunk))
    out = {}
    for key, parts in logits.items():
        if not parts:
            raise EdgeclsError("no image of the data could be decoded: check the files")
        out[key] = np.concatenate(parts)
    return out, described, sorted(corrupt_all)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).name if "/" in text else text).strip("_") or "target"


# Latency of a --resolution sweep: short bounds (a sweep times several models), the bench harness's
# loop and statistics (edgecls.bench: a fresh process per measurement, batch 1, random input).
SWEEP_TIMING = {"warmup_runs": 3, "warmup_seconds": 0.2, "min_runs": 20, "min_seconds": 1.0, "max_seconds": 15.0}
SWEEP_CSV = "resolution_sweep.csv"
SWEEP_COLUMNS = ("model", "weights", "resolution", "images", "top1", "top5", "balanced_accuracy",
                 "p50_ms", "p90_ms", "mean_ms", "runs", "threads")


def sweep_targets(targets: Sequence[EvalTarget]) -> list[EvalTarget]:
    """The PyTorch targets of a --resolution sweep: one model and checkpoint at two or more input sides."""
    sides: dict[tuple, set[int]] = {}
    for target in targets:
        if target.format == "torch" and not target.is_artifact:
            sides.setdefault((target.model, target.weights), set()).add(target.preprocessing.resolution)
    return [t for t in targets if t.format == "torch" and not t.is_artifact
            and len(sides.get((t.model, t.weights), ())) > 1]


def sweep_latency(target: EvalTarget, threads: int | None, timing) -> dict:
    """p50/p90/mean latency (ms) of ``target`` at its input side, batch 1, measured as `edgecls bench MODEL` does."""
    from edgecls.bench.harness import benchmark_target
    from edgecls.bench.targets import baseline_target

    record = benchmark_target(baseline_target(target.model, label=target.label, weights=target.weights,
                                              resolution=target.preprocessing.resolution), threads, 1, timing)
    latency = {k: record["latency"][k] for k in ("p50_ms", "p90_ms", "mean_ms", "std_ms", "runs")}
    return {**latency, "threads": threads, "batch": 1, "load_average_1m": record["load_average_1m"],
            "timing": timing.to_dict()}


def sweep_rows(report: dict) -> list[dict]:
    """One row per input side of every swept model: accuracy beside latency (the SWEEP_CSV columns)."""
    rows = []
    for record in report["results"]:
        if not record.get("sweep"):
            continue
        m, latency = record["metrics"], record.get("latency") or {}
        rows.append({"model": record["model"], "weights": record["weights"] or "",
                     "resolution": record["preprocessing"]["resolution"], "images": report["data"]["evaluated"],
                     "top1": m["top1"], "top5": m["top5"], "balanced_accuracy": m["balanced_accuracy"],
                     **{k: latency.get(k) for k in ("p50_ms", "p90_ms", "mean_ms", "runs", "threads")}})
    return sorted(rows, key=lambda r: (r["model"], r["weights"], r["resolution"]))


def evaluate(items: Sequence[str], data: str | Path, *, weights: str | None = None, pretrained: bool = False,
             num_classes: int | None = None, resolution: int | Sequence[int] | None = None, batch: int = 32,
             threads: int | None = None, out: str | Path | None = None, plots: bool = True,
             progress: Callable[[str, int], None] | None = None, on_start: Callable[[int], None] | None = None,
             latency: bool = True, timing=None) -> dict:
    """Evaluate every target on the labeled data; the results as a JSON-ready dict (also written to ``out``).

    A --resolution sweep (one model at several sides) also times each side (``latency``; bounds
    ``timing``, a TimingConfig, default SWEEP_TIMING): accuracy and latency per input size."""
    from edgecls.datasets import load_dataset, map_classes
    from edgecls.evaluate.metrics import classification_metrics, compare_with_reference

    if not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError(f"--batch must be a positive integer, got {batch!r}")
    dataset = load_dataset(data)  # bad data fails before any model loads
    targets, warnings = resolve_targets(items, weights, pretrained, num_classes, resolution)
    mappings = {}
    for target in targets:
        n = target.num_classes
        if n is None:
            raise EdgeclsError(f"{target.label} does not say how many classes it has: evaluate its export folder")
        mappings[id(target)] = map_classes(dataset.classes, n, target.model_classes)
    out_dir = Path(out) if out else None
    if out_dir is not None:
        from edgecls.export.pipeline import check_output_folder

        check_output_folder(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
    groups = len({t.preprocessing for t in targets})
    if on_start:
        on_start(len(dataset) * groups)
    logits, described, corrupt = collect_logits(targets, dataset.paths, batch, threads, progress)
    keep = np.setdiff1d(np.arange(len(dataset)), corrupt)
    paths = [str(dataset.paths[i]) for i in keep]
    labels = dataset.labels[keep]
    results = []
    by_id: dict[int, dict] = {}
    swept = {id(t) for t in sweep_targets(targets)}
    for target in targets:
        mapping = np.asarray(mappings[id(target)])
        y_true = mapping[labels]
        scores = logits[id(target)]
        metrics = classification_metrics(y_true, scores, dataset.classes, mapping.tolist())
        record = {
            "label": target.label, "format": target.format, "precision": target.precision, "model": target.model,
            "file": str(target.path) if target.path else None, "weights": target.weights
            or ("pretrained" if target.pretrained else ("random" if target.random_seed is not None else None)),
            "num_classes": target.num_classes, "preprocessing": target.preprocessing.as_dict(), **described[id(target)],
            "parity": target.manifest_entry.get("parity"), "reference": target.reference.label if target.reference else None,
            "metrics": metrics, "vs_reference": None, "files": {},
        }
        if id(target) in swept:
            record["sweep"] = True
        if target.reference is not None:
            record["vs_reference"] = compare_with_reference(
                y_true, scores, logits[id(target.reference)], dataset.classes, mapping.tolist(), paths, target.output_names)
        by_id[id(target)] = record
        results.append(record)
    latency_info = None
    if latency and swept:
        from edgecls.bench.device import describe_device
        from edgecls.bench.stats import TimingConfig

        timing = timing or TimingConfig(**SWEEP_TIMING)
        for target in targets:
            if id(target) in swept:
                if progress:
                    progress(f"timing {target.label}", 0)
                by_id[id(target)]["latency"] = sweep_latency(target, threads, timing)
        latency_info = {"cpu": describe_device().cpu, "method": "edgecls bench harness (fresh process, batch 1, "
                        "random input, warm-up then timed single inferences; nearest-rank percentiles)",
                        "timing": timing.to_dict()}
    report = {
        "schema": SCHEMA,
        "data": {"path": str(dataset.root), "kind": dataset.kind, "classes": dataset.classes, "images": len(dataset),
                 "evaluated": int(len(keep)), "counts": dataset.counts(),
                 "corrupt": [str(dataset.paths[i]) for i in corrupt], "skipped_files": [str(p) for p in dataset.skipped]},
        "results": results,
        "warnings": warnings,
    }
    if swept:
        report["sweep"] = {"latency": latency_info, "rows": sweep_rows(report)}
    if out_dir is not None:
        write_outputs(report, out_dir, plots)
    return report


def write_outputs(report: dict, out_dir: Path, plots: bool = True) -> Path:
    """Per target: confusion CSV and heatmap, reliability diagram, flipped images CSV; then evaluation.json."""
    from edgecls.evaluate.plots import confusion_heatmap, reliability_diagram

    used: set[str] = set()
    for record in report["results"]:
        slug = _slug(record["label"])
        while slug in used:
            slug += "_"
        used.add(slug)
        files = record["files"]
        matrix = record["metrics"]["confusion_matrix"]
        path = out_dir / f"{slug}_confusion.csv"
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["true \\ predicted", *matrix["labels"]])
            for name, row in zip(report["data"]["classes"], matrix["counts"]):
                writer.writerow([name, *row])
        files["confusion_csv"] = path.name
        if plots:
            files["confusion_png"] = confusion_heatmap(np.asarray(matrix["counts"]), matrix["labels"],
                                                       out_dir / f"{slug}_confusion.png", record["label"]).name
            files["reliability_png"] = reliability_diagram(record["metrics"]["reliability"], record["metrics"]["ece"],
                                                           out_dir / f"{slug}_reliability.png", record["label"]).name
        if record["vs_reference"] is not None:
            path = out_dir / f"{slug}_flips.csv"
            with path.open("w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(["image", "true", "reference", "prediction"])
                for flip in record["vs_reference"]["flips"]:
                    writer.writerow([flip["image"], flip["true"], flip["reference"], flip["prediction"]])
            files["flips_csv"] = path.name
    rows = (report.get("sweep") or {}).get("rows") or []
    if rows:
        with (out_dir / SWEEP_CSV).open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(SWEEP_COLUMNS))
            writer.writeheader()
            writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
        report["files"] = {"resolution_sweep_csv": SWEEP_CSV}
    if plots and rows:
        from edgecls.evaluate.plots import resolution_sweep

        sweep: dict[str, list[tuple]] = {}
        for row in rows:
            label = row["model"] + (f" ({Path(row['weights']).name})" if row["weights"] else "")
            sweep.setdefault(label, []).append((row["resolution"], row["top1"], row["top5"], row["p50_ms"]))
        report["files"]["resolution_sweep_png"] = resolution_sweep(sweep, out_dir / "resolution_sweep.png").name
    path = out_dir / RESULTS_NAME
    path.write_text(json.dumps(report, indent=2))
    return path


__all__ = ["EvalTarget", "Preprocessing", "RESULTS_NAME", "SCHEMA", "SWEEP_COLUMNS", "SWEEP_CSV", "SWEEP_TIMING",
           "artifact_properties", "collect_logits", "evaluate", "predictor", "resolve_targets", "sweep_rows",
           "sweep_targets", "write_outputs"]
