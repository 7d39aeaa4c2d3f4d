"""Small generated chest-X-ray-like images with a learnable difference between the classes."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image


def synthetic_image(label: str, rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A dark background with two lung fields; COVID images carry bright patchy opacities."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.15 + 0.05 * rng.standard_normal((size, size))
    for centre in (0.3, 0.7):
        lung = ((x - centre) / 0.16) ** 2 + ((y - 0.5) / 0.32) ** 2 < 1
        image[lung] += 0.35
    if label == "COVID":
        for _ in range(3):
            cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.3, 0.7)
            blob = ((x - cx) / 0.08) ** 2 + ((y - cy) / 0.08) ** 2 < 1
            image[blob] += 0.4
    return np.clip(image, 0, 1)


def write_dataset(
    root: Path,
    *,
    per_class: int = 24,
    patients_per_class: int = 12,
    folders: dict[str, str] | None = None,
    seed: int = 0,
    sources: tuple[str, ...] = ("site-a", "site-b"),
    manifest: bool = True,
) -> Path:
    """Write PNGs under root/<folder>/ and a manifest.csv with patient ids and sources."""
    folders = folders or {"COVID": "COVID", "NORMAL": "NORMAL"}
    rng = np.random.default_rng(seed)
    rows = []
    for label, folder in folders.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            patient = f"{label[:1]}{n % patients_per_class:03d}"
            path = root / folder / f"{label.lower()}_{n:03d}.png"
            pixels = (synthetic_image(label, rng) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(path)
            rows.append(
                {
                    "path": f"{folder}/{path.name}",
                    "label": label,
                    "patient_id": patient,
                    "source": sources[n % len(sources)],
                }
            )
    if manifest:
        with (root / "manifest.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["path", "label", "patient_id", "source"])
            writer.writeheader()
            writer.writerows(rows)
    return root


def lateral_like(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """A lateral chest view: one large lung field in a tilted oval body, the spine as a bright band at the
    back (facing either way), the sternum a thin line at the front."""
    y, x = np.mgrid[0:size, 0:size] / size
    facing = rng.choice([-1.0, 1.0])
    u = 0.5 + facing * (x - 0.5)  # 0 = front, 1 = back
    image = 0.1 + 0.05 * rng.standard_normal((size, size))
    image[((u - 0.5) / 0.42) ** 2 + ((y - 0.5) / 0.46) ** 2 < 1] += 0.35
    lung = ((u - rng.uniform(0.45, 0.52)) / 0.27) ** 2 + ((y - 0.45) / rng.uniform(0.3, 0.36)) ** 2 < 1
    image[lung] -= 0.2
    image[(np.abs(u - rng.uniform(0.8, 0.85)) < 0.05) & (y > 0.1)] += 0.45
    image[(np.abs(u - 0.12) < 0.015) & (y > 0.25) & (y < 0.7)] += 0.3
    return np.clip(image, 0, 1)


def ct_slice(rng: np.random.Generator, size: int = 96) -> np.ndarray:
    """An axial CT slice: a round grey body on black, two dark lungs, a bright spine below the middle."""
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.02 * rng.standard_normal((size, size))
    image[((x - 0.5) / rng.uniform(0.4, 0.46)) ** 2 + ((y - 0.5) / rng.uniform(0.32, 0.38)) ** 2 < 1] = 0.55
    for centre in (0.33, 0.67):
        image[((x - centre) / 0.13) ** 2 + ((y - 0.47) / 0.2) ** 2 < 1] = 0.08
    image[((x - 0.5) / 0.05) ** 2 + ((y - 0.74) / 0.05) ** 2 < 1] = 1.0
    return np.clip(image + 0.03 * rng.standard_normal((size, size)), 0, 1)


def write_refuse_examples(root: Path, *, per_kind: int = 12, seed: int = 0) -> Path:
    """Generated images to refuse under root/LATERAL/ and root/CT/, as ``--refuse-examples`` takes them."""
    rng = np.random.default_rng(seed)
    for kind, make in (("LATERAL", lateral_like), ("CT", ct_slice)):
        (root / kind).mkdir(parents=True, exist_ok=True)
        for n in range(per_kind):
            Image.fromarray((make(rng) * 255).astype(np.uint8)).save(root / kind / f"{kind.lower()}_{n:03d}.png")
    return root
