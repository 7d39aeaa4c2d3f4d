"""Wait until the load test's uploaded scans have finished, then print their figures as JSON.

Run by run.py: `outcome.py IDS_FILE TIMEOUT_SECONDS`.
"""

import json
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
import django

django.setup()

from django.db.models import Max, Min  # noqa: E402

from diagnosis.models import Scan  # noqa: E402

FINISHED = [Scan.Status.DONE, Scan.Status.FAILED]


def outcome(ids: list[int], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Scan.objects.filter(pk__in=ids).exclude(status__in=FINISHED).exists():
            break
        time.sleep(2)
    scans = Scan.objects.filter(pk__in=ids)
    done = scans.filter(status=Scan.Status.DONE)
    span = done.aggregate(first=Min("started_at"), last=Max("finished_at"))
    return {
        "uploaded": len(ids),
        "done": done.count(),
        "failed": scans.filter(status=Scan.Status.FAILED).count(),
        "unfinished": scans.exclude(status__in=FINISHED).count(),
        "seconds": (span["last"] - span["first"]).total_seconds() if span["first"] else None,
        "network_ms": list(done.values_list("network_ms", flat=True)),
        "total_ms": list(done.values_list("total_ms", flat=True)),
        "queue_wait_ms": list(done.values_list("queue_wait_ms", flat=True)),
        "batch_sizes": list(done.values_list("batch_size", flat=True)),
    }


if __name__ == "__main__":
    ids = [int(line) for line in pathlib.Path(sys.argv[1]).read_text().split()]
    print(json.dumps(outcome(ids, float(sys.argv[2]))))
