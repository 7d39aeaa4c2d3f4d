"""Inference in this process: batches, results, heatmaps, failures, claims and model reloading."""

import datetime
import io
import re
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from diagnosis.models import Scan
from diagnosis.services import inference
from diagnosis.services.inference import NO_MODEL_MESSAGE, scans_claim, scans_diagnose
from diagnosis.services.scans import scan_create, scans_requeue_stale
from mlcore import inference as mlcore_inference
from mlcore.core.classes import class_set, reading_call
from mlcore.core.imaging import decode_image
from mlcore.core.predictor import display_gray, gray_png
from mlcore.core.preprocessing import PreprocessingSpec, load_image
from mlcore.services import model_version_activate
from tests.conftest import THREE_CLASSES, TINY
from tests.diagnosis.conftest import xray_png, xray_upload

pytestmark = pytest.mark.django_db


def upload(patient, doctor, seed=0, size=96) -> Scan:
    return scan_create(patient=patient, image=xray_upload(seed=seed, size=size), uploaded_by=doctor)


def test_waiting_scans_are_diagnosed_together_with_results_timings_and_heatmaps(make_version, patient, doctor):
    version = make_version()
    scans = [upload(patient, doctor, seed=n) for n in range(3)]

    done = scans_diagnose(first_scan_id=scans[1].pk)

    assert sorted(done) == sorted(scan.pk for scan in scans)
    for scan in scans:
        scan.refresh_from_db()
        assert scan.status == Scan.Status.DONE
        assert scan.model_version == version
        assert scan.threshold == 0.5
        assert 0.0 <= scan.probability <= 1.0
        assert scan.label == ("COVID" if scan.probability >= 0.5 else "NORMAL")
        assert scan.batch_size == 3
        assert scan.attempts == 1
        assert scan.queue_wait_ms >= 0
        assert scan.preprocess_ms > 0
        assert scan.network_ms > 0
        assert scan.total_ms >= scan.queue_wait_ms
        for field in (scan.preview, scan.heatmap):
            with field.open("rb") as handle:
                image = Image.open(io.BytesIO(handle.read()))
            assert image.format == "PNG"
            assert image.size == (96, 96)
        assert scan.claim_token == ""


