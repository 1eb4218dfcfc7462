"""The one interface every export format implements.

A format module (``edgecls/export/<format>.py``) defines one ``Exporter`` subclass and is named in
the ``converter`` column of ``edgecls.formats.FORMATS``. The pipeline (not the exporter) handles temp files
and renaming, isolation, parity checks and the manifest: an exporter only writes its file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgecls.formats import STORED_PRECISIONS, get_format

# Model families whose blocks mix convolutions with attention (matmul / softmax / layer norm):
# their int8 recipes leave the normalisation and softmax-side arithmetic in float.
TRANSFORMER_FAMILIES = frozenset({"mobilevit", "mobileformer", "vit", "mixer", "swin", "cvt"})


@dataclass
class ExportRequest:
    """Everything a format needs to write one artifact."""

    model: Any  # torch.nn.Module in eval mode, weights loaded
    info: Any  # edgecls.models.ModelInfo
    resolution: int
    batch: int  # static batch size (ignored when dynamic_batch)
    dynamic_batch: bool
    nhwc: bool  # artifact takes channels-last input (N, H, W, C)
    opset: int
    calibration: Any  # numpy float32 (N, 3, R, R), normalized like the model's input; NCHW
    workdir: Path  # scratch folder shared by the formats of one export run (e.g. the fp32 ONNX)
    # Per-format settings from the target profile: options["onnx"]["int8"] is the [onnx.int8] table.
    options: dict[str, Any] = field(default_factory=dict)
    # "uint8": ``model`` takes RGB byte values (normalisation folded in, edgecls.export.app_input) and
    # ``calibration`` holds byte values too.
    input_type: str = "float32"
    # Class names of the head (a `train` checkpoint's, or those a checkpoint stores): embedded as
    # the artifact's labels. None: ImageNet names for a 1000-class head, no labels otherwise.
    classes: list[str] | None = None

    @property
    def is_attention_model(self) -> bool:
        """Whether the model is one of TRANSFORMER_FAMILIES (their int8 recipes differ)."""
        return getattr(self.info, "family", "") in TRANSFORMER_FAMILIES


class _FormatSuffix:
    """``Exporter.suffix``, on the class and on instances alike: read from the format table."""

    def __get__(self, obj: Any, owner: type) -> str:
        return get_format(owner.format).suffix


class _FormatPrecisions:
    """``Exporter.precisions``: the ``precisions`` column of the format's row (the stored precisions
    for a format the table does not know, e.g. a test's stand-in)."""

    def __get__(self, obj: Any, owner: type) -> tuple[str, ...]:
        from edgecls.formats import FORMATS

        row = FORMATS.get(getattr(owner, "format", ""))
        return row.precisions if row else STORED_PRECISIONS


class Exporter(ABC):
    format: str  # a key of edgecls.formats.FORMATS: suffix, side files, extra, precisions come from that row
    precisions = _FormatPrecisions()

    @classmethod
    def check_settings(cls, options: dict[str, Any], precisions: list[str]) -> None:
        """Validate this format's table of the target profile (``options``, e.g. the [onnx] table)
        before anything is built: a typo must not surface after the other formats ran."""

    suffix = _FormatSuffix()

    @abstractmethod
    def export(self, request: ExportRequest, precision: str, dest: Path) -> None:
        """Write the artifact for ``precision`` at ``dest`` (side files next to it, e.g. .bin)."""

    def check_static_request(self, request: ExportRequest, precision: str, title: str) -> None:
        """The checks of a format that bakes one batch size in (ExecuTorch, Core ML): a known
        precision, a static batch, calibration images for int8; one line naming ``title`` each."""
        from edgecls.errors import InvalidArgumentError

        if precision not in self.precisions:
            raise InvalidArgumentError(f"{title} has no precision '{precision}': use one of {', '.join(self.precisions)}")
        if request.dynamic_batch:
            raise InvalidArgumentError(f"{title} export takes a static batch: drop --dynamic-batch and give --batch N")
        if precision == "int8" and (request.calibration is None or len(request.calibration) == 0):
            raise InvalidArgumentError(f"{title} int8 needs calibration images to set its activation ranges")

    def side_files(self, dest: Path) -> list[Path]:
        """Files that belong to the artifact at ``dest`` besides itself (OpenVINO's .bin)."""
        return get_format(self.format).side_files(dest)


def resolve_kept_float(names: list[str], candidates: list[str], known, setting: str, kind: str) -> list[str]:
    """A profile's "keep these in float" list (``setting``, e.g. "[onnx.int8] float_nodes") with
    "first" / "last" replaced by the first / last of ``candidates`` (the compute ops in execution
    order); any other name must be in ``known``; duplicates dropped, order kept."""
    from edgecls.errors import InvalidArgumentError

    resolved = []
    for name in names:
        if name in ("first", "last"):
            if candidates:
                resolved.append(candidates[0] if name == "first" else candidates[-1])
        elif name in known:
            resolved.append(name)
        else:
            raise InvalidArgumentError(f"{setting}: no {kind} named {name!r}")
    return list(dict.fromkeys(resolved))
