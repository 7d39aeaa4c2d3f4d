"""manage.py benchmark_worker: its timing arithmetic, its messages for bad input, and a small real run."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from accounts.models import User
from diagnosis.benchmarks import (
    STAGE_WORDS,
    BenchmarkError,
    batch_timings_read,
    headline,
    images_from_folder,
    images_generated,
    stages_per_scan,
    summary,
)
from diagnosis.models import Patient, Scan
from diagnosis.services.inference import BATCH_TIMINGS
from mlcore.core.imaging import decode_image
from tests.diagnosis.conftest import xray_png, xray_upload


def test_median_and_95th_percentile_interpolate_between_values():
    figures = summary([float(v) for v in range(1, 101)])

    assert figures["median"] == 50.5
    assert figures["p95"] == pytest.approx(95.05)


def test_no_values_give_no_figures_rather_than_an_error():
    figures = summary([])

    assert figures["median"] != figures["median"]  # NaN


def test_a_batchs_network_and_database_time_is_shared_among_its_scans_and_other_scans_are_left_out():
    batches = [
        {
            "scans": [1, 2],
            "per_batch": {"network": 100.0, "database": 20.0},
            "per_scan": {"1": {"decode": 5.0, "overlay": 7.0}, "2": {"decode": 6.0}},
        },
        {  # the warm-up scan 9 is not one of the benchmark's
            "scans": [9, 3],
            "per_batch": {"network": 60.0, "database": 10.0},
            "per_scan": {"9": {"decode": 50.0}, "3": {"decode": 4.0, "files": 2.0}},
        },
    ]

    stages = stages_per_scan(batches, queue_wait_ms={1: 10.0, 2: 20.0, 3: 30.0})

    assert stages["network"] == [50.0, 50.0, 30.0]
    assert stages["database"] == [10.0, 10.0, 5.0]
    assert stages["decode"] == [5.0, 6.0, 4.0]
    assert stages["overlay"] == [7.0, 0.0, 0.0]
    assert stages["files"] == [0.0, 0.0, 2.0]
    assert stages["queue_wait"] == [10.0, 20.0, 30.0]


def test_only_the_workers_batch_timing_lines_are_read():
    record = {"scans": [4], "per_batch": {"network": 1.5}, "per_scan": {"4": {"decode": 2.0}}}
    log = "\n".join(
        [
            "[2026-11-25 10:00:00,000: INFO/MainProcess] celery@host ready.",
            f"[2026-11-25 10:00:01,000: INFO/ForkPoolWorker-1] {BATCH_TIMINGS}{json.dumps(record)}",
            "[2026-11-25 10:00:01,001: INFO/ForkPoolWorker-1] Scan 4 done: positive (COVID), p=0.900",
        ]
    )

    assert batch_timings_read(log) == [record]


def test_the_headline_is_scans_per_second_as_a_share_of_the_networks_own_throughput():
    figures = headline(scans=256, seconds=25.6, network_per_second=40.0)

    assert figures["scans_per_second"] == pytest.approx(10.0)
    assert figures["share_of_network"] == pytest.approx(0.25)


def test_generated_images_are_grayscale_pngs_of_the_asked_size():
    images = images_generated(count=2, size=300)

    assert len(images) == 2
    assert images[0][1] != images[1][1]
    for _, data in images:
        assert Image.open(io.BytesIO(data)).mode == "L"
        assert decode_image(data).shape == (300, 300)


def test_a_folder_without_a_readable_image_is_refused_with_the_reason(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    with pytest.raises(BenchmarkError, match="holds no readable PNG, JPEG or DICOM image"):
        images_from_folder(tmp_path, count=4)
    with pytest.raises(BenchmarkError, match="is not a folder"):
        images_from_folder(tmp_path / "missing", count=4)


def test_the_readable_images_of_a_folder_are_taken_in_turn(tmp_path):
    (tmp_path / "a.png").write_bytes(xray_png(seed=1))
    (tmp_path / "b.png").write_bytes(xray_png(seed=2))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)

    images = images_from_folder(tmp_path, count=5)

    assert [name for name, _ in images] == ["a.png", "b.png", "a.png", "b.png", "a.png"]


@pytest.mark.django_db
def test_the_command_stops_with_a_message_when_no_version_is_active():
    with pytest.raises(CommandError, match="No model version is active"):
        call_command("benchmark_worker", "--scans", "2", stdout=io.StringIO())


@pytest.mark.django_db
def test_the_command_stops_with_a_message_for_a_folder_without_images(make_version, tmp_path):
    make_version()
    (tmp_path / "notes.txt").write_text("not an image")

    with pytest.raises(CommandError, match="holds no readable PNG, JPEG or DICOM image"):
        call_command("benchmark_worker", "--images", str(tmp_path), stdout=io.StringIO())


@pytest.mark.django_db
def test_the_command_will_not_run_while_patients_scans_wait(make_version, patient, doctor):
    from diagnosis.services.scans import scan_create

    make_version()
    waiting = scan_create(patient=patient, image=xray_upload(seed=1), uploaded_by=doctor)

    with pytest.raises(CommandError, match="1 patients' scans are waiting"):
        call_command("benchmark_worker", "--scans", "2", stdout=io.StringIO())

    waiting.refresh_from_db()
    assert waiting.status == Scan.Status.PENDING
    assert User.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_small_real_run_reports_every_stage_and_leaves_no_rows_behind(make_version, patient):
    make_version()
    out = io.StringIO()

    call_command("benchmark_worker", "--scans", "3", "--size", "160", "--timeout", "300", stdout=out)

    report = out.getvalue()
    assert "3 scans end to end" in report
    assert "scans/s" in report
    assert "Network alone, batch 8:" in report
    assert "3 done" in report
    for words in STAGE_WORDS.values():
        line = next(line for line in report.splitlines() if line.startswith(words))
        assert "nan" not in line
    assert list(Patient.objects.all()) == [patient]
    assert list(User.objects.all()) == [patient.created_by]
    assert not Scan.objects.exists()
