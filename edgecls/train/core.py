"""Transfer learning on a user's image folder: the `edgecls train` loop.

A registered model starts from its built-in weights (``pretrained``), a checkpoint (``weights``)
or random weights; its head is replaced by one for the dataset's classes. Images are decoded,
resized and centre-cropped once exactly like evaluation and export preprocess them
(edgecls.preprocess), kept as uint8, augmented per batch on the fly, and normalised with the
model's mean/std. The checkpoint (safetensors, with the class names and preprocessing in its
header and in a sidecar JSON) is what `export`, `evaluate` and `predict` load directly.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError
from edgecls.train.augment import AUGMENTS
from edgecls.train.losses import CLASS_WEIGHTS, LOSSES, SAMPLERS

OPTIMIZERS = ("adamw", "sgd", "sam")
DEFAULT_LR = {"adamw": 1e-3, "sgd": 1e-2, "sam": 1e-2}
CHECKPOINT_NAME = "model.safetensors"
SAM_RHO = 0.05
# A cached dataset beyond this many bytes of uint8 pixels is decoded per batch instead.
MAX_CACHE_BYTES = 2 << 30


@dataclass
class TrainConfig:
    """One `edgecls train` run (the CLI options, same defaults)."""

    model: str
    data: Path
    out: Path
    pretrained: bool = False
    weights: Path | None = None
    val: Path | None = None
    val_split: float = 0.2
    resolution: int | None = None
    epochs: int = 30
    batch_size: int = 32
    lr: float | None = None
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    loss: str = "ce"
    class_weights: str = "none"
    sampler: str = "none"
    augment: str = "light"
    freeze_backbone: bool = False
    head_hidden: int | None = None
    patience: int = 5
    seed: int = 0
    threads: int | None = None


@dataclass
class TrainResult:
    out: Path
    checkpoint: Path
    classes: list[str]
    history: list[dict]
    best_epoch: int
    val_labels: np.ndarray
    val_predictions: np.ndarray
    report: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def best(self) -> dict:
        return self.history[self.best_epoch - 1]


def check_config(config: TrainConfig):
    """Every user mistake, before anything is loaded: returns the ModelInfo."""
    from edgecls.models import get_model_info

    info = get_model_info(config.model)
    for option, value, allowed in (("--optimizer", config.optimizer, OPTIMIZERS), ("--loss", config.loss, LOSSES),
                                   ("--class-weights", config.class_weights, CLASS_WEIGHTS),
                                   ("--sampler", config.sampler, SAMPLERS), ("--augment", config.augment, AUGMENTS)):
        if value not in allowed:
            raise InvalidArgumentError(f"{option} {value!r} is not one of {', '.join(allowed)}")
    if config.pretrained and config.weights:
        raise InvalidArgumentError("give either --pretrained or --weights FILE, not both")
    if config.pretrained and info.pretrained is None:
        raise InvalidArgumentError(f"{info.name} has no built-in pretrained weights: pass --weights FILE or train from scratch")
    if config.weights and not Path(config.weights).is_file():
        raise EdgeclsError(f"weights file not found: {config.weights}")
    for option, value in (("--epochs", config.epochs), ("--batch-size", config.batch_size),
                          ("--patience", config.patience)):
        if not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(f"{option} must be a positive integer, got {value!r}")
    if config.head_hidden is not None and config.head_hidden < 1:
        raise InvalidArgumentError(f"--head-hidden must be a positive integer, got {config.head_hidden}")
    if config.lr is not None and not config.lr > 0:
        raise InvalidArgumentError(f"--lr must be positive, got {config.lr}")
    if config.val is None and not 0 < config.val_split < 1:
        raise InvalidArgumentError(f"--val-split must be between 0 and 1 (e.g. 0.2), got {config.val_split}")
    info.check_resolution(config.resolution or info.resolution)
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise EdgeclsError(f"--out {out} is a file, not a folder: choose a folder for the checkpoint and report")
    return info


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def preprocessing_of(info, resolution: int) -> dict:
    return {"resolution": resolution, "mean": list(info.mean), "std": list(info.std), "crop_pct": info.crop_pct,
            "interpolation": info.interpolation}


def load_pixels(dataset, preprocessing: dict, progress: Callable[[int], None] | None = None):
    """(uint8 (N, 3, R, R) pixels, labels, unreadable paths): resize + centre crop as evaluation does."""
    from edgecls.datasets import read_image
    from edgecls.preprocess import preprocess

    pixels, labels, unreadable = [], [], []
    for path, label in dataset.items:
        image = read_image(path)
        if image is None:
            unreadable.append(path)
        else:
            x = preprocess(image, preprocessing["resolution"], (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                           preprocessing["crop_pct"], preprocessing["interpolation"])
            pixels.append(np.round(x * 255.0).astype(np.uint8))  # exact: x was uint8 / 255
            labels.append(label)
        if progress:
            progress(1)
    side = preprocessing["resolution"]
    stack = np.stack(pixels) if pixels else np.zeros((0, 3, side, side), np.uint8)
    return stack, np.asarray(labels, dtype=np.int64), unreadable


def build_model(config: TrainConfig, info, num_classes: int):
    """The starting model with a fresh head for ``num_classes`` (kept when a checkpoint already fits)."""
    import torch

    from edgecls.datasets import checkpoint_metadata
    from edgecls.models import create_model
    from edgecls.models.head import replace_head

    torch.manual_seed(config.seed)
    if config.weights:
        trained = checkpoint_metadata(config.weights)
        model = create_model(info.name, weights=config.weights)
        same_head = trained is not None and trained["num_classes"] == num_classes and \
            trained.get("head_hidden") == config.head_hidden
        if not same_head:
            replace_head(model, num_classes, config.head_hidden)
    elif config.pretrained:
        model = create_model(info.name, pretrained=True)
        replace_head(model, num_classes, config.head_hidden)
    else:
        model = create_model(info.name, num_classes=num_classes, head_hidden=config.head_hidden)
    model.edgecls_info = info
    return model


def _set_train_mode(model, head, freeze: bool) -> None:
    model.train()
    if freeze:  # a frozen backbone keeps its BatchNorm statistics too: only the head learns
        model.eval()
        head.train()


def _optimizer(config: TrainConfig, params):
    import torch

    from edgecls.train.sam import SAM

    lr = config.lr or DEFAULT_LR[config.optimizer]
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return SAM(params, torch.optim.SGD, rho=SAM_RHO, lr=lr, momentum=0.9, weight_decay=config.weight_decay)


def _predict(model, pixels: np.ndarray, mean, std, batch: int = 128) -> np.ndarray:
    import torch

    logits = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(pixels), batch):
            x = torch.from_numpy(pixels[start:start + batch]).float().div_(255.0)
            logits.append(model((x - mean) / std))
    return torch.cat(logits).numpy() if logits else np.zeros((0, 0), np.float32)


def train(config: TrainConfig, log: Callable[[str], None] | None = None, show_progress: bool = True) -> TrainResult:
    """Fine-tune, early-stop on validation balanced accuracy, write checkpoint + report; see the module docstring."""
    info = check_config(config)
    log = log or (lambda message: None)
    from edgecls.datasets import load_dataset, stratified_split

    dataset = load_dataset(config.data)
    warnings: list[str] = []
    if dataset.skipped:
        warnings.append(f"{len(dataset.skipped)} non-image file(s) ignored, e.g. {dataset.skipped[0]}")
    if config.val is not None:
        train_set, val_set = dataset, load_dataset(config.val)
        if val_set.classes != train_set.classes:
            raise EdgeclsError(f"--val classes {val_set.classes[:5]} differ from --data classes {train_set.classes[:5]}: "
                               "give both folders the same class subfolders")
    else:
        train_set, val_set = stratified_split(dataset, config.val_split, seed=config.seed)

    import torch
    import torch.nn.functional as F
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from sklearn.metrics import balanced_accuracy_score

    from edgecls.models.head import find_head
    from edgecls.train.augment import make_augment
    from edgecls.train.losses import class_weights, make_loss, sample_weights

    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    resolution = config.resolution or info.resolution
    preprocessing = preprocessing_of(info, resolution)
    if (len(train_set) + len(val_set)) * 3 * resolution ** 2 > MAX_CACHE_BYTES:
        raise EdgeclsError(f"{len(train_set) + len(val_set)} images at {resolution} px do not fit the "
                           f"{MAX_CACHE_BYTES >> 30} GB image cache: use a smaller --resolution or fewer images")

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[metrics]}"), TimeRemainingColumn(), disable=not show_progress,
                        transient=False)
    with progress:
        task = progress.add_task("decoding images", total=len(train_set) + len(val_set), metrics="")
        advance = lambda n: progress.advance(task, n)  # noqa: E731
        x_train, y_train, bad_train = load_pixels(train_set, preprocessing, advance)
        x_val, y_val, bad_val = load_pixels(val_set, preprocessing, advance)
        progress.update(task, visible=False)
        if bad_train or bad_val:
            bad = bad_train + bad_val
            warnings.append(f"{len(bad)} corrupt image(s) skipped, e.g. {bad[0]}")
        classes = list(dataset.classes)
        counts = np.bincount(y_train, minlength=len(classes))
        if (counts == 0).any():
            empty = classes[int(np.flatnonzero(counts == 0)[0])]
            raise EdgeclsError(f"class {empty!r} has no readable training image: add images or remove the folder")
        for warning in warnings:
            log(f"warning: {warning}")

        model = build_model(config, info, len(classes))
        head_name, head = find_head(model)
        if config.freeze_backbone:
            for name, p in model.named_parameters():
                p.requires_grad = name.startswith(head_name + ".")
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = _optimizer(config, params)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
        weights = class_weights(counts, config.class_weights)
        loss_fn = make_loss(config.loss, weights)
        augment = make_augment(config.augment, resolution)
        mean = torch.tensor(info.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(info.std, dtype=torch.float32).view(1, 3, 1, 1)

        generator = torch.Generator().manual_seed(config.seed)
        train_data = torch.utils.data.TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
        if config.sampler == "oversample":
            sampler = torch.utils.data.WeightedRandomSampler(
                torch.as_tensor(sample_weights(y_train, counts)), num_samples=len(y_train), replacement=True,
                generator=generator)
            loader = torch.utils.data.DataLoader(train_data, batch_size=config.batch_size, sampler=sampler)
        else:
            loader = torch.utils.data.DataLoader(train_data, batch_size=config.batch_size, shuffle=True,
                                                 generator=generator)
        # BatchNorm cannot train on a batch of one: drop a last batch that small.
        steps = sum(1 for n in _batch_sizes(len(y_train), config.batch_size) if n > 1)
        task = progress.add_task(f"training {info.name}", total=config.epochs * steps, metrics="")

        history: list[dict] = []
        best = (-1.0, 0, None, None)  # (balanced accuracy, epoch, state, predictions)
        stale = 0
        for epoch in range(1, config.epochs + 1):
            _set_train_mode(model, head, config.freeze_backbone)
            losses = []
            for xb, yb in loader:
                if len(yb) < 2:
                    continue
                x = xb.float().div_(255.0)
                if augment is not None:
                    x = augment(x)
                x = (x - mean) / std

                def closure():
                    optimizer.zero_grad(set_to_none=True)
                    value = loss_fn(model(x), yb)
                    value.backward()
                    return value

                if config.optimizer == "sam":
                    loss = optimizer.step(closure)
                else:
                    loss = closure()
                    optimizer.step()
                losses.append(float(loss.detach()))
                progress.update(task, advance=1, metrics=f"epoch {epoch} loss {np.mean(losses):.3f}"
                                + (f" | val bal-acc {history[-1]['val_balanced_accuracy']:.3f}" if history else ""))
            scheduler.step()
            logits = _predict(model, x_val, mean, std)
            predictions = logits.argmax(1)
            val_loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y_val)))
            record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                      "val_accuracy": float((predictions == y_val).mean()),
                      "val_balanced_accuracy": float(balanced_accuracy_score(y_val, predictions)),
                      "lr": float(optimizer.param_groups[0]["lr"])}
            history.append(record)
            if record["val_balanced_accuracy"] > best[0]:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (record["val_balanced_accuracy"], epoch, state, predictions)
                stale = 0
            else:
                stale += 1
            progress.update(task, metrics=f"epoch {epoch} loss {record['train_loss']:.3f} | "
                            f"val bal-acc {record['val_balanced_accuracy']:.3f} (best {best[0]:.3f} @ {best[1]})")
            if stale >= config.patience:
                log(f"early stop after epoch {epoch}: validation balanced accuracy has not improved for "
                    f"{config.patience} epochs (best {best[0]:.3f} at epoch {best[1]})")
                progress.update(task, total=epoch * steps, completed=epoch * steps)
                break

    model.load_state_dict(best[2])
    model.eval()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": "edgecls-checkpoint", "version": 1, "model": info.name, "classes": classes,
        "num_classes": len(classes), "head_hidden": config.head_hidden, "preprocessing": preprocessing,
        # data and val absolute: `export --calib auto` finds them again from any folder
        "train": {**{k: (str(Path(v).resolve()) if k in ("data", "val") and v is not None else
                         str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
                  "best_epoch": best[1], "val_balanced_accuracy": best[0],
                  "train_counts": counts.tolist(), "val_counts": np.bincount(y_val, minlength=len(classes)).tolist()},
    }
    checkpoint = write_checkpoint(model, meta, out / CHECKPOINT_NAME)
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    (out / "validation.json").write_text(json.dumps(
        {"classes": classes, "labels": y_val.tolist(), "predictions": best[3].tolist()}) + "\n")
    result = TrainResult(out, checkpoint, classes, history, best[1], y_val, best[3], warnings=warnings)
    from edgecls.train.report import write_report

    result.report = write_report(result, meta)
    return result


def _batch_sizes(n: int, batch: int) -> list[int]:
    return [min(batch, n - start) for start in range(0, n, batch)]


def write_checkpoint(model, meta: dict, path: Path) -> Path:
    """safetensors weights with ``meta`` in the header (key ``edgecls``), and the same JSON beside it."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    text = json.dumps(meta)
    save_file(state, str(path), metadata={"edgecls": text})
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return path