def test_a_three_class_version_stores_every_class_and_calls_by_the_one_rule(make_version, patient, doctor):
    version = make_version("tiny-3", class_names=THREE_CLASSES)
    version.threshold = 0.99  # a threshold the untrained network stays under: a negative call
    version.save(update_fields=["threshold"])
    scans = [upload(patient, doctor, seed=n) for n in range(2)]

    scans_diagnose(first_scan_id=scans[0].pk)

    classes = class_set(THREE_CLASSES, "COVID")
    for scan in scans:
        scan.refresh_from_db()
        assert set(scan.probabilities) == set(THREE_CLASSES)
        assert sum(scan.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert scan.probability == scan.probabilities["COVID"]
        call = reading_call(scan.probabilities, classes=classes, threshold=0.99)
        assert (scan.label, scan.result) == (call.class_name, call.result)
        assert scan.label == max(["OTHER_PNEUMONIA", "NORMAL"], key=scan.probabilities.get)


CLAHE = TINY | {"intensity": "percentile", "letterbox": True, "equalization": "clahe"}


@pytest.mark.parametrize("preprocessing", [TINY, CLAHE], ids=["legacy-rule", "clahe"])
def test_inference_reads_exactly_what_training_would_read(make_version, patient, doctor, monkeypatch, preprocessing):
    make_version(preprocessing=preprocessing)
    scan = upload(patient, doctor, seed=4)
    seen = []
    real_read = mlcore_inference.Predictor.read

    def spy(self, images):
        seen.append(images.copy())
        return real_read(self, images)

    monkeypatch.setattr(mlcore_inference.Predictor, "read", spy)

    scans_diagnose(first_scan_id=scan.pk)

    expected = load_image(xray_png(seed=4), PreprocessingSpec.from_stored(preprocessing))
    assert np.array_equal(seen[-1][0], expected)  # the last call; the first ones are warm-ups


def test_without_an_active_model_scans_wait_with_a_clear_status(patient, doctor):
    scan = upload(patient, doctor)

    assert scans_diagnose(first_scan_id=scan.pk) == []

    scan.refresh_from_db()
    assert scan.status == Scan.Status.PENDING
    assert scan.status_message == NO_MODEL_MESSAGE


def test_a_file_damaged_after_upload_fails_with_a_clear_message(make_version, patient, doctor):
    make_version()
    broken, fine = upload(patient, doctor, seed=1), upload(patient, doctor, seed=2)
    with broken.image.storage.open(broken.image.name, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    done = scans_diagnose(first_scan_id=broken.pk)

    broken.refresh_from_db()
    fine.refresh_from_db()
    assert done == [fine.pk]
    assert broken.status == Scan.Status.FAILED
    assert broken.status_message.startswith("The image cannot be read")
    assert fine.status == Scan.Status.DONE


def test_a_scan_is_claimed_once(make_version, patient, doctor):
    scan = upload(patient, doctor)

    first_token, first = scans_claim(first_scan_id=scan.pk, limit=8)
    second_token, second = scans_claim(first_scan_id=scan.pk, limit=8)

    assert [s.pk for s in first] == [scan.pk]
    assert second == []
    assert first_token != second_token


def test_a_result_is_not_written_by_a_worker_that_lost_its_claim(make_version, patient, doctor, monkeypatch):
    make_version()
    scan = upload(patient, doctor)
    real = inference._diagnose_claimed

    def lose_claim_then_continue(claimed, token, version, predictor, **options):
        Scan.objects.filter(pk=scan.pk).update(claim_token="someone-else")
        return real(claimed, token, version, predictor, **options)

    monkeypatch.setattr(inference, "_diagnose_claimed", lose_claim_then_continue)

    assert scans_diagnose(first_scan_id=scan.pk) == []
    scan.refresh_from_db()
    assert scan.status == Scan.Status.PROCESSING
    assert scan.label == ""


def test_a_scan_held_by_a_dead_worker_is_taken_back_after_its_lease(make_version, patient, doctor):
    scan = upload(patient, doctor)
    scans_claim(first_scan_id=scan.pk, limit=1)
    Scan.objects.filter(pk=scan.pk).update(claimed_until=timezone.now() - datetime.timedelta(seconds=1))

    scans_requeue_stale()

    scan.refresh_from_db()
    assert scan.status == Scan.Status.PENDING
    assert scan.claim_token == ""
    make_version()
    assert scans_diagnose(first_scan_id=scan.pk) == [scan.pk]


def test_a_scan_that_keeps_killing_workers_is_given_up(make_version, patient, doctor):
    make_version()
    scan = upload(patient, doctor)
    Scan.objects.filter(pk=scan.pk).update(attempts=inference.MAX_ATTEMPTS)

    assert scans_diagnose(first_scan_id=scan.pk) == []

    scan.refresh_from_db()
    assert scan.status == Scan.Status.FAILED
    assert "Gave up" in scan.status_message


def test_the_predictor_loads_once_and_reloads_when_the_active_version_changes(make_version, patient, doctor):
    first = make_version("first")
    loads_before = mlcore_inference.load_count
    for seed in range(2):
        scans_diagnose(first_scan_id=upload(patient, doctor, seed=seed).pk)
    assert mlcore_inference.load_count == loads_before + 1
    loaded_once = mlcore_inference.load_count
    scans_diagnose(first_scan_id=upload(patient, doctor, seed=3).pk)
    assert mlcore_inference.load_count == loaded_once

    second = make_version("second", activate=False)
    model_version_activate(version=second)
    latest = upload(patient, doctor, seed=5)
    scans_diagnose(first_scan_id=latest.pk)

    assert mlcore_inference.load_count == loaded_once + 1
    assert mlcore_inference.predictor_for(second).network_reused  # the same network file as the first's
    latest.refresh_from_db()
    assert latest.model_version == second
    assert Scan.objects.filter(model_version=first).count() == 3


def test_activating_a_version_queues_the_scans_that_waited(
    make_version, patient, doctor, monkeypatch, django_capture_on_commit_callbacks
):
    from diagnosis.services import scans as scan_services

    queued = []
    monkeypatch.setattr(scan_services, "queue_scan", queued.append)
    waiting = [upload(patient, doctor, seed=n) for n in range(2)]
    scans_diagnose(first_scan_id=waiting[0].pk)
    assert queued == []

    with django_capture_on_commit_callbacks(execute=True):
        make_version()

    assert queued == [waiting[0].pk]
    assert sorted(scans_diagnose(first_scan_id=queued[0])) == sorted(scan.pk for scan in waiting)


def test_a_task_takes_batch_after_batch_while_full_ones_wait(make_version, patient, doctor):
    make_version()
    scans = [upload(patient, doctor, seed=n) for n in range(5)]

    done = scans_diagnose(first_scan_id=scans[0].pk, batch_size=2)

    assert sorted(done) == sorted(scan.pk for scan in scans)
    assert sorted(Scan.objects.values_list("batch_size", flat=True)) == [1, 2, 2, 2, 2]


def test_a_batchs_results_are_written_in_one_update_after_the_claim(make_version, patient, doctor):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    make_version()
    scans = [upload(patient, doctor, seed=n) for n in range(3)]
    scans_diagnose(first_scan_id=scans[0].pk)  # loads the model; its queries are not counted
    scans = [upload(patient, doctor, seed=n) for n in range(3, 6)]

    with CaptureQueriesContext(connection) as queries:
        scans_diagnose(first_scan_id=scans[0].pk)

    updates = [
        q["sql"] for q in queries.captured_queries if re.match(r"UPDATE [`\"]diagnosis_scan[`\"] SET", q["sql"])
    ]
    assert len(updates) == 2  # the claim, then every result of the batch
    assert Scan.objects.filter(status=Scan.Status.DONE).exclude(heatmap="").count() == 6


def test_a_scan_taken_over_mid_batch_keeps_the_other_workers_claim_and_the_rest_are_written(
    make_version, patient, doctor, monkeypatch
):
    make_version()
    kept, taken = upload(patient, doctor, seed=1), upload(patient, doctor, seed=2)
    real = inference._diagnose_claimed

    def lose_one_claim_then_continue(claimed, token, version, predictor, **options):
        Scan.objects.filter(pk=taken.pk).update(claim_token="someone-else")
        return real(claimed, token, version, predictor, **options)

    monkeypatch.setattr(inference, "_diagnose_claimed", lose_one_claim_then_continue)
    derived = Path(settings.MEDIA_ROOT) / "scans" / "derived"
    before = set(derived.iterdir()) if derived.exists() else set()

    assert scans_diagnose(first_scan_id=kept.pk) == [kept.pk]

    kept.refresh_from_db()
    taken.refresh_from_db()
    assert kept.status == Scan.Status.DONE
    assert (taken.status, taken.claim_token, taken.label, taken.preview.name) == (
        Scan.Status.PROCESSING,
        "someone-else",
        "",
        "",
    )
    written = {path.name for path in set(derived.iterdir()) - before}
    assert written == {Path(kept.preview.name).name, Path(kept.heatmap.name).name}  # the taken scan's are gone


def test_every_batch_logs_where_its_time_went(make_version, patient, doctor, caplog):
    from diagnosis.benchmarks import batch_timings_read

    make_version()
    scans = [upload(patient, doctor, seed=n) for n in range(2)]

    with caplog.at_level("INFO", logger="diagnosis.services.inference"):
        scans_diagnose(first_scan_id=scans[0].pk)

    [record] = batch_timings_read(caplog.text)
    assert sorted(record["scans"]) == sorted(scan.pk for scan in scans)
    assert record["per_batch"]["network"] > 0
    assert record["per_batch"]["database"] > 0
    for scan in scans:
        assert set(record["per_scan"][str(scan.pk)]) == {
            "decode",
            "preprocess",
            "preview",
            "heatmap",
            "overlay",
            "files",
        }


def test_an_upload_that_already_is_its_own_preview_is_stored_as_it_came(make_version, patient, doctor):
    make_version()
    as_is = upload(patient, doctor, seed=7)
    sixteen_bit = io.BytesIO()
    Image.fromarray((np.random.default_rng(2).random((90, 90)) * 65535).astype(np.uint16)).save(sixteen_bit, "PNG")
    re_encoded = scan_create(
        patient=patient, image=SimpleUploadedFile("deep.png", sixteen_bit.getvalue()), uploaded_by=doctor
    )

    scans_diagnose(first_scan_id=as_is.pk)

    as_is.refresh_from_db()
    re_encoded.refresh_from_db()
    with as_is.preview.open("rb") as handle:
        assert handle.read() == xray_png(seed=7)
    with re_encoded.preview.open("rb") as handle:
        preview = Image.open(io.BytesIO(handle.read()))
    assert (preview.mode, preview.size) == ("L", (90, 90))


def test_a_12_bit_png_is_previewed_with_full_contrast_by_a_version_that_windows_its_input(
    make_version, patient, doctor
):
    make_version(preprocessing=PreprocessingSpec.current(**TINY).as_dict())
    twelve_bit = io.BytesIO()
    Image.fromarray(np.tile(np.linspace(0, 4095, 120), (90, 1)).astype(np.uint16)).save(twelve_bit, "PNG")
    scan = scan_create(
        patient=patient, image=SimpleUploadedFile("deep.png", twelve_bit.getvalue()), uploaded_by=doctor
    )
    eight_bit = upload(patient, doctor, seed=3, size=1100)  # larger than shown, so re-encoded

    scans_diagnose(first_scan_id=scan.pk)

    scan.refresh_from_db()
    eight_bit.refresh_from_db()
    with scan.preview.open("rb") as handle:
        preview = np.asarray(Image.open(io.BytesIO(handle.read())))
    assert (preview.min(), preview.max()) == (0, 255)
    with eight_bit.preview.open("rb") as handle:
        stored = handle.read()
    assert stored == gray_png(display_gray(decode_image(xray_png(seed=3, size=1100))))


def test_an_image_that_fails_after_decoding_fails_alone_and_the_batch_completes(
    make_version, patient, doctor, monkeypatch
):
    make_version()
    fine, failing = upload(patient, doctor, seed=1, size=96), upload(patient, doctor, seed=2, size=120)
    real_layer = inference.heat_layer_png

    def layer_failing_for_the_larger_image(heatmap, *, size):
        if size == (120, 120):
            raise ValueError("cannot blend this image")
        return real_layer(heatmap, size=size)

    monkeypatch.setattr(inference, "heat_layer_png", layer_failing_for_the_larger_image)

    assert scans_diagnose(first_scan_id=fine.pk) == [fine.pk]
    fine.refresh_from_db()
    failing.refresh_from_db()
    assert fine.status == Scan.Status.DONE
    assert fine.heatmap
    assert failing.status == Scan.Status.FAILED
    assert failing.status_message == "The image could not be processed: cannot blend this image"
    assert failing.claim_token == ""
