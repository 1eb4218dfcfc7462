"""Accuracy-budgeted int8: spend speed (layers left in float) until the budget holds.

A budget is either ``--min-agreement A`` (top-1 agreement with the fp32 model on held-out tuning
views, when there are no labels) or ``--max-drop P`` (top-1 accuracy on a labeled ``--val DIR`` at
most P points below the fp32 model's). Per runtime:

- OpenVINO: as its int8 quantizer (edgecls.export.openvino). onnxruntime's QDQ (the CNN default):
  the ONNX search below, each candidate converted to an IR and judged on OpenVINO's kernels.
  NNCF (attention models): NNCF's own ``nncf.quantize_with_accuracy_control`` (it ranks the
  quantized layers by their effect on the metric and reverts the worst to float until the drop fits).
- ONNX: a per-node sensitivity ranking from onnxruntime's ``qdq_loss_debug`` (signal-to-quantization
  noise of each Conv / Gemm's input activation and weight, float vs QDQ graph on the tuning views),
  then ``nodes_to_exclude`` of the 1, 2, 4, ... most sensitive nodes until the budget holds.
  Leave-one-out would measure the metric directly but costs one quantization per node (65 for
  Lite0); the ranking costs one pass.
- TFLite: ai-edge-quantizer recipes: ranges calibrated once, then NO_QUANTIZE (float) for the 1,
  2, 4, ... most sensitive conv / fully-connected ops, ranked by the quantizer's own validator (the
  SNR in dB an op loses between its input and its output, float vs int8 model).

Each step is recorded: layers left in float, the tuning metric, and the latency of the final
artifact against the plain int8 and the fp32 one (interleaved runs, median), so the manifest shows
what the accuracy cost in speed. The pipeline's parity check afterwards measures the artifact on the
parity views, which the tuning views do not include (other crops of the held-out photos).
"""

from __future__ import annotations

import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgecls.errors import EdgeclsError

MAX_DOUBLINGS = 8  # 1, 2, 4 ... 128 layers: every layer of the zoo's CNNs fits before this ends
LATENCY_RUNS = 15
RANKING_IMAGES = 8  # tuning views run through the float and quantized graphs to rank the layers


@dataclass
class Budget:
    """What the int8 artifact must reach, on which images."""

    kind: str  # "agreement" (fp32 top-1 as labels) or "accuracy" (true labels)
    goal: float  # the metric the artifact must reach: A, or fp32 accuracy - P / 100
    images: np.ndarray  # (N, 3, R, R) tuning / validation inputs, NCHW, preprocessed
    labels: np.ndarray  # (N,) int: fp32 top-1 (agreement) or the true class index (accuracy)
    fp32_metric: float  # the fp32 model's own metric on these images (1.0 for agreement)
    sensitivity: Path | None = None  # write the per-layer ranking here (stem; .csv and .png are added)

    @property
    def max_drop(self) -> float:
        return max(0.0, self.fp32_metric - self.goal)

    def metric(self, logits: np.ndarray) -> float:
        return float((np.asarray(logits).reshape(len(self.labels), -1).argmax(1) == self.labels).mean())

    def describe(self) -> dict:
        return {"kind": self.kind, "goal": round(self.goal, 6), "fp32_metric": round(self.fp32_metric, 6),
                "images": int(len(self.images))}


