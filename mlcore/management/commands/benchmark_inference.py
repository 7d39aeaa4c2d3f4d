"""``manage.py benchmark_inference --data DIR``: every inference path on the same images, in one run."""

import numpy as np
from django.core.management.base import CommandError

from mlcore.core.benchmarks import benchmark_inference
from mlcore.core.dataset import discover_dataset, load_images
from mlcore.core.inference import load_model
from mlcore.core.preprocessing import PreprocessingSpec
from mlcore.inference import predictor_for
from mlcore.management.versions import VersionCommand
from mlcore.services import local_model_file


class Command(VersionCommand):
    help = "Latency and throughput of the naive path, the worker's path and the TFLite exports."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--data", required=True, help="Labelled folder; every image is used for AUC.")
        parser.add_argument("--latency-images", type=int, default=40, help="Single-image calls per path.")
        parser.add_argument("--throughput-images", type=int, default=128)
        parser.add_argument("--threads", type=int, default=0, help="TFLite threads (0: all cores).")

    def handle(self, *args, **opts):
        version = self.model_version(opts["version"])
        if not version.is_usable:
            raise CommandError("No usable model version: train one, or pass --version NAME.")
        spec = PreprocessingSpec.from_stored(version.preprocessing)
        dataset = discover_dataset(opts["data"])
        images, items, _ = load_images(dataset.items, spec, root=dataset.root)
        labels = np.array([1 if item.label == version.positive_class else 0 for item in items])
        order = np.random.default_rng(0).permutation(len(images))
        with local_model_file(version) as path:
            model = load_model(path)
        tflite = {}
        for export in version.tflite_exports.all():
            with export.model_file.open("rb") as handle:
                tflite[export.quantization] = handle.read()
        self.stdout.write(
            f"{version.name} at {spec.image_size}x{spec.image_size}; {len(images)} images for AUC; "
            f"TFLite exports: {', '.join(tflite) or 'none (manage.py export_tflite)'}"
        )
        results = benchmark_inference(
            model=model,
            predictor=predictor_for(version),
            tflite_models=tflite,
            latency_images=images[order[: opts["latency_images"]]],
            throughput_images=images[order[: opts["throughput_images"]]],
            auc_images=images,
            auc_labels=labels,
            positive_index=version.class_names.index(version.positive_class),
            threads=opts["threads"] or None,
            log=self.stdout.write,
        )
        self.stdout.write(
            f"{'path':36} {'b1 median':>10} {'b1 p95':>8} {'x naive':>8} {'b8 img/s':>9} {'b32 img/s':>9} {'AUC':>7}"
        )
        for name, entry in results.items():
            b1 = entry["batch_1"]
            self.stdout.write(
                f"{name:36} {b1['median_ms']:8.1f}ms {b1['p95_ms']:6.1f}ms {b1['ratio_to_naive']:8.2f} "
                f"{entry.get('throughput_batch_8', float('nan')):9.1f} "
                f"{entry.get('throughput_batch_32', float('nan')):9.1f} {entry.get('auc', float('nan')):7.4f}"
            )
