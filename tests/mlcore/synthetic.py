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