def prepare_budget(model, info, sets, calib_source, resolution: int, min_agreement: float | None,
                   max_drop: float | None, val: Path | None, model_classes: list[str] | None = None) -> Budget:
    """The budget of an export run, built in the parent process (it needs the PyTorch model).

    ``max_drop`` (points) with ``val`` (a labeled folder or CSV, edgecls.datasets): accuracy on it
    may fall at most that far below the fp32 model's. Otherwise agreement with the fp32 model on
    the tuning views must reach ``min_agreement`` (default: the int8 parity gate).
    ``model_classes``: a trained checkpoint's class names; --val folders map onto them by name, as
    `edgecls evaluate` maps them, not by sorted order.
    """
    import torch

    from edgecls.export.calibration import tuning_views
    from edgecls.parity import DEFAULT_MIN_AGREEMENT
    from edgecls.preprocess import preprocess_for

    if max_drop is not None:
        from edgecls.datasets import load_dataset, map_classes, read_image

        dataset = load_dataset(val)
        with torch.no_grad():
            width = int(model(torch.zeros(1, 3, resolution, resolution)).reshape(1, -1).shape[1])
        mapping = map_classes(dataset.classes, width, model_classes)
        images, labels = [], []
        for path, label in dataset.items:
            image = read_image(path)
            if image is not None:  # a corrupt file is skipped, not fatal
                images.append(preprocess_for(info, image, resolution))
                labels.append(mapping[label])
        if not images:
            raise EdgeclsError(f"no readable images in --val {val}: give a labeled folder (one subfolder per class)")
        images, labels = np.stack(images), np.asarray(labels)
        with torch.no_grad():
            fp32 = float((model(torch.from_numpy(images)).argmax(1).numpy() == labels).mean())
        return Budget("accuracy", fp32 - max_drop / 100.0, images, labels, fp32)
    images, _ = tuning_views(info, calib_source, resolution, sets)
    with torch.no_grad():
        labels = model(torch.from_numpy(images)).argmax(1).numpy()
    goal = DEFAULT_MIN_AGREEMENT if min_agreement is None else min_agreement
    return Budget("agreement", goal, images, labels, 1.0)


def export_within_budget(exporter, request, dest: Path, budget: Budget, log: Callable[[str], None] = print) -> dict:
    """Write the int8 artifact of ``exporter.format`` at ``dest`` within ``budget``; what it took, as a dict."""
    builders = {"onnx": _onnx, "openvino": _openvino, "tflite": _tflite}
    if exporter.format not in builders:
        raise EdgeclsError(f"no accuracy-budgeted int8 for {exporter.format}: drop --min-agreement / --max-drop for it")
    started = time.monotonic()
    report = builders[exporter.format](exporter, request, Path(dest), budget, log)
    report["budget"] = budget.describe()
    report["met"] = report["metric"] >= budget.goal
    report["seconds"] = round(time.monotonic() - started, 1)
    return report


def _evaluate(path: Path, budget: Budget) -> float:
    from edgecls.runtime.run import run_artifact

    logits, _ = run_artifact(path, budget.images)
    return budget.metric(logits)


def _greedy(ranking: list[str], build: Callable[[list[str]], Path], budget: Budget, log) -> tuple[list[str], float, list]:
    """Float for the 0, 1, 2, 4, ... most sensitive layers until the metric reaches the goal."""
    steps = []
    excluded: list[str] = []
    metric = _evaluate(build(excluded), budget)
    steps.append({"float_layers": 0, "metric": round(metric, 6)})
    log(f"int8 budget: all layers int8 -> {metric:.1%} (goal {budget.goal:.1%})")
    count = 1
    while metric < budget.goal and len(excluded) < len(ranking) and len(steps) <= MAX_DOUBLINGS:
        excluded = ranking[:count]
        metric = _evaluate(build(excluded), budget)
        steps.append({"float_layers": len(excluded), "metric": round(metric, 6)})
        log(f"int8 budget: {len(excluded)} most sensitive layers float -> {metric:.1%}")
        count *= 2
    return excluded, metric, steps


def _latencies(paths: list[Path], runs: int = LATENCY_RUNS) -> list[float]:
    """Median single-image latency (ms, 1 thread) of each artifact, runs interleaved so drift hits all alike."""
    from edgecls.runtime.registry import open_runner

    runners = [open_runner(p, threads=1) for p in paths]
    inputs = []
    for runner in runners:
        spec = runner.input_spec
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in spec.shape]
        inputs.append(runner.prepare(np.random.default_rng(0).standard_normal(shape).astype(np.float32)))
    times: list[list[float]] = [[] for _ in runners]
    for _ in range(3):  # warm-up
        for runner, x in zip(runners, inputs):
            runner.infer(x)
    for _ in range(runs):
        for i, (runner, x) in enumerate(zip(runners, inputs)):
            start = time.perf_counter()
            runner.infer(x)
            times[i].append((time.perf_counter() - start) * 1e3)
    return [statistics.median(t) for t in times]


