"""What an export run will build, validated before anything is built: options, formats,
precisions, each format's settings, the output folder, the artifact names."""

from __future__ import annotations

import dataclasses

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from edgecls.errors import EdgeclsError, InvalidArgumentError
from edgecls.formats import PRECISIONS, check_format, check_precision, export_formats, get_format

DEFAULT_CALIB_SIZE = 100
DEFAULT_TIMEOUT_SECONDS = 1800.0  # per format; a hung converter must not hang the run


@dataclass
class ExportConfig:
    """One ``edgecls export`` run (the CLI options, with the same defaults)."""

    model: str
    weights: str | Path | None = None
    pretrained: bool = False  # demand the built-in weights (an error for a model without them)
    # Without --weights / --pretrained a model with built-in weights gets them; random weights only
    # on request, and their artifacts are flagged "benchmark only" (their decisions mean nothing).
    random_weights: bool = False
    formats: Sequence[str] | None = None  # None: the target's formats (explicit --target) or all
    precisions: Sequence[str] | None = None  # None: fp32, or the target's precisions when --target is given
    extra_precisions: Sequence[str] = ()  # added to the above (--int8, --fp16, --bf16)
    # "auto": a `train` checkpoint's own data (its training split calibrates, its held-out
    # validation split checks parity) when the checkpoint records a folder that exists, else the
    # built-in photos; "checkpoint" demands the former; "builtin" or a folder as given.
    calib: str | Path = "auto"
    calib_size: int = DEFAULT_CALIB_SIZE
    resolution: int | None = None
    batch: int = 1
    dynamic_batch: bool = False
    nhwc: bool = False
    input_type: str = "float32"  # "uint8": the artifact takes RGB bytes, normalisation folded in (app_input)
    opset: int = 18
    target: str | None = None
    out: Path = Path("out")
    min_agreement: float | None = None  # int8 parity gate, and the budget int8 is tuned to (edgecls.export.accuracy)
    max_drop: float | None = None  # int8 may lose at most this many top-1 points on the labeled ``val`` folder
    val: str | Path | None = None
    sensitivity: bool = False  # write each int8 artifact's per-layer sensitivity ranking (CSV + PNG) into ``out``
    num_classes: int = 1000
    timeout: float = DEFAULT_TIMEOUT_SECONDS


@dataclass
class ExportPlan:
    """A validated run: the model, what to build, and the file name of every artifact."""

    config: ExportConfig
    info: Any  # ModelInfo
    profile: Any  # TargetProfile
    formats: list[str]
    precisions: list[str]
    resolution: int
    pretrained: bool = False  # the built-in weights: asked for, or the default of a model that has them
    classes: list[str] | None = None  # a `train` checkpoint's class names
    head_hidden: int | None = None  # a `train` checkpoint's hidden head layer
    training: Any = None  # edgecls.export.calibration.TrainingData when calibration uses the checkpoint's data
    notes: list[str] = dataclasses.field(default_factory=list)  # said once the run starts (why --calib auto chose builtin)

    def offered(self, fmt: str) -> list[str]:
        """The run's precisions that ``fmt`` offers (ExecuTorch has no fp16, NCNN no int8): asking
        for --fp16 across all formats must not fail the formats that have none."""
        return [p for p in self.precisions if p in get_format(fmt).precisions]

    def file_name(self, fmt: str, precision: str) -> str:
        return artifact_name(self.info, self.config, self.resolution, precision, get_format(fmt).suffix)


def _split(values: Sequence[str] | str | None) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    items = [v.strip().lower() for value in values for v in str(value).split(",") if v.strip()]
    return list(dict.fromkeys(items)) or None


