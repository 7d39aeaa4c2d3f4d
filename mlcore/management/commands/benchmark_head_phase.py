"""``manage.py benchmark_head_phase --data DIR``: cached base features vs recomputing them each epoch."""

from django.core.management.base import BaseCommand

from mlcore.core.benchmarks import benchmark_head_phase


class Command(BaseCommand):
    help = "Time the head-only training phase with the frozen base's features cached once vs recomputed."

    def add_arguments(self, parser):
        parser.add_argument("--data", required=True)
        parser.add_argument("--image-size", type=int, default=224)
        parser.add_argument("--epochs", type=int, default=5)
        parser.add_argument("--batch-size", type=int, default=32)

    def handle(self, *args, **opts):
        result = benchmark_head_phase(
            opts["data"],
            image_size=opts["image_size"],
            epochs=opts["epochs"],
            batch_size=opts["batch_size"],
            log=self.stdout.write,
        )
        cached, recomputed = result["cached"], result["recomputed"]
        self.stdout.write(
            f"{result['images_train']} training and {result['images_validation']} validation images, "
            f"{result['epochs']} epochs, {opts['image_size']}px, one run of each in this process:\n"
            f"  cached:     total {cached['total_seconds']:.1f} s "
            f"(feature extraction {cached['feature_extraction_seconds']:.1f} s), "
            f"median epoch {cached['median_epoch_seconds']:.3f} s\n"
            f"  recomputed: total {recomputed['total_seconds']:.1f} s, "
            f"median epoch {recomputed['median_epoch_seconds']:.3f} s\n"
            f"  recomputed / cached: {result['ratio_total']:.1f}x in total, "
            f"{result['ratio_median_epoch']:.0f}x per epoch"
        )