def _latency_report(fp32: Path, plain: Path, final: Path, same: bool) -> dict:
    if same:  # nothing left in float: the final artifact is the plain int8 one
        fp32_ms, final_ms = _latencies([fp32, final])
        plain_ms = final_ms
    else:
        fp32_ms, plain_ms, final_ms = _latencies([fp32, plain, final])
    return {"fp32_ms": round(fp32_ms, 3), "int8_all_layers_ms": round(plain_ms, 3), "int8_ms": round(final_ms, 3),
            "speedup_vs_fp32": round(fp32_ms / final_ms, 3), "latency_cost": round(final_ms / plain_ms, 3)}


def write_sensitivity(stem: Path, rows: list[dict], excluded: list[str], unit: str) -> list[str]:
    """The per-layer ranking as CSV and a bar plot (graph order, float layers highlighted); the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = stem.parent / f"{stem.name}.csv", stem.parent / f"{stem.name}.png"
    ranked = sorted(rows, key=lambda r: -r["score"])
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["rank", "layer", "op_type", "position", f"sensitivity ({unit})", "kept_float"])
        for rank, row in enumerate(ranked, 1):
            writer.writerow([rank, row["layer"], row["op_type"], row["position"], f"{row['score']:.4f}",
                             row["layer"] in excluded])
    fig, ax = plt.subplots(figsize=(max(6.0, len(rows) * 0.12), 3.5))
    ordered = sorted(rows, key=lambda r: r["position"])
    colours = ["tab:red" if r["layer"] in excluded else "tab:blue" for r in ordered]
    ax.bar(range(len(ordered)), [r["score"] for r in ordered], color=colours)
    ax.set_xlabel("layer (graph order); red: kept in float")
    ax.set_ylabel(f"sensitivity ({unit})")
    ax.set_title(f"int8 sensitivity per layer: {stem.name}")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return [str(csv_path), str(png_path)]


# -- ONNX --------------------------------------------------------------------------------------


def _onnx(exporter, request, dest: Path, budget: Budget, log) -> dict:
    import onnx

    from edgecls.export import onnx as onnx_export

    fp32 = onnx_export.fp32_onnx(request)
    plain = Path(request.workdir) / f"{dest.stem}.all-int8.onnx"

    def write(float_nodes: list[str], path: Path) -> Path:
        settings = onnx_export.OnnxInt8Settings.from_options(onnx_export.request_options(request, "onnx").get("int8"))
        settings.float_nodes = [*settings.float_nodes, *float_nodes]
        onnx_export.quantize_int8(fp32, path, request, settings)
        return path

    report = _qdq_search(request, budget, log, lambda excluded: write(excluded, dest if excluded else plain))
    if not report["float_layers"]:
        onnx.save(onnx.load(str(plain)), str(dest))
    report["latency"] = _latency_report(fp32, plain, dest, same=not report["float_layers"])
    plain.unlink(missing_ok=True)
    return report


def _qdq_search(request, budget: Budget, log, build: Callable[[list[str]], Path]) -> dict:
    """The onnxruntime QDQ budget search: rank the fp32 ONNX's Conv / Gemm / MatMul nodes by
    quantization noise, then keep the most sensitive ones float until the artifact that
    ``build(float_nodes)`` writes (ONNX, or OpenVINO read from the QDQ file) reaches the goal on its
    own runtime."""
    from edgecls.export import onnx as onnx_export

    settings = onnx_export.OnnxInt8Settings.from_options(onnx_export.request_options(request, "onnx").get("int8"))
    fp32 = onnx_export.fp32_onnx(request)
    prepared = onnx_export.prepared_fp32(fp32, request)
    ranked_qdq = Path(request.workdir) / f"ranking_{request.resolution}.all-int8.onnx"
    onnx_export.quantize_int8(fp32, ranked_qdq, request, settings)
    rows = _onnx_ranking(prepared, ranked_qdq, budget, request)
    ranked_qdq.unlink(missing_ok=True)
    ranking = [r["layer"] for r in sorted(rows, key=lambda r: -r["score"]) if r["layer"] not in settings.float_nodes]
    excluded, metric, steps = _greedy(ranking, build, budget, log)
    report = {"float_layers": excluded, "metric": metric, "steps": steps, "method": "onnxruntime qdq_loss_debug ranking",
              "compute_layers": len(rows)}
    if budget.sensitivity:
        report["sensitivity_files"] = write_sensitivity(budget.sensitivity, rows, excluded, "dB of SQNR below the best")
    return report


def _onnx_ranking(prepared: Path, qdq: Path, budget: Budget, request) -> list[dict]:
    """Each Conv / Gemm / MatMul of the float graph with its quantization noise (higher: more sensitive).

    Score: the worst of the local SQNRs (pre- vs post-QDQ, dB) of the node's input activation and
    weight, as dB below the best such SQNR in the graph, on RANKING_IMAGES tuning views.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization import qdq_loss_debug as qld

    from edgecls.export.onnx import INPUT_NAME

    images = np.ascontiguousarray(budget.images[:RANKING_IMAGES].astype(np.float32))
    if request.nhwc:
        images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    batch = 1 if request.dynamic_batch else int(request.batch)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            usable = max(batch, len(images) - len(images) % batch)
            data = np.resize(images, (usable, *images.shape[1:]))
            self._batches = iter([data[i:i + batch] for i in range(0, usable, batch)])

        def get_next(self):
            chunk = next(self._batches, None)
            return None if chunk is None else {INPUT_NAME: chunk}

    workdir = Path(request.workdir)
    aug_float, aug_qdq = workdir / "sens_float.onnx", workdir / "sens_qdq.onnx"
    qld.modify_model_output_intermediate_tensors(str(prepared), str(aug_float))
    qld.modify_model_output_intermediate_tensors(str(qdq), str(aug_qdq))
    float_acts = qld.collect_activations(str(aug_float), Reader())
    qdq_acts = qld.collect_activations(str(aug_qdq), Reader())
    activation_err = qld.compute_activation_error(qld.create_activation_matching(qdq_acts, float_acts))
    weight_err = qld.compute_weight_error(qld.create_weight_matching(str(prepared), str(qdq)))
    for path in (aug_float, aug_qdq):
        path.unlink(missing_ok=True)
    model = onnx.load(str(prepared), load_external_data=False)
    rows = []
    for position, node in enumerate(model.graph.node):
        if node.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        sqnrs = [activation_err[node.input[0]]["qdq_err"]] if node.input[0] in activation_err else []
        if len(node.input) > 1 and node.input[1] in weight_err:
            sqnrs.append(weight_err[node.input[1]])
        sqnrs = [float(s) for s in sqnrs if np.isfinite(s)]
        if sqnrs:
            rows.append({"layer": node.name, "op_type": node.op_type, "position": position, "sqnr": min(sqnrs)})
    best = max((r["sqnr"] for r in rows), default=0.0)
    for row in rows:
        row["score"] = best - row.pop("sqnr")
    return rows


