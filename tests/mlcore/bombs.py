"""Small files that cost a lot to decode: deflated DICOMs, multi-frame DICOMs and flat-coloured rasters.

Built by streaming, so making a bomb never costs what opening it naively would. Used by the tests and by
scripts/upload_memory.py, which measures what each costs the web process.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

ZEROS = bytes(1024 * 1024)


def dicom_header_dataset(*, rows: int, columns: int, frames: int = 1, samples: int = 1, **attributes) -> Dataset:
    """The attributes of a 16-bit image, without its pixel data."""
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "CR"
    ds.PatientID = "BOMB-001"
    ds.PatientName = "Bomb^Test"
    ds.ViewPosition = "PA"
    ds.StudyDate = "20260101"
    ds.Rows, ds.Columns = rows, columns
    if frames > 1:
        ds.NumberOfFrames = str(frames)
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "RGB" if samples == 3 else "MONOCHROME2"
    if samples > 1:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for name, value in attributes.items():
        setattr(ds, name, value)
    return ds


def deflated_dicom(dataset: Dataset, pixel_data: bytes | int) -> bytes:
    """A Part 10 file in Deflated Explicit VR Little Endian: `dataset`, then PixelData.

    `pixel_data` is the bytes themselves, or a count of zero bytes that is compressed without ever being held.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    head.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, dataset)

    length = pixel_data if isinstance(pixel_data, int) else len(pixel_data)
    length += length % 2
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [head.getvalue(), compressor.compress(body.getvalue())]
    parts.append(compressor.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length)))
    if isinstance(pixel_data, int):
        remaining = length
        while remaining:
            chunk = ZEROS[: min(remaining, len(ZEROS))]
            parts.append(compressor.compress(chunk))
            remaining -= len(chunk)
    else:
        parts.append(compressor.compress(pixel_data + b"\x00" * (length - len(pixel_data))))
    parts.append(compressor.flush())
    return b"".join(parts)


def deflated_dicom_bomb() -> bytes:
    """About 300 KB that inflate to about 300 MB: a 16-bit image of 12,000 x 12,000 pixels, all black."""
    rows = columns = 12_000
    return deflated_dicom(dicom_header_dataset(rows=rows, columns=columns), rows * columns * 2)


def deflated_multiframe_bomb(frames: int = 50) -> bytes:
    """A 2048 x 2048 image (4 megapixels, under any pixel limit) with `frames` frames: 400 MB at 50."""
    rows = columns = 2048
    header = dicom_header_dataset(rows=rows, columns=columns, frames=frames)
    return deflated_dicom(header, rows * columns * frames * 2)


def flat_raster(*, kind: str = "PNG", size: tuple[int, int] = (3000, 2000)) -> bytes:
    """A flat colour picture: 6 megapixels of RGB in 22 KB of PNG (or 95 KB of JPEG)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 40, 40)).save(buffer, format=kind, optimize=True)
    return buffer.getvalue()
