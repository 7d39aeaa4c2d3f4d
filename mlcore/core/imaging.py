"""Decode chest radiographs (PNG, JPEG, DICOM) into one grayscale float image in [0, 1].

The format is recognised from the content, never from the file name.
"""

from __future__ import annotations

import datetime
import io
import re
import struct
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PNG, JPEG, DICOM = "PNG", "JPEG", "DICOM"
DEFAULT_MAX_PIXELS = 60_000_000
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"
# A deflated DICOM is inflated this far to read its header, and its data set may hold this much beside its
# pixel data: far more than any radiograph's header needs, far less than a few hundred KB of zeros inflate to.
DICOM_HEADER_MAX_INFLATED_BYTES = 4 * 1024 * 1024
# Explicit-VR elements whose length takes four bytes (PS3.5 7.1.2); the others take two.
_LONG_LENGTH_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


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


def high_bit_depth(data: bytes) -> bool:
    """Whether the bytes are a PNG of 16 bits a sample (its IHDR, always the first chunk, says so).

    decode_image scales such a PNG by its format's full range, so 12-bit data arrives nearly black.
    """
    return data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and data[24:25] == b"\x10"


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


@dataclass(frozen=True)
class ImageSize:
    """What an image's header says it holds, read before anything is decoded."""

    kind: str
    width: int
    height: int
    frames: int = 1
    samples: int = 1
    bits_allocated: int = 8

    @property
    def pixels(self) -> int:
        """What the pixel limit counts: a DICOM's every frame and sample is stored, so each counts."""
        return self.width * self.height * self.frames * self.samples

    @property
    def pixel_bytes(self) -> int:
        return self.pixels * -(-self.bits_allocated // 8)


def decode_image(source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a 2-D float32 array in [0, 1] (0 = black), whatever the format and bit depth.

    The size in the header is held against `max_pixels` before anything is decoded.
    """
    data = read_bytes(source)
    kind = _kind(data)
    if kind == DICOM:
        return _dicom_guarded(_dicom_to_gray_unit, data, max_pixels=max_pixels)
    with raster_errors(kind):
        image = open_raster(data, kind, max_pixels=max_pixels)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
    return _to_gray_unit(image)


def check_image(source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageSize:
    """Decode at a fraction of decode_image's cost, to tell a readable image from a damaged one.

    The header's size is checked first; then a JPEG decodes at 1/8 scale (every coefficient is still read),
    a PNG into Pillow's own buffer with no float copies, a DICOM only its first frame's stored values.
    """
    data = read_bytes(source)
    kind = _kind(data)
    if kind == DICOM:
        return _dicom_guarded(_dicom_first_frame_checked, data, max_pixels=max_pixels)
    with raster_errors(kind):
        image = open_raster(data, kind, max_pixels=max_pixels)
        size = ImageSize(kind, *image.size)
        if kind == JPEG:
            image.draft("L", (max(1, size.width // 8), max(1, size.height // 8)))
        image.load()
    return size


def read_image_size(source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageSize:
    """The size from the header alone (nothing decoded, a deflated DICOM inflated only to its header)."""
    data = read_bytes(source)
    kind = _kind(data)
    if kind == DICOM:
        return _dicom_guarded(_dicom_header_size, data, max_pixels=max_pixels)
    with raster_errors(kind):
        return ImageSize(kind, *open_raster(data, kind, max_pixels=max_pixels).size)


def _kind(data: bytes) -> str:
    kind = sniff_format(data[:132])
    if kind is None:
        raise ImageDecodeError("Not a PNG, JPEG or DICOM file.")
    return kind


@contextmanager
def raster_errors(kind: str):
    """Pillow's many exception types as one clear ImageDecodeError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"The {kind} file is damaged or truncated: {error}") from error
    except Image.DecompressionBombWarning as error:
        raise ImageDecodeError(f"The {kind} image is too large to decode safely: {error}") from error


def open_raster(data: bytes, kind: str, *, max_pixels: int) -> Image.Image:
    """Opening reads only the header; the limit is checked before any pixel is decoded."""
    image = Image.open(io.BytesIO(data), formats=[kind])
    width, height = image.size
    if width * height > max_pixels:
        raise ImageDecodeError(f"The image has {width}x{height} pixels, more than the limit of {max_pixels:,}.")
    return image


def _to_gray_unit(image: Image.Image) -> np.ndarray:
    """Grayscale in [0, 1] without losing 16-bit precision; transparency is flattened onto black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _scaled(image, 65535.0)
    if image.mode == "I":
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        return np.clip(values / top, 0.0, 1.0)
    if image.mode == "F":
        return _min_max(np.array(image, dtype=np.float32))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    if image.mode != "L":
        return _luma(image if image.mode == "RGB" else image.convert("RGB"))
    return _scaled(image, 255.0)


def _scaled(image: Image.Image, top: float) -> np.ndarray:
    """One float plane, divided in place."""
    values = np.array(image, dtype=np.float32)
    values /= top
    return values


def _luma(rgb: Image.Image) -> np.ndarray:
    """ITU-R 601 luma of an RGB image, a band at a time: two float planes in memory rather than four."""
    gray = np.zeros((rgb.height, rgb.width), dtype=np.float32)
    for band, weight in enumerate((0.299, 0.587, 0.114)):
        channel = np.asarray(rgb.getchannel(band), dtype=np.float32)
        channel *= np.float32(weight / 255.0)
        gray += channel
    return gray


def _dicom_guarded(read, data: bytes, *, max_pixels: int):
    try:
        return read(data, max_pixels=max_pixels)
    except ImageDecodeError:
        raise
    except Exception as error:  # pydicom reads lazily and raises many types for damaged files
        raise ImageDecodeError(f"The DICOM file is damaged or not supported: {error}") from error


def _dicom_header_size(data: bytes, *, max_pixels: int) -> ImageSize:
    return _dicom_size(_read_dicom_header_dataset(data), max_pixels=max_pixels)


def _dicom_first_frame_checked(data: bytes, *, max_pixels: int) -> ImageSize:
    dataset = read_dicom_dataset(data, max_pixels=max_pixels)
    size = _dicom_size(dataset, max_pixels=max_pixels)
    _first_frame(dataset)
    return size


def _dicom_size(dataset, *, max_pixels: int) -> ImageSize:
    """Rows x Columns x frames x samples per pixel against the limit, and the bytes they take, before decoding."""
    if "PixelData" not in dataset and not ("Rows" in dataset and "Columns" in dataset):
        raise ImageDecodeError("The DICOM file has no image (no pixel data).")
    size = ImageSize(
        DICOM,
        width=int(dataset.get("Columns") or 0),
        height=int(dataset.get("Rows") or 0),
        frames=int(dataset.get("NumberOfFrames") or 1),
        samples=int(dataset.get("SamplesPerPixel") or 1),
        bits_allocated=int(dataset.get("BitsAllocated") or 16),
    )
    if min(size.width, size.height, size.frames, size.samples, size.bits_allocated) < 1:
        raise ImageDecodeError(f"The DICOM header gives no usable image size ({size.width}x{size.height}).")
    if size.pixels > max_pixels:
        layers = f" x {size.frames} frames" if size.frames > 1 else ""
        layers += f" x {size.samples} samples" if size.samples > 1 else ""
        raise ImageDecodeError(
            f"The DICOM image has {size.width}x{size.height} pixels{layers}, {size.pixels:,} values: "
            f"more than the limit of {max_pixels:,}."
        )
    if size.pixel_bytes > 2 * max_pixels:
        raise ImageDecodeError(
            f"The DICOM image takes {size.pixel_bytes:,} bytes at {size.bits_allocated} bits a value, more than "
            f"{2 * max_pixels:,} (16-bit values at the pixel limit)."
        )
    return size


def _first_frame(dataset) -> np.ndarray:
    """Only the first frame is decoded (a radiograph has one; the limit counted them all)."""
    dataset.pixel_array_options(index=0)
    return dataset.pixel_array


def _read_dicom_header_dataset(data: bytes):
    """The data set up to its pixel data; a deflated one inflated no further than its header needs."""
    syntax, start = _file_meta_syntax(data)
    if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        body, _ = _inflate(data, start=start, limit=DICOM_HEADER_MAX_INFLATED_BYTES)
        data = _explicit_vr_file(data, start=start, body=body)
    return _dcmread(data, stop_before_pixels=True)


def read_dicom_dataset(data: bytes, *, max_pixels: int):
    """The whole data set. A deflated one is inflated in full only when its header's image is within the
    limits, and then no further than that image needs: pydicom alone would inflate everything first, and a
    few hundred KB of zeros inflate to gigabytes.
    """
    syntax, start = _file_meta_syntax(data)
    if syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
        body, more = _inflate(data, start=start, limit=DICOM_HEADER_MAX_INFLATED_BYTES)
        if more:
            header = _dcmread(_explicit_vr_file(data, start=start, body=body), stop_before_pixels=True)
            size = _dicom_size(header, max_pixels=max_pixels)
            del header, body  # before inflating again, so the two never take memory together
            limit = DICOM_HEADER_MAX_INFLATED_BYTES + size.pixel_bytes
            body, more = _inflate(data, start=start, limit=limit)
            if more:
                raise ImageDecodeError(
                    f"The deflated DICOM inflates to more than its {size.width}x{size.height} image needs "
                    f"(over {limit / 1024**2:,.0f} MB); it was not read further."
                )
        data = _explicit_vr_file(data, start=start, body=body)
    return _dcmread(data)


def _dcmread(data: bytes, *, stop_before_pixels: bool = False):
    import pydicom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about every oddity it reads past
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)


def _file_meta_syntax(data: bytes) -> tuple[str, int]:
    """The transfer syntax and where the data set starts, from the file meta group (explicit VR) after 'DICM'."""
    position, syntax = 132, ""
    while position + 8 <= len(data):
        group, element, vr = struct.unpack_from("<HH2s", data, position)
        if group != 0x0002:
            break
        if vr in _LONG_LENGTH_VRS:
            if position + 12 > len(data):
                break
            header, length = 12, struct.unpack_from("<I", data, position + 8)[0]
        else:
            header, length = 8, struct.unpack_from("<H", data, position + 6)[0]
        if element == 0x0010:
            syntax = data[position + header : position + header + length].rstrip(b"\x00 ").decode("ascii", "replace")
        position += header + length
    return syntax, min(position, len(data))


def _inflate(data: bytes, *, start: int, limit: int) -> tuple[bytes, bool]:
    """The deflated data set from `start`, at most `limit` bytes of it, and whether it holds more."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        body = inflater.decompress(memoryview(data)[start:], limit + 1)
    except zlib.error as error:
        raise ImageDecodeError(f"The deflated DICOM data set is damaged: {error}") from error
    return body[:limit], len(body) > limit


def _explicit_vr_file(data: bytes, *, start: int, body: bytes) -> bytes:
    """The same file with `body`, the inflated data set, stored as Explicit VR Little Endian."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import read_dataset
    from pydicom.filewriter import write_file_meta_info
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset(read_dataset(io.BytesIO(data[132:start]), is_implicit_VR=False, is_little_endian=True))
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = DicomBytesIO()
    out.is_little_endian, out.is_implicit_VR = True, False
    out.write(data[:132])
    write_file_meta_info(out, meta, enforce_standard=True)
    out.write(body)
    return out.getvalue()


def _dicom_to_gray_unit(data: bytes, *, max_pixels: int) -> np.ndarray:
    dataset = read_dicom_dataset(data, max_pixels=max_pixels)
    if "PixelData" not in dataset:
        raise ImageDecodeError("The DICOM file has no image (no pixel data).")
    _dicom_size(dataset, max_pixels=max_pixels)
    pixels = _first_frame(dataset)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        gray = np.zeros(pixels.shape[:2], dtype=np.float32)
        for band, weight in enumerate((0.299, 0.587, 0.114)):
            gray += pixels[..., band].astype(np.float32) * np.float32(weight)
        return _min_max(gray)
    gray = _min_max(_lut_applied(pixels, dataset))
    if photometric == "MONOCHROME1":
        np.subtract(1.0, gray, out=gray)
    return gray


ROWS_PER_STRIP = 256


def _lut_applied(pixels: np.ndarray, dataset) -> np.ndarray:
    """Modality then VOI LUT into one float32 image, a strip of rows at a time.

    pydicom computes both in float64 over the whole image, with masks and copies (28 bytes a pixel, windowed);
    each maps pixel by pixel, so strips give the same values within a small working set.
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    gray = np.empty(pixels.shape, dtype=np.float32)
    for top in range(0, pixels.shape[0], ROWS_PER_STRIP):
        rows = slice(top, top + ROWS_PER_STRIP)
        gray[rows] = apply_voi_lut(apply_modality_lut(pixels[rows], dataset), dataset, prefer_lut=True)
    return gray


def _min_max(values: np.ndarray) -> np.ndarray:
    """`values`, a float32 array of the caller's that may be overwritten, scaled to [0, 1] in place."""
    np.nan_to_num(values, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min(initial=0)), float(values.max(initial=0))
    if high <= low:
        values[...] = 0.0
        return values
    values -= low
    values /= high - low
    return values


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM header says about the patient and the study; blank where it says nothing."""

    patient_name: str = ""
    patient_id: str = ""
    study_date: datetime.date | None = None
    view_position: str = ""
    modality: str = ""
    body_part: str = ""
    view_text: str = ""  # ViewPosition as written (view_position keeps only PA or AP)
    manufacturer: str = ""
    station_name: str = ""


def read_dicom_header(source: str | Path | bytes | BinaryIO) -> DicomHeader:
    """Read the header only, so the first few hundred KiB of a file are enough to offer its details on upload.

    An element cut off by the end of the data counts as absent rather than being shown half-read.
    """
    data = read_bytes(source)
    if sniff_format(data[:132]) != DICOM:
        raise ImageDecodeError("Not a DICOM file: there is no 'DICM' marker at byte 128.")
    try:
        dataset = _read_dicom_header_dataset(data)
    except ImageDecodeError:
        raise
    except Exception as error:  # pydicom raises many types for damaged headers
        raise ImageDecodeError(f"The DICOM header is damaged: {error}") from error
    if not getattr(dataset, "file_meta", None):
        raise ImageDecodeError("The DICOM header is damaged: it has no file meta information.")
    name = _dicom_value(dataset, "PatientName")
    return DicomHeader(
        patient_name=_readable_person_name(name) if name is not None else "",
        patient_id=_dicom_text(dataset, "PatientID"),
        study_date=_dicom_date(_dicom_text(dataset, "StudyDate")),
        view_position=_chest_view(_dicom_text(dataset, "ViewPosition")),
        modality=_dicom_text(dataset, "Modality"),
        body_part=_dicom_text(dataset, "BodyPartExamined"),
        view_text=_dicom_text(dataset, "ViewPosition"),
        manufacturer=_dicom_text(dataset, "Manufacturer"),
        station_name=_dicom_text(dataset, "StationName"),
    )


def _dicom_value(dataset, keyword: str):
    """The first value of an element, or None when it is missing, cut off or unreadable."""
    from pydicom.multival import MultiValue

    if keyword not in dataset:
        return None
    raw = dataset.get_item(keyword)
    raw_value, length = getattr(raw, "value", None), getattr(raw, "length", 0)
    if isinstance(raw_value, bytes) and length != 0xFFFFFFFF and len(raw_value) < length:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = dataset[keyword].value
    except Exception:  # a value pydicom cannot convert is as good as absent here
        return None
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    return value


def _dicom_text(dataset, keyword: str) -> str:
    value = _dicom_value(dataset, keyword)
    return "" if value is None else str(value).strip()


def _readable_person_name(value) -> str:
    """Write "Family^Given^Middle" as "Family, Given Middle", the way a doctor reads a name."""
    from pydicom.valuerep import PersonName

    name = value if isinstance(value, PersonName) else PersonName(str(value))
    given = " ".join(part.strip() for part in (name.given_name, name.middle_name) if part.strip())
    readable = ", ".join(part for part in (name.family_name.strip(), given) if part)
    return readable or " ".join(re.split(r"[\^=]+", str(value))).strip()


def _dicom_date(text: str) -> datetime.date | None:
    digits = text.replace(".", "")  # old ACR-NEMA headers write YYYY.MM.DD
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _chest_view(text: str) -> str:
    """PA or AP from ViewPosition (also "AP SUPINE" and the like); other projections are not chest views."""
    first_word = re.split(r"[^A-Z]+", text.upper().strip())[0]
    return first_word if first_word in ("PA", "AP") else ""
