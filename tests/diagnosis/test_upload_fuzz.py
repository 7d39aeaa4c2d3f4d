"""Hostile uploads: the upload validator answers every mutated file with a verdict in bounded memory."""

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import given
from hypothesis import strategies as st

from diagnosis.validators import CheckedUpload, validate_xray_upload
from tests.memory import peak_memory
from tests.mlcore.test_imaging_fuzz import FUZZ, MAX_PEAK_BYTES, SEEDS, mutated


@pytest.mark.parametrize("name", sorted(SEEDS))
@FUZZ
@given(data=st.data(), filename=st.sampled_from(["chest.png", "chest.jpg", "scan.dcm", "x.PNG", "noext"]))
def test_every_mutated_upload_is_accepted_or_refused_with_a_message(name, data, filename):
    damaged = data.draw(mutated(SEEDS[name]))
    upload = SimpleUploadedFile(filename, damaged, content_type="image/png")
    verdict, messages = None, []
    with peak_memory() as peak:
        try:
            verdict = validate_xray_upload(upload)
        except ValidationError as error:
            messages = error.messages
    assert peak.traced < MAX_PEAK_BYTES, peak
    assert peak.resident < MAX_PEAK_BYTES, peak
    if verdict is None:
        assert messages
        assert all(message.strip() for message in messages)
    else:
        assert isinstance(verdict, CheckedUpload)
        assert verdict.file_type in ("PNG", "JPEG", "DICOM")
        assert verdict.width > 0
        assert verdict.height > 0