def resolve_plan(config: ExportConfig, profile) -> tuple[list[str], list[str]]:
    """The formats and precisions to build, validated, in build order."""
    formats = _split(config.formats)
    if formats is None:
        formats = list(profile.formats) if config.target else export_formats()
    formats = [check_format(f) for f in formats]
    named = _split(config.precisions)
    extra = _split(list(config.extra_precisions)) or []
    if named is None:
        precisions = (list(profile.precisions) if config.target else ["fp32"]) + extra
    else:
        precisions = named + extra
    precisions = [check_precision(p) for p in precisions]
    asked = [check_precision(p) for p in (named or []) + extra]
    from edgecls.formats import FORMATS

    # A precision asked for by name that none of the run's formats offers (--bf16 --formats onnx)
    # would build nothing: say so. Formats without it are skipped when another one has it.
    for precision in dict.fromkeys(asked):
        if not any(precision in get_format(f).precisions for f in formats):
            offering = [name for name, row in FORMATS.items() if precision in row.precisions]
            raise InvalidArgumentError(
                f"{precision} is not offered by {', '.join(formats)}: only by {', '.join(offering)} "
                f"(add it to --formats or drop the {precision} request)")
    order = list(FORMATS)
    return sorted(dict.fromkeys(formats), key=order.index), [p for p in PRECISIONS if p in precisions]


def check_settings(profile, formats: list[str], precisions: list[str]) -> None:
    """Each format's own parser reads its table of the profile: a typo in [onnx.int8] fails here,
    before anything is built."""
    from edgecls.export.registry import exporter_class

    for fmt in formats:
        table = (profile.options or {}).get(fmt) or {}
        try:
            cls = exporter_class(fmt)
        except ImportError:
            continue  # the converter is not installed: that format fails alone, with its own reason
        try:
            cls.check_settings(dict(table), precisions)
        except InvalidArgumentError as exc:
            where = f"target profile {profile.path}: " if getattr(profile, "path", None) else ""
            raise InvalidArgumentError(f"{where}{exc}") from None


