"""`edgecls explain`: class activation maps, for PyTorch models and for exported artifacts.

PyTorch models get Grad-CAM (Selvaraju et al. 2017), Grad-CAM++ (Chattopadhyay et al. 2018) or
Score-CAM (Wang et al. 2020) on the last spatial feature map of the family (``TARGET_LAYERS``).
These are own code over forward/backward hooks: the `grad-cam` package (pytorch_grad_cam 1.5.7)
imports torchvision, OpenCV and ttach from its package ``__init__`` (sess.py, base_cam.py,
utils/image.py), so it cannot even be imported beside torch 2.13.0 without torchvision; the
three methods are a few lines each once the activations and gradients are captured.

An exported artifact has no gradients, so its map is an occlusion map (Zeiler & Fergus 2014)
computed through its runtime (edgecls.runtime.run_artifact): how much the class probability drops
when each patch is replaced by the mean colour. The same occlusion map of the fp32 PyTorch model
is the reference, and their similarity (Pearson correlation, and the overlap of the top-20 % regions)
shows whether the int8 file looks where fp32 looks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from edgecls.errors import EdgeclsError, InvalidArgumentError

METHODS = ("gradcam", "gradcam++", "scorecam")
# The last feature map that still has a spatial extent, per family (module path; [-1] = last child).
TARGET_LAYERS = {
    "efficientnet": "act2",
    "mobilenetv2": "act2",
    "mobilenetv1": "blocks",
    "mobilenetv3": "blocks",  # its conv_head follows the global pool
    "mobilenetv4": "blocks",
    "mobilevit": "final_conv",
    "squeezenet": "features",
    "mobileformer": "blocks[-1]",  # blocks return (feature map, tokens): the map is output 0
}
# Score-CAM masks the input with each channel; the channels with the largest mean activation carry
# nearly all of the map, and 64 keep a 1280-channel head to 64 forward passes.
SCORECAM_CHANNELS = 64
OCCLUSION_GRID = 14  # patches of 2/14 of the side, stride 1/14: 13 x 13 occluded copies
TOP_FRACTION = 0.2


def target_layer(model):
    """The module whose output a CAM weighs, by the model's family."""
    family = model.edgecls_info.family
    path = TARGET_LAYERS.get(family)
    if path is None:
        raise InvalidArgumentError(f"no Grad-CAM target layer known for the {family} family")
    last = path.endswith("[-1]")
    module = model.get_submodule(path.removesuffix("[-1]"))
    return list(module.children())[-1] if last else module


