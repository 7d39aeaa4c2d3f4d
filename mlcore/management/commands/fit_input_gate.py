"""``manage.py fit_input_gate --data DIR [--version V]``: fit a stored version's input gate anew."""

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from mlcore.core.dataset import DatasetError, data_folders, parse_class_aliases
from mlcore.core.gate import DEFAULT_QUANTILE
from mlcore.management.versions import VersionCommand
from mlcore.reporting import refusal_lines, view_check_line
from mlcore.services import model_version_gate_refit


class Command(VersionCommand):
    help = (
        "Fit the input gate of a stored version (the active one by default) on the folder it was trained on, "
        "with the same split: for versions trained before the gate existed, or with an older gate."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--data",
            action="append",
            required=True,
            help="A folder the version was trained on; repeat --data as train_model took it.",
        )
        parser.add_argument("--classes", help="Map folders to classes, as train_model took them.")
        parser.add_argument("--gate-quantile", type=float, default=DEFAULT_QUANTILE)
        parser.add_argument(
            "--refuse-examples",
            help="A folder of images the gate must refuse, one sub-folder per kind (e.g. CT/, LATERAL/): fits the "
            "view check (frontal vs these kinds) that catches lateral views without a DICOM header.",
        )

    def handle(self, *args, **opts):
        version = self.model_version(opts["version"])
        try:
            version = model_version_gate_refit(
                version=version,
                data_dir=data_folders(opts["data"]),
                quantile=opts["gate_quantile"],
                refuse_examples=opts["refuse_examples"],
                class_aliases=parse_class_aliases(opts["classes"]),
                log=self.stdout.write,
            )
        except (DatasetError, ValidationError, ValueError) as error:
            message = "; ".join(error.messages) if isinstance(error, ValidationError) else str(error)
            raise CommandError(message) from error
        self.stdout.write(f"Input gate of {version.name} fitted anew; on its test split:")
        self.stdout.write("\n".join(refusal_lines(version.metrics)))
        self.stdout.write(view_check_line((version.reliability or {}).get("gate") or {}))