# -- OpenVINO ----------------------------------------------------------------------------------


def _openvino_via_onnx(exporter, request, dest: Path, budget: Budget, log) -> dict:
    """OpenVINO int8 from onnxruntime's QDQ (the CNN default, see edgecls.export.openvino): the
    ONNX search, each candidate converted to an IR and judged by OpenVINO's own kernels."""
    from edgecls.export import openvino as ov_export

    ov = ov_export._import_openvino()
    nchw = ov_export._qdq_request(request)  # the route's internal ONNX: NCHW, native opset
    plain = Path(request.workdir) / f"{dest.stem}.all-int8.xml"

    def build(float_nodes: list[str], path: Path | None = None) -> Path:
        path = path or (dest if float_nodes else plain)
        model, _, _, converter = ov_export._int8_from_onnx_qdq(ov, request, float_nodes=float_nodes)
        exporter.finish(ov, model, request, "int8", converter, path)
        return path

    report = _qdq_search(nchw, budget, log, build)  # run_artifact feeds NCHW views in the IR's layout
    if not report["float_layers"]:
        build([], dest)
    fp32_model, _ = ov_export._converted_fp32(ov, request)
    fp32_path = Path(request.workdir) / f"{dest.stem}.fp32.xml"
    ov.save_model(fp32_model, str(fp32_path), compress_to_fp16=False)
    report["latency"] = _latency_report(fp32_path, plain, dest, same=not report["float_layers"])
    report["method"] = "onnxruntime qdq_loss_debug ranking, judged on OpenVINO"
    for path in (plain, fp32_path):
        path.unlink(missing_ok=True)
        path.with_suffix(".bin").unlink(missing_ok=True)
    return report