def _first_tensor(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def cam_torch(model, x, class_index: int | None, method: str = "gradcam") -> tuple[np.ndarray, int, np.ndarray]:
    """(map (R, R) in [0, 1], class explained, probabilities) of a PyTorch model for one input (1, 3, R, R)."""
    import torch
    import torch.nn.functional as F

    if method not in METHODS:
        raise InvalidArgumentError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    layer = target_layer(model)
    captured: dict = {}

    def hook(module, inputs, output):
        act = _first_tensor(output)
        captured["act"] = act
        if act.requires_grad:
            act.register_hook(lambda g: captured.__setitem__("grad", g))

    handle = layer.register_forward_hook(hook)
    try:
        model.eval()
        x = torch.as_tensor(x).clone().requires_grad_(method != "scorecam")
        with torch.set_grad_enabled(method != "scorecam"):
            logits = model(x)
        probs = torch.softmax(logits.detach(), 1)[0].numpy()
        cls = int(probs.argmax()) if class_index is None else class_index
        check_class(cls, logits.shape[1])
        act = captured["act"].detach()[0]  # (C, h, w)
        if method == "scorecam":
            weights = _scorecam_weights(model, x.detach(), act, cls)
        else:
            model.zero_grad(set_to_none=True)
            logits[0, cls].backward()
            grad = captured["grad"][0]
            if method == "gradcam":
                weights = grad.mean((1, 2))
            else:  # Grad-CAM++: per-position weights alpha from the 2nd and 3rd powers of the gradient
                g2, g3 = grad ** 2, grad ** 3
                denom = 2 * g2 + act.sum((1, 2), keepdim=True) * g3
                alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
                weights = (alpha * F.relu(grad)).sum((1, 2))
        cam = F.relu((weights[:, None, None] * act).sum(0))
    finally:
        handle.remove()
    side = x.shape[-1]
    cam = F.interpolate(cam[None, None], size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()
    return _normalise(cam), cls, probs


def _scorecam_weights(model, x, act, cls: int):
    import torch
    import torch.nn.functional as F

    order = act.mean((1, 2)).argsort(descending=True)[:SCORECAM_CHANNELS]
    maps = F.interpolate(act[order][:, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    low = maps.flatten(1).min(1).values[:, None, None]
    high = maps.flatten(1).max(1).values[:, None, None]
    masks = (maps - low) / torch.where(high > low, high - low, torch.ones_like(high))
    scores = []
    with torch.inference_mode():
        for start in range(0, len(masks), 16):
            scores.append(torch.softmax(model(x * masks[start:start + 16, None]), 1)[:, cls])
    weights = torch.zeros(act.shape[0])
    weights[order] = torch.cat(scores)
    return weights


def _normalise(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float64)
    cam = cam - cam.min()
    return cam / cam.max() if cam.max() > 0 else cam


def check_class(cls: int, num_classes: int) -> None:
    if not 0 <= cls < num_classes:
        raise InvalidArgumentError(f"--class {cls} is out of range: the model has classes 0..{num_classes - 1}")


def occlusion_map(predict, x: np.ndarray, cls: int, grid: int = OCCLUSION_GRID) -> np.ndarray:
    """(R, R) in [0, 1]: drop of the class probability when each patch of ``x`` (3, R, R) is zeroed.

    ``predict`` maps a batch (N, 3, R, R) to logits. Zero is the dataset mean in normalised space.
    """
    side = x.shape[-1]
    stride = max(1, side // grid)
    size = 2 * stride
    starts = list(range(0, max(1, side - size + 1), stride))
    batch = []
    for top in starts:
        for left in starts:
            occluded = x.copy()
            occluded[:, top:top + size, left:left + size] = 0.0
            batch.append(occluded)
    logits = predict(np.stack([x, *batch]).astype(np.float32))
    z = logits - logits.max(1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    drop = probs[0, cls] - probs[1:, cls]
    heat = np.zeros((side, side))
    hits = np.zeros((side, side))
    for (top, left), value in zip(((t, l) for t in starts for l in starts), drop):
        heat[top:top + size, left:left + size] += value
        hits[top:top + size, left:left + size] += 1
    return _normalise(np.maximum(heat / np.maximum(hits, 1), 0.0))


def similarity(a: np.ndarray, b: np.ndarray, top: float = TOP_FRACTION) -> dict:
    """Pearson correlation of two maps and the IoU of their top-``top`` regions."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    pearson = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
    k = max(1, int(round(top * len(a))))
    ta, tb = set(np.argsort(-a)[:k]), set(np.argsort(-b)[:k])
    return {"pearson": pearson, f"top{int(top * 100)}_iou": len(ta & tb) / len(ta | tb)}


def box_mass(cam: np.ndarray, box: Sequence[float]) -> float:
    """Fraction of the map's mass inside ``box`` = (left, top, right, bottom) as fractions of the side."""
    side_y, side_x = cam.shape
    left, top, right, bottom = box
    inside = cam[int(top * side_y):int(bottom * side_y), int(left * side_x):int(right * side_x)].sum()
    return float(inside / cam.sum()) if cam.sum() > 0 else 0.0


def save_overlay(image: np.ndarray, maps: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """The (R, R, 3) uint8 image with each map over it, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(maps) + 1, figsize=(3.2 * (len(maps) + 1), 3.4), squeeze=False)
    axes[0][0].imshow(image)
    axes[0][0].set_title("input", fontsize=9)
    for ax, (name, cam) in zip(axes[0][1:], maps.items()):
        ax.imshow(image)
        ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
    for ax in axes[0]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the command -------------------------------------------------------------------------------


def _class_names(num_classes: int, classes: Sequence[str] | None) -> list[str]:
    if classes:
        return list(classes)
    if num_classes == 1000:
        from edgecls.labels import imagenet_labels

        return list(imagenet_labels())
    return [str(i) for i in range(num_classes)]


def _manifest_entry(path: Path) -> dict | None:
    manifest = path.parent / "manifest.json"
    if not manifest.is_file():
        return None
    try:
        entries = json.loads(manifest.read_text()).get("artifacts", [])
    except (ValueError, AttributeError):
        return None
    return next((e for e in entries if e.get("file") == path.name), None)


def _torch_model(name: str, weights, pretrained: bool):
    import torch

    from edgecls.datasets import checkpoint_metadata
    from edgecls.models import create_model

    if weights and not Path(weights).is_file():
        raise EdgeclsError(f"weights file not found: {weights}")
    with torch.random.fork_rng():
        torch.manual_seed(0)  # random weights: the draw the export pipeline makes too
        model = create_model(name, weights=weights, pretrained=pretrained)
    trained = checkpoint_metadata(weights) if weights else None
    info = model.edgecls_info
    pre = (trained or {}).get("preprocessing") or {"resolution": info.resolution, "mean": list(info.mean),
                                                   "std": list(info.std), "crop_pct": info.crop_pct,
                                                   "interpolation": info.interpolation}
    return model, pre, (trained or {}).get("classes")


def explain(target: str, images: Sequence, class_index: int | None = None, method: str = "gradcam", weights=None,
            pretrained: bool = False, reference: str | None = None, out="explain") -> dict:
    """Maps for each image (see the module docstring); writes overlay PNGs and explain.json into ``out``."""
    import torch

    from edgecls.preprocess import load_image, preprocess

    if method not in METHODS:
        raise InvalidArgumentError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if not images:
        raise EdgeclsError("give at least one image file to explain")
    from edgecls.formats import is_artifact_path

    is_artifact = is_artifact_path(target)
    artifact = Path(target) if is_artifact else None
    if artifact is not None:
        if not artifact.is_file():
            raise EdgeclsError(f"artifact not found: {artifact}")
        entry = _manifest_entry(artifact) or {}
        name = reference or entry.get("model")
        if not name:
            raise EdgeclsError(f"{artifact} has no manifest.json entry naming its model: pass --reference MODEL")
        label = entry.get("weights", "")
        if weights is None and not pretrained:
            pretrained = label == "pretrained"
            if label.startswith("file:"):
                raise EdgeclsError(f"{artifact} was exported from {label[5:]}: pass it with --weights")
    else:
        name = target
    model, pre, classes = _torch_model(name, weights, pretrained)
    if artifact is not None and entry.get("preprocessing"):
        pre = {k: entry["preprocessing"][k] for k in ("resolution", "mean", "std", "crop_pct", "interpolation")}
        classes = entry.get("classes") or classes
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    loaded = [(Path(p), load_image(p)) for p in images]  # a non-image file fails here, before any work
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    def torch_predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return torch.cat([model(torch.from_numpy(batch[i:i + 32])) for i in range(0, len(batch), 32)]).numpy()

    results = []
    for path, image in loaded:
        x = preprocess(image, pre["resolution"], pre["mean"], pre["std"], pre["crop_pct"], pre["interpolation"])
        shown = preprocess(image, pre["resolution"], (0, 0, 0), (1, 1, 1), pre["crop_pct"], pre["interpolation"])
        shown = (np.clip(shown.transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
        cam, cls, probs = cam_torch(model, torch.from_numpy(x[None]), class_index, method)
        names = _class_names(len(probs), classes)
        num_classes = len(probs)
        item = {"image": str(path), "class": cls, "label": names[cls], "probability": float(probs[cls]),
                "method": method}
        maps = {f"PyTorch {method}": cam}
        if artifact is not None:
            from edgecls.runtime.run import run_artifact

            reference_map = occlusion_map(torch_predict, x, cls)
            artifact_map = occlusion_map(lambda b: run_artifact(artifact, b)[0], x, cls)
            maps.update({"PyTorch occlusion": reference_map, f"{artifact.name} occlusion": artifact_map})
            item["similarity"] = similarity(reference_map, artifact_map)
            item["similarity_to_gradient_map"] = similarity(cam, artifact_map)
            np.save(out / f"{path.stem}_occlusion_torch.npy", reference_map.astype(np.float32))
            np.save(out / f"{path.stem}_occlusion_artifact.npy", artifact_map.astype(np.float32))
        title = f"{names[cls]} ({probs[cls]:.1%}), class {cls}"
        item["overlay"] = str(save_overlay(shown, maps, out / f"{path.stem}_{method.replace('++', 'pp')}.png", title))
        np.save(out / f"{path.stem}_{method.replace('++', 'pp')}.npy", cam.astype(np.float32))
        results.append(item)
    report = {"target": str(target), "model": name, "method": method, "num_classes": num_classes,
              "preprocessing": pre, "images": results}
    (out / "explain.json").write_text(json.dumps(report, indent=2) + "\n")
    report["json"] = str(out / "explain.json")
    return report