def check_numbers(config: ExportConfig) -> None:
    def positive_int(value: Any, option: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgumentError(f"{option} must be a positive integer, got {value!r}")

    positive_int(config.batch, "--batch")
    positive_int(config.calib_size, "--calib-size")
    positive_int(config.opset, "--opset")
    if config.resolution is not None:
        positive_int(config.resolution, "--resolution")
    from edgecls.export.app_input import INPUT_TYPES

    if config.input_type not in INPUT_TYPES:
        raise InvalidArgumentError(f"unknown --input-type '{config.input_type}': use one of {', '.join(INPUT_TYPES)}")
    if config.opset < 17:
        raise InvalidArgumentError(f"--opset {config.opset} is too old: use 17 or newer")
    if config.dynamic_batch and config.batch != 1:
        raise InvalidArgumentError("give either --batch B or --dynamic-batch, not both")
    if config.min_agreement is not None and not 0.0 <= config.min_agreement <= 1.0:
        raise InvalidArgumentError(f"--min-agreement must be between 0 and 1 (e.g. 0.95), got {config.min_agreement}")
    if config.max_drop is not None and config.val is None:
        raise InvalidArgumentError("--max-drop needs labeled data: add --val DIR (one subfolder per class), "
                                   "or use --min-agreement A without labels")
    if config.val is not None and config.max_drop is None:
        raise InvalidArgumentError("--val DIR is the data of --max-drop P: add --max-drop (top-1 points, e.g. 1.0)")
    if config.max_drop is not None and config.min_agreement is not None:
        raise InvalidArgumentError("give either --max-drop P (with --val) or --min-agreement A, not both")
    if config.max_drop is not None and not 0.0 <= config.max_drop <= 100.0:
        raise InvalidArgumentError(f"--max-drop is in top-1 points between 0 and 100 (e.g. 1.0), got {config.max_drop}")
    if config.val is not None and not Path(config.val).exists():
        raise EdgeclsError(f"--val data not found: {config.val} (a folder with one subfolder per class, or a CSV)")
    if config.weights is not None and config.pretrained:
        raise InvalidArgumentError("give either --weights FILE or --pretrained, not both")
    if config.random_weights and (config.weights is not None or config.pretrained):
        raise InvalidArgumentError("give either --random-weights or --weights FILE / --pretrained, not both")
    if config.weights is not None and not Path(config.weights).is_file():
        raise EdgeclsError(f"weights file not found: {config.weights}")
    if not config.timeout or config.timeout <= 0:
        raise InvalidArgumentError(f"the export timeout must be a positive number of seconds, got {config.timeout!r}")


def check_output_folder(out: Path) -> None:
    """Fail early, before any work, when ``out`` cannot be created or written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgeclsError(f"--out {out} is a file, not a folder: choose a folder for the artifacts")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise EdgeclsError(f"cannot write to --out {out} ({existing} is not writable): choose another folder")


def artifact_name(info, config: ExportConfig, resolution: int, precision: str, suffix: str) -> str:
    parts = [info.name]
    if resolution != info.resolution:
        parts.append(f"r{resolution}")
    if config.dynamic_batch:
        parts.append("dynbatch")
    elif config.batch != 1:
        parts.append(f"b{config.batch}")
    if config.nhwc:
        parts.append("nhwc")
    if config.input_type == "uint8":
        parts.append("u8")
    parts.append(precision)
    return "_".join(parts) + suffix


def make_plan(config: ExportConfig) -> ExportPlan:
    """Everything a user can get wrong, checked before anything is written or computed."""
    from edgecls.export.profiles import load_profile
    from edgecls.models import get_model_info

    info = get_model_info(config.model)
    check_numbers(config)
    profile = load_profile(config.target)
    formats, precisions = resolve_plan(config, profile)
    # A `train` checkpoint decides the class count, the head and (unless given) the resolution.
    from edgecls.datasets import checkpoint_metadata

    trained = checkpoint_metadata(config.weights) if config.weights else None
    if trained:
        config = dataclasses.replace(config, num_classes=int(trained["num_classes"]),
                                     resolution=config.resolution or trained["preprocessing"]["resolution"])
    resolution = info.check_resolution(info.resolution if config.resolution is None else config.resolution)
    calib, training, notes = _calibration_source(config, trained)
    config = dataclasses.replace(config, calib=calib)
    check_settings(profile, formats, precisions)
    check_output_folder(Path(config.out))
    pretrained = config.pretrained or (config.weights is None and not config.random_weights
                                       and info.pretrained is not None and config.num_classes == info.num_classes)
    return ExportPlan(config, info, profile, formats, precisions, resolution, pretrained=pretrained,
                      classes=list(trained["classes"]) if trained else None,
                      head_hidden=(trained or {}).get("head_hidden"), training=training, notes=notes)


def _calibration_source(config: ExportConfig, trained: dict | None) -> tuple[str | Path, Any, list[str]]:
    """(--calib resolved to "builtin", "checkpoint" or a folder, the checkpoint's TrainingData, notes)."""
    calib = config.calib
    if str(calib) not in ("auto", "checkpoint"):
        return calib, None, []
    from edgecls.export.calibration import training_data

    if trained is None:
        if str(calib) == "checkpoint":
            raise InvalidArgumentError("--calib checkpoint needs --weights FILE written by `edgecls train` "
                                       "(it records its data): pass --calib DIR or --calib builtin")
        return "builtin", None, []
    training, reason = training_data(trained, config.weights)
    if training is not None:
        return "checkpoint", training, []
    if str(calib) == "checkpoint":
        raise EdgeclsError(f"--calib checkpoint: {reason}: pass --calib DIR (images like the training data)")
    return "builtin", None, [f"warning: {reason}: int8 calibrates and parity is checked on the built-in ImageNet photos, "
                             "not on the data this model learned; pass --calib DIR"]


__all__ = ["DEFAULT_CALIB_SIZE", "DEFAULT_TIMEOUT_SECONDS", "ExportConfig", "ExportPlan", "artifact_name",
           "check_numbers", "check_output_folder", "check_settings", "make_plan", "resolve_plan"]