def _openvino(exporter, request, dest: Path, budget: Budget, log) -> dict:
    from edgecls.export import openvino as ov_export

    settings = ov_export.OpenVinoInt8Settings.from_request(request)
    if ov_export.uses_onnxruntime_qdq(request, settings):
        return _openvino_via_onnx(exporter, request, dest, budget, log)
    ov = ov_export._import_openvino()
    ov_model, converter = ov_export._converted_fp32(ov, request)
    batch = 1 if request.dynamic_batch else int(request.batch)
    workdir = Path(request.workdir)
    fp32_path = workdir / f"openvino_fp32_{request.resolution}_{'dyn' if request.dynamic_batch else f'b{batch}'}.xml"
    labels = budget.labels

    with ov_export._telemetry_disabled():
        import nncf

        calibration = nncf.Dataset(ov_export.calibration_batches(request, batch))
        validation = nncf.Dataset(list(range(len(budget.images))))

        def validation_fn(compiled, indices) -> tuple[float, list[float]]:
            # Per-sample values let NNCF rank layers by how many decisions each one flips.
            output = compiled.outputs[0]
            hits = []
            for index in indices:
                x = np.ascontiguousarray(np.resize(budget.images[index:index + 1], (batch, *budget.images.shape[1:])))
                logits = np.asarray(compiled(x)[output]).reshape(batch, -1)[0]
                hits.append(float(logits.argmax() == labels[index]))
            return float(np.mean(hits)), hits

        options = ov_export.nncf_arguments(ov_model, request, settings)
        plain = nncf.quantize(ov_model.clone(), calibration, subset_size=len(request.calibration), **options)
        advanced = options.pop("advanced_parameters")
        quantized = nncf.quantize_with_accuracy_control(
            ov_model, calibration, validation, validation_fn, max_drop=budget.max_drop,
            drop_type=nncf.DropType.ABSOLUTE, subset_size=len(request.calibration),
            advanced_quantization_parameters=advanced, **options)
    float_layers = _openvino_float_layers(quantized)
    compiled = ov.Core().compile_model(quantized, "CPU")
    metric, _ = validation_fn(compiled, range(len(budget.images)))
    ov_export.record_settings(quantized, settings, {**options, "advanced_parameters": advanced}, len(request.calibration))
    quantized.set_rt_info(",".join(float_layers), ["edgecls", "int8_float_layers"])
    # The exporter's own finishing steps (layout, tensor names, metadata, save) on the budgeted model.
    plain_path = workdir / f"{dest.stem}.all-int8.xml"
    ov.save_model(plain, str(plain_path), compress_to_fp16=False)
    exporter.finish(ov, quantized, request, "int8", converter, dest)
    log(f"int8 budget: NNCF accuracy control kept {len(float_layers)} layers float -> {metric:.1%}")
    report = {"float_layers": float_layers, "metric": metric, "method": "nncf.quantize_with_accuracy_control",
              "compute_layers": len(ov_export.compute_layers(ov_model)), "steps": []}
    report["latency"] = _latency_report(fp32_path, plain_path, dest, same=not float_layers)
    if budget.sensitivity:
        rows = [{"layer": name, "op_type": "reverted by NNCF", "position": i, "score": float(len(float_layers) - i)}
                for i, name in enumerate(float_layers)]
        report["sensitivity_files"] = write_sensitivity(budget.sensitivity, rows, float_layers, "NNCF revert order") \
            if rows else []
    for path in (plain_path, plain_path.with_suffix(".bin")):
        path.unlink(missing_ok=True)
    return report


def _openvino_float_layers(model) -> list[str]:
    """Convolution / MatMul ops whose weights reach them without a FakeQuantize (NNCF left them float)."""
    from edgecls.export.openvino import COMPUTE_OP_TYPES

    names = []
    for op in model.get_ordered_ops():
        if op.get_type_name() not in COMPUTE_OP_TYPES or op.get_input_size() < 2:
            continue
        node = op.input_value(1).get_node()
        while node.get_type_name() in ("Reshape", "Convert", "Multiply", "Subtract", "Unsqueeze", "Transpose"):
            node = node.input_value(0).get_node()
        if node.get_type_name() == "Constant" and node.get_element_type().is_real():
            names.append(op.get_friendly_name())
    return names


# -- TFLite ------------------------------------------------------------------------------------


