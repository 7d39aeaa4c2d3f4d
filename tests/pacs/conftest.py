"""Fixtures for the PACS tests: the group PACS patients are shared with, and a view of the stored files."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group


@pytest.fixture
def radiology(make_doctor) -> Group:
    """The default share group with one approved doctor in it."""
    group = Group.objects.create(name="Radiology")
    group.user_set.add(make_doctor(email="radiologist@hospital.example", full_name="Wilhelm Roentgen"))
    return group


@pytest.fixture
def stored_files():
    """Files in the scans storage now; call it again to compare (other tests' files stay put)."""
    from diagnosis.models import Scan

    root = Path(Scan._meta.get_field("image").storage.location)

    def listing() -> set[Path]:
        return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()

    return listing


@pytest.fixture
def read_dicom_scan(make_version, radiology):
    """A DX instance received from the PACS and read positive by the tiny version, with a heatmap."""
    import numpy as np
    from django.core.files.base import ContentFile

    from diagnosis.models import Scan
    from mlcore.core.predictor import heat_layer_png
    from pacs.services.receive import instance_receive
    from tests.diagnosis.conftest import xray_png
    from tests.pacs.dicom import radiograph_dicom

    version = make_version(activate=False)
    scan = instance_receive(data=radiograph_dicom(patient_id="PACS-0100"), calling_ae_title="ORTHANC").scan
    scan.status = Scan.Status.DONE
    scan.result = Scan.Result.POSITIVE
    scan.label = "COVID"
    scan.probability = 0.83
    scan.probabilities = {"COVID": 0.83, "NORMAL": 0.17}
    scan.threshold = 0.5
    scan.model_version = version
    heat = np.zeros((96, 96), np.float32)
    heat[:, 48:] = 1.0  # hot on the image's left half as shown (the patient's right), cold on the other
    scan.preview.save("preview.png", ContentFile(xray_png(seed=4)), save=False)
    scan.heatmap.save("gradcam.png", ContentFile(heat_layer_png(heat, size=(96, 96))), save=False)
    scan.save()
    return scan
