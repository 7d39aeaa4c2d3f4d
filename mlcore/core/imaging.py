"""Decode chest radiographs (PNG, JPEG, DICOM) into one grayscale float image in [0, 1].

The format is recognised from the content, never from the file name.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PNG, JPEG, DICOM = "PNG", "JPEG", "DICOM"
DEFAULT_MAX_PIXELS = 60_000_000


class ImageDecodeError(ValueError):
    """The bytes are not a readable PNG, JPEG or DICOM chest X-ray."""


def sniff_format(head: bytes) -> str | None:
    """PNG, JPEG or DICOM from the first 132 bytes of a file, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(head) >= 132 and head[128:132] == b"DICM":
        return DICOM
    return None


def read_bytes(source: str | Path | bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | Path):
        return Path(source).read_bytes()
    position = source.tell() if source.seekable() else None
    data = source.read()
    if position is not None:
        source.seek(position)
    return data


def decode_image(source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a 2-D float32 array in [0, 1] (0 = black), whatever the format and bit depth."""
    data = read_bytes(source)
    kind = sniff_format(data[:132])
    if kind is None:
        raise ImageDecodeError("Not a PNG, JPEG or DICOM file.")
    if kind == DICOM:
        return _decode_dicom(data, max_pixels=max_pixels)
    return _decode_raster(data, kind, max_pixels=max_pixels)


def _decode_raster(data: bytes, kind: str, *, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"The image has {width}x{height} pixels, more than the limit of {max_pixels:,}."
                )
            image.load()
            image = ImageOps.exif_transpose(image)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"The {kind} file is damaged or truncated: {error}") from error
    except Image.DecompressionBombWarning as error:
        raise ImageDecodeError(f"The {kind} image is too large to decode safely: {error}") from error
    return _to_gray_unit(image)


def _to_gray_unit(image: Image.Image) -> np.ndarray:
    """Grayscale in [0, 1] without losing 16-bit precision; transparency is flattened onto black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "I":
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        return np.clip(values / top, 0.0, 1.0)
    if image.mode == "F":
        return _min_max(np.asarray(image, dtype=np.float32))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    if image.mode != "L":
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
        return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
    return np.asarray(image, dtype=np.float32) / 255.0


def _decode_dicom(data: bytes, *, max_pixels: int) -> np.ndarray:
    try:
        return _dicom_to_gray_unit(data, max_pixels=max_pixels)
    except ImageDecodeError:
        raise
    except Exception as error:  # pydicom reads lazily and raises many types for damaged files
        raise ImageDecodeError(f"The DICOM file is damaged or not supported: {error}") from error


def _dicom_to_gray_unit(data: bytes, *, max_pixels: int) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" not in dataset:
        raise ImageDecodeError("The DICOM file has no image (no pixel data).")
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows * columns > max_pixels:
        raise ImageDecodeError(f"The DICOM image has {columns}x{rows} pixels, more than the limit.")
    pixels = dataset.pixel_array
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        pixels = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return _min_max(pixels)
    values = apply_modality_lut(pixels, dataset)
    values = apply_voi_lut(values, dataset, prefer_lut=True)
    gray = _min_max(np.asarray(values, dtype=np.float32))
    if photometric == "MONOCHROME1":
        gray = 1.0 - gray
    return gray


def _min_max(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min(initial=0)), float(values.max(initial=0))
    if high <= low:
        return np.zeros_like(values, dtype=np.float32)
    return (values - low) / (high - low)