def _tflite(exporter, request, dest: Path, budget: Budget, log) -> dict:
    from edgecls.export import tflite as tfl_export

    aeq = tfl_export._import_quantizer()
    settings = tfl_export.TFLiteInt8Settings.from_request(request)
    content = tfl_export._float32_flatbuffer(request)
    input_name = tfl_export._input_name(content)
    samples = [{input_name: b} for b in tfl_export._calibration_batches(request)]
    ranges = tfl_export.calibrated_ranges(content, samples, tfl_export.int8_recipe(content, request, settings), settings)
    base = list(settings.float_ops)
    workdir = Path(request.workdir)
    fp32_path = workdir / f"{dest.stem}.fp32.tflite"
    fp32_path.write_bytes(content)
    plain = workdir / f"{dest.stem}.all-int8.tflite"

    def quantize(float_ops: list[str], path: Path):
        settings.float_ops = float_ops
        recipe = tfl_export.int8_recipe(content, request, settings).get_quantization_recipe()
        quantizer = aeq.quantizer.Quantizer(bytearray(content), recipe)
        result = quantizer.quantize(ranges, enable_progress_bar=False, enable_progress_report=False)
        path.write_bytes(bytes(result.quantized_model))
        return quantizer

    plain_quantizer = quantize(base, plain)
    rows = _tflite_ranking(content, plain_quantizer, budget, request)
    ranking = [r["layer"] for r in sorted(rows, key=lambda r: -r["score"]) if r["layer"] not in base]

    def build(excluded: list[str]) -> Path:
        if not excluded:
            return plain
        quantize(base + excluded, dest)
        return dest

    excluded, metric, steps = _greedy(ranking, build, budget, log)
    if not excluded:
        dest.write_bytes(plain.read_bytes())
    report = {"float_layers": excluded, "metric": metric, "steps": steps,
              "method": "ai-edge-quantizer validator ranking + NO_QUANTIZE recipes", "compute_layers": len(rows)}
    report["latency"] = _latency_report(fp32_path, plain, dest, same=not excluded)
    if budget.sensitivity:
        report["sensitivity_files"] = write_sensitivity(budget.sensitivity, rows, excluded, "dB of SNR lost")
    for path in (plain, fp32_path):
        path.unlink(missing_ok=True)
    return report


def _tflite_ranking(content: bytes, quantizer, budget: Budget, request) -> list[dict]:
    """Each conv / fully-connected op with the SNR (dB) it loses between its input and its output,
    float vs int8 model on RANKING_IMAGES tuning views (ai-edge-quantizer's validator)."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl
    from ai_edge_quantizer.utils import validation_utils

    from edgecls.export import tflite as tfl_export

    images = budget.images[:RANKING_IMAGES].astype(np.float32)
    batch = int(request.batch)
    input_name = tfl_export._input_name(content)
    data = [{input_name: tfl_export._layout(request, np.resize(images[i:i + 1], (batch, *images.shape[1:])))}
            for i in range(len(images))]
    comparison = quantizer.validate(test_data={tfl_export.SIGNATURE: data},
                                    error_metrics=[validation_utils.ValidationErrorMetric.SNR], num_threads=1)
    signature = comparison.get_signature_comparison_result(tfl_export.SIGNATURE)
    snr = {**signature.input_tensors, **signature.intermediate_tensors, **signature.output_tensors}

    def db(name: str) -> float | None:
        value = (snr.get(name) or {}).get("snr")
        return None if value is None else 10 * np.log10(max(float(value), 1e-12))

    model = tfl.read_model(bytearray(content))
    subgraph = model.subgraphs[0]
    rows = []
    for index, op in enumerate(subgraph.operators):
        if tfl.get_op_name_by_index(model, 0, index) not in tfl_export.COMPUTE_OPS:
            continue
        scope = tfl.get_op_scope(op, subgraph.tensors)
        out = db(tfl.get_tensor_name(subgraph.tensors[op.outputs[0]]))
        inp = db(tfl.get_tensor_name(subgraph.tensors[op.inputs[0]]))
        if out is None:
            continue
        lost = (inp - out) if inp is not None and np.isfinite(inp) else -out
        rows.append({"layer": scope, "op_type": tfl.get_op_name_by_index(model, 0, index), "position": index,
                     "score": float(lost)})
    return rows


__all__ = ["Budget", "export_within_budget", "prepare_budget", "write_sensitivity"]
