"""``manage.py benchmark_worker``: a real worker's scans per second, per stage, against the network's own."""

from django.core.management.base import BaseCommand, CommandError

from diagnosis.benchmarks import (
    STAGE_WORDS,
    STAGES,
    BenchmarkError,
    images_from_folder,
    images_generated,
    worker_benchmark_run,
)


class Command(BaseCommand):
    help = (
        "Upload N images as scans (generated, or from --images) to a real Celery worker of its own, time them "
        "until every result and heatmap is written, and compare with the network's batch-8 throughput."
    )

    def add_arguments(self, parser):
        parser.add_argument("--scans", type=int, default=256, help="How many scans to upload (default 256).")
        parser.add_argument("--images", help="Folder of X-rays to upload in turn (default: generated images).")
        parser.add_argument("--size", type=int, default=1024, help="Side of the generated images in pixels.")
        parser.add_argument("--batch-size", type=int, help="The worker's COVIDXRAY_SCAN_BATCH_SIZE.")
        parser.add_argument("--timeout", type=float, default=1800, help="Seconds to wait for the scans.")

    def handle(self, *args, **opts):
        if opts["scans"] < 1:
            raise CommandError("--scans must be at least 1.")
        environment = {"COVIDXRAY_SCAN_BATCH_SIZE": str(opts["batch_size"])} if opts["batch_size"] else {}
        try:
            if opts["images"]:
                images = images_from_folder(opts["images"], count=opts["scans"])
            else:
                images = images_generated(count=opts["scans"], size=opts["size"])
            result = worker_benchmark_run(
                images=images, timeout=opts["timeout"], worker_environment=environment, log=self.stdout.write
            )
        except BenchmarkError as error:
            raise CommandError(str(error)) from error
        self.report(result)

    def report(self, result) -> None:
        write = self.stdout.write
        head = result.headline
        write(
            f"{result.scans} scans end to end in {result.seconds:.1f} s (uploads took {result.upload_seconds:.1f} s): "
            f"{head['scans_per_second']:.2f} scans/s"
        )
        write(
            f"Network alone, batch 8: {result.network['probabilities']:.1f} images/s; the worker's fused pass "
            f"(reading, gate, Grad-CAM), batch 8: {result.network['fused_read']:.1f} images/s"
        )
        write(f"Headline: the worker delivers {head['share_of_network']:.0%} of the network's batch-8 throughput")
        outcomes = ", ".join(f"{count} {status}" for status, count in result.outcomes.items())
        write(f"Outcomes: {outcomes}; batch size median {result.batch_sizes['median']:.0f}")
        write(
            f"Upload to result and heatmap: median {result.latency['median']:.0f} ms, "
            f"p95 {result.latency['p95']:.0f} ms"
        )
        write(f"{'per scan, ms':40} {'median':>9} {'p95':>9}")
        for stage in STAGES:
            figures = result.stages[stage]
            write(f"{STAGE_WORDS[stage]:40} {figures['median']:9.1f} {figures['p95']:9.1f}")
        write(f"The worker's log: {result.worker_log}")
