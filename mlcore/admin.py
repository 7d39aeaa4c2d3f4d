"""Staff inspect model versions (metrics, plots, data) and choose the active one here."""

import json

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import content_disposition_header
from django.utils.safestring import mark_safe
from django.utils.text import slugify
from django.views.decorators.http import require_GET

from covidxray.spreadsheets import spreadsheet_csv_lines
from mlcore.core.evaluation import CONFOUNDED_SOURCE, is_confounded, single_class_sources
from mlcore.core.provenance import MEMBERSHIP_COLUMNS, membership_rows, stored_membership
from mlcore.model_card import model_version_card
from mlcore.models import ActiveModelVersion, Evaluation, ModelVersion
from mlcore.reporting import (
    called_positive_rows,
    confounding_text,
    evidence_description,
    images_text,
    interval,
    number,
    patient_interval,
    shortcut_audit_of,
    shortcut_rows,
    view_check_line,
)
from mlcore.selectors import evaluation_best_evidence, model_version_active
from mlcore.services import evaluation_kind_set, model_version_activate


def plots_html(plots) -> str:
    return (
        format_html_join(
            "",
            '<figure style="display:inline-block;margin:0 12px 12px 0;vertical-align:top">'
            '<img src="{}" alt="{}" style="max-width:520px;border:1px solid #ddd">'
            "<figcaption>{}</figcaption></figure>",
            ((reverse("mlcore:plot_image", args=[p.pk]), p.title, p.title) for p in plots),
        )
        or "—"
    )


def metrics_table(metrics: dict) -> str:
    if metrics.get("out_of_distribution"):
        return refusals_table(metrics)
    if "n" not in metrics:  # only what fit_input_gate measured, on a version stored without test figures
        return format_html(
            '<table style="min-width:480px">{}</table>',
            format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", reliability_rows(metrics)),
        )
    positive = metrics.get("positive_class")
    against = f" ({positive} against the rest)" if positive and len(metrics.get("class_names") or ()) > 2 else ""
    rows = [
        ("Images", images_text(metrics)),
        ("Threshold", number(metrics.get("threshold"))),
        (f"AUC{against}", number(metrics.get("auc"))),
        ("AUC, 95% interval by patient", patient_interval(metrics, "auc") or "—"),
        ("Accuracy (every class)" if against else "Accuracy", number(metrics.get("accuracy"))),
        ("Sensitivity (95% CI)", interval(metrics.get("sensitivity"))),
        ("Sensitivity, 95% interval by patient", patient_interval(metrics, "sensitivity") or "—"),
        ("Specificity (95% CI)", interval(metrics.get("specificity"))),
        ("Specificity, 95% interval by patient", patient_interval(metrics, "specificity") or "—"),
        *called_positive_rows(metrics),
        ("PPV in this set (95% CI)", interval(metrics.get("ppv"))),
        ("NPV in this set (95% CI)", interval(metrics.get("npv"))),
        ("Brier score", number(metrics.get("brier_score"))),
        ("Expected calibration error", number(metrics.get("expected_calibration_error"))),
        *reliability_rows(metrics),
    ]
    note = ""
    if (metrics.get("bootstrap") or {}).get("method"):
        note = format_html(
            "<p>CI: Wilson interval, images counted as independent. {}</p>", metrics["bootstrap"]["method"]
        )
    return format_html(
        '<table style="min-width:480px">{}</table>{}',
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows),
        note,
    )


def confusion_table(metrics: dict) -> str:
    """Every class against every class: counts, and the share of each true class in brackets."""
    matrix = metrics.get("confusion_matrix")
    if not matrix or not metrics.get("n"):
        return "—"
    labels = matrix["labels"]
    percent = matrix.get("percent_of_true_class") or [[None] * len(labels)] * len(labels)
    head = format_html_join("", "<th>called {}</th>", ((name,) for name in labels))
    body = format_html_join(
        "",
        "<tr><th>{}</th>{}</tr>",
        (
            (
                f"true {name}",
                format_html_join(
                    "",
                    "<td>{} ({})</td>",
                    (
                        (count, "—" if share is None else f"{share:.1f}%")
                        for count, share in zip(counts, shares, strict=True)
                    ),
                ),
            )
            for name, counts, shares in zip(labels, matrix["counts"], percent, strict=True)
        ),
    )
    return format_html("<table><thead><tr><th></th>{}</tr></thead><tbody>{}</tbody></table>", head, body)


def shortcut_html(version) -> str:
    audit = shortcut_audit_of(version)
    if not audit:
        return "This version was trained before the shortcut audit: no baselines were measured."
    return format_html(
        '<p>{}</p><table style="min-width:480px">{}</table>',
        "How far the images alone, without the network, tell the classes and the sources apart. A pixel-only "
        "baseline close to the model's AUC, or a source classifier far above chance, means the test split can "
        "be scored by exposure, framing or text marks: the model's figures then overstate what it has learnt.",
        format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", shortcut_rows(audit)),
    )


def reliability_rows(metrics: dict) -> list[tuple[str, str]]:
    """Calibration, the indeterminate band and the gate's refusals, where an evaluation has them."""
    rows = []
    calibration = metrics.get("calibration")
    if calibration:
        rows.append(
            (
                "Calibration error before / after calibration",
                f"{number(calibration.get('ece_before'))} / {number(calibration.get('ece_after'))}",
            )
        )
    abstention = metrics.get("abstention")
    if abstention:
        outside = abstention.get("outside") or {}
        rows += [
            ("Indeterminate (in the band)", interval(abstention.get("share_in_band"))),
            ("Sensitivity outside the band", interval(outside.get("sensitivity"))),
            ("Specificity outside the band", interval(outside.get("specificity"))),
        ]
    gate = metrics.get("gate")
    if gate:
        rows.append(("Refused by the input gate", gate.get("unavailable") or interval(gate.get("refused"))))
        for name, part in (gate.get("per_class") or {}).items():
            rows.append((f"  refused, {name}", interval(part.get("refused", part))))
    return rows


def refusals_table(metrics: dict) -> str:
    """An input-gate check on folders of images the model must refuse: the share refused per folder."""
    gate = metrics.get("gate") or {}
    rows = [
        (
            name,
            interval(part.get("refused")),
            interval(part.get("refused_by_view_check")) if gate.get("view_check_fitted") else "not fitted",
            interval(part.get("called_positive_if_not_refused")),
        )
        for name, part in (gate.get("per_class") or {}).items()
    ]
    return format_html(
        '<table style="min-width:480px"><tr><th>folder</th><th>refused by the gate</th>'
        "<th>by the view check alone</th><th>of the rest, called positive</th></tr>{}"
        "<tr><th>all</th><td>{}</td><td></td><td></td></tr></table>",
        format_html_join("", "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        interval(gate.get("refused")),
    )


def reliability_html(version) -> str:
    """How the version was taught to doubt itself: calibration, the band and the gate, as fitted."""
    reliability = version.reliability or {}
    if not reliability:
        return format_html(
            "<p>{}</p>",
            "This version was trained before calibration, the indeterminate band and the input gate existed: "
            "its probabilities are uncalibrated, it never answers indeterminate, and scans it reads are checked "
            "by DICOM header and colour only (the scan page says so).",
        )
    calibration = reliability.get("calibration", {})
    band = reliability.get("indeterminate_band", {})
    gate = reliability.get("gate", {})
    heatmap = reliability.get("heatmap", {})
    band_text = (
        f"{number(band.get('low'))} to {number(band.get('high'))}"
        if band.get("low") is not None
        else "none (no validation calls near the threshold were wrong often enough)"
    )
    rows = [
        ("Calibration", calibration.get("method", "")),
        ("Temperature", number(calibration.get("temperature"))),
        (
            "Validation ECE before / after",
            f"{number(calibration.get('validation_ece_before'))} / {number(calibration.get('validation_ece_after'))}",
        ),
        ("Indeterminate band (calibrated P)", band_text),
        ("Band rule", band.get("rule", "")),
        ("Input gate", gate.get("method", "") if version.gate_file else "No stored gate statistics."),
        ("Gate limit (score)", number(gate.get("limit"))),
        ("Limits set on", limits_set_on(gate)),
        ("Validation images refused by the gate", f"{100 * (gate.get('validation_refused') or 0):.1f}%"),
        ("View check (lateral views, CT without a header)", view_check_line(gate).removeprefix("  view check: ")),
        ("Heatmap scale", f"{number(heatmap.get('scale'))} ({heatmap.get('rule', '')})"),
    ]
    return format_html(
        '<table style="min-width:480px">{}</table>', format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
    )


def limits_set_on(gate: dict) -> str:
    if gate.get("calibration") != "cross-validated":
        return "the validation split alone (a gate fitted before the cross-validated limits)"
    return (
        f"{gate['calibration_images']} held-out images ({gate['folds']}-fold out-of-fold training scores and the "
        f"validation split), of which the gate refuses {100 * gate['calibration_refused']:.1f}%"
    )


def report_table(metrics: dict) -> str:
    report = metrics.get("classification_report")
    if not report:
        return "—"
    body = format_html_join(
        "",
        "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                name,
                number(row["precision"]),
                number(row["recall"]),
                number(row["f1-score"]),
                int(row["support"]),
            )
            for name, row in report.items()
            if isinstance(row, dict)
        ),
    )
    return format_html(
        "<table><thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
        "</tr></thead><tbody>{}</tbody>"
        "<tfoot><tr><th>accuracy</th><td colspan=4>{}</td></tr></tfoot></table>",
        body,
        number(report.get("accuracy")),
    )


def per_source_table(metrics: dict) -> str:
    sources = metrics.get("per_source")
    if not sources:
        return "—"
    single_class = single_class_sources(metrics)
    body = format_html_join(
        "",
        "<tr><th>{}</th><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                source,
                _source_images(part),
                " ".join(filter(None, (number(part.get("auc")), patient_interval(part, "auc")))),
                number(part.get("accuracy")),
                interval(part.get("sensitivity")),
                interval(part.get("specificity")),
                CONFOUNDED_SOURCE if source in single_class else "",
            )
            for source, part in sources.items()
        ),
    )
    return format_html(
        "<table><thead><tr><th>source</th><th>images</th><th>AUC</th><th>accuracy</th>"
        "<th>sensitivity (95% CI)</th><th>specificity (95% CI)</th><th>confounding</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        body,
    )


def _source_images(part: dict) -> str:
    counts = part.get("class_counts")
    if counts is None:
        return f"{part['n']} ({part['positives']}+/{part['negatives']}-)"
    return f"{part['n']} (" + ", ".join(f"{name} {count}" for name, count in counts.items() if count) + ")"


def confounding_html(metrics: dict) -> str:
    """The sources with one class, as a warning; a plain line when there are none (or no sources)."""
    if not metrics.get("per_source"):
        return "No sources recorded: confounding by source cannot be checked."
    if not is_confounded(metrics):
        return "Every source has more than one class."
    return format_html('<p class="errornote" style="margin:0">{}</p>', confounding_text(single_class_sources(metrics)))


def evidence_html(evaluation: Evaluation | None) -> str:
    if evaluation is None:
        return "No evaluation with both classes at this version's threshold: scan pages give no figures."
    evidence = evidence_description(evaluation)
    notes = [evidence[key] for key in ("warning", "confounded", "band") if evidence[key]]
    return format_html(
        '<p style="margin:0">Figures from {} (evaluation {}).</p>{}',
        evidence["text"],
        evaluation.pk,
        format_html_join("", '<p class="errornote" style="margin:4px 0 0">{}</p>', ((note,) for note in notes)),
    )


def pretty_json(value) -> str:
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', json.dumps(value, indent=2))


HISTORY_COLUMNS = [
    "phase",
    "loss",
    "accuracy",
    "auc",
    "val_loss",
    "val_accuracy",
    "val_auc",
    "epoch_seconds",
]


def _history_row_labels(history: dict) -> list[tuple]:
    """(epoch,) per row, or (network, epoch) for an ensemble, whose epochs restart at each network."""
    networks = history.get("member")
    if not networks:
        return [(epoch + 1,) for epoch in range(len(history["loss"]))]
    labels, epoch = [], 0
    for row, network in enumerate(networks):
        epoch = 1 if row == 0 or network != networks[row - 1] else epoch + 1
        labels.append((network + 1, epoch))
    return labels


def _cell(value):
    return number(value) if isinstance(value, float) else value


class EvaluationInline(admin.StackedInline):
    model = Evaluation
    extra = 0
    can_delete = False
    fields = (
        "kind",
        "data_dir",
        "created_at",
        "threshold",
        "summary",
        "confounding",
        "confusion",
        "classification_report",
        "per_source",
        "plots",
    )
    readonly_fields = fields
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="metrics")
    def summary(self, evaluation):
        return metrics_table(evaluation.metrics)

    @admin.display(description="confounding")
    def confounding(self, evaluation):
        return confounding_html(evaluation.metrics)

    @admin.display(description="confusion matrix")
    def confusion(self, evaluation):
        return confusion_table(evaluation.metrics)

    @admin.display(description="classification report")
    def classification_report(self, evaluation):
        return report_table(evaluation.metrics)

    @admin.display(description="per source")
    def per_source(self, evaluation):
        return per_source_table(evaluation.metrics)

    @admin.display(description="plots")
    def plots(self, evaluation):
        return plots_html(evaluation.plots.all())


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "status",
        "is_active",
        "created_at",
        "test_auc",
        "test_sensitivity",
        "test_specificity",
        "threshold_display",
        "evidence_kind",
        "wall_time",
    )
    list_filter = ("status",)
    search_fields = ("name",)
    actions = ["activate_selected"]
    inlines = [EvaluationInline]
    readonly_fields = (
        "name",
        "status",
        "is_active",
        "created_at",
        "finished_at",
        "heartbeat_at",
        "command",
        "error",
        "model_card_link",
        "provenance_summary",
        "wall_time",
        "images_per_second",
        "threshold_display",
        "threshold_rule",
        "reliability_summary",
        "evidence",
        "evaluations_link",
        "monitoring_link",
        "test_metrics",
        "test_confounding",
        "test_confusion",
        "classification_report",
        "per_source",
        "shortcut_audit_table",
        "validation_summary",
        "training_plots",
        "model_summary_table",
        "dataset_table",
        "skipped_files",
        "hyperparameters_json",
        "history_json",
        "environment_json",
        "model_file",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "status",
                    "is_active",
                    "created_at",
                    "finished_at",
                    "heartbeat_at",
                    "command",
                    "error",
                    "model_card_link",
                )
            },
        ),
        ("Evidence and monitoring", {"fields": ("evidence", "evaluations_link", "monitoring_link")}),
        (
            "Test split",
            {
                "fields": (
                    "threshold_display",
                    "threshold_rule",
                    "test_metrics",
                    "test_confounding",
                    "test_confusion",
                    "classification_report",
                    "per_source",
                )
            },
        ),
        ("Shortcut audit", {"fields": ("shortcut_audit_table",)}),
        ("Calibration, indeterminate band and input gate", {"fields": ("reliability_summary",)}),
        ("Validation split", {"fields": ("validation_summary",)}),
        ("Training", {"fields": ("wall_time", "images_per_second", "training_plots", "history_json")}),
        (
            "Model",
            {
                "fields": (
                    "model_summary_table",
                    "model_file",
                    "hyperparameters_json",
                    "environment_json",
                    "provenance_summary",
                )
            },
        ),
        ("Data", {"fields": ("dataset_table", "skipped_files")}),
    )

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        card = self.admin_site.admin_view(require_GET(self.model_card_view))
        membership = self.admin_site.admin_view(require_GET(self.membership_view))
        return [
            path("<int:version_id>/card/", card, name="mlcore_modelversion_card"),
            path("<int:version_id>/membership/", membership, name="mlcore_modelversion_membership"),
            *super().get_urls(),
        ]

    def membership_view(self, request, version_id: int):
        """Every file of every split as CSV (split, path, sha256): to audit the data or retrain on the same split."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=version_id)
        members = stored_membership(version.provenance)
        if not members:
            raise Http404("This version was trained before split membership was stored.")
        filename = f"{slugify(version.name) or version.pk}-split-membership.csv"
        return StreamingHttpResponse(
            spreadsheet_csv_lines(MEMBERSHIP_COLUMNS, membership_rows(members)),
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": content_disposition_header(True, filename)},
        )

    def model_card_view(self, request, version_id: int):
        """The version's model card, laid out to print (intended use, data, figures, audit, provenance, limits)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=version_id)
        card = model_version_card(version=version)
        evidence = card["evidence"]
        context = self.admin_site.each_context(request) | {
            "title": f"Model card: {version.name}",
            "opts": self.model._meta,
            "card": card,
            "version": version,
            "test_metrics": metrics_table(version.metrics),
            "test_per_source": per_source_table(version.metrics),
            "evidence_text": evidence_html(evidence),
            "evidence_metrics": metrics_table(evidence.metrics) if evidence is not None else "",
            "reliability": reliability_html(version),
        }
        return TemplateResponse(request, "admin/mlcore/modelversion/model_card.html", context)

    @admin.display(description="model card")
    def model_card_link(self, version):
        url = reverse("admin:mlcore_modelversion_card", args=[version.pk])
        return format_html('<a href="{}">Model card (printable)</a>', url)

    @admin.display(description="provenance")
    def provenance_summary(self, version):
        provenance = version.provenance or {}
        if not provenance:
            return "Not recorded (trained before provenance was stored)."
        code, data = provenance.get("code") or {}, provenance.get("data") or {}
        download = ""
        if stored_membership(provenance):
            url = reverse("admin:mlcore_modelversion_membership", args=[version.pk])
            download = format_html(' <a href="{}">Download the split membership (CSV)</a>', url)
        return format_html(
            "commit {}{}; {} files, split digest {}; seeds {}{}",
            code.get("commit") or "unknown",
            " (with uncommitted changes)" if code.get("dirty") else "",
            data.get("files"),
            data.get("digest"),
            json.dumps(provenance.get("seeds") or {}),
            download,
        )

    @admin.display(description="fitted on the validation split")
    def reliability_summary(self, version):
        return reliability_html(version)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("evaluations")

    def has_delete_permission(self, request, obj=None):
        if obj is not None and model_version_active() == obj:
            return False
        return super().has_delete_permission(request, obj)

    @admin.action(description="Activate the selected version", permissions=["change"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        try:
            model_version_activate(version=queryset.get(), activated_by=request.user)
        except ValidationError as error:
            self.message_user(request, "; ".join(error.messages), messages.ERROR)
            return
        self.message_user(
            request, f"Activated version {queryset.get().name}: it diagnoses new scans.", messages.SUCCESS
        )

    @admin.display(boolean=True, description="active")
    def is_active(self, version):
        return ActiveModelVersion.objects.filter(version=version).exists()

    @admin.display(description="test AUC")
    def test_auc(self, version):
        return number(version.metrics.get("auc"))

    @admin.display(description="sensitivity")
    def test_sensitivity(self, version):
        return number((version.metrics.get("sensitivity") or {}).get("value"))

    @admin.display(description="specificity")
    def test_specificity(self, version):
        return number((version.metrics.get("specificity") or {}).get("value"))

    @admin.display(description="threshold")
    def threshold_display(self, version):
        return number(version.threshold)

    @admin.display(description="training time")
    def wall_time(self, version):
        return "—" if version.wall_time_seconds is None else f"{version.wall_time_seconds / 60:.1f} min"

    @admin.display(description="metrics")
    def test_metrics(self, version):
        return metrics_table(version.metrics)

    @admin.display(description="figures quoted on scan pages")
    def evidence(self, version):
        return evidence_html(
            evaluation_best_evidence(evaluations=version.evaluations.all(), threshold=version.threshold)
        )

    @admin.display(description="scan pages quote")
    def evidence_kind(self, version):
        evaluation = evaluation_best_evidence(evaluations=version.evaluations.all(), threshold=version.threshold)
        return "nothing" if evaluation is None else evaluation.get_kind_display()

    @admin.display(description="evaluations")
    def evaluations_link(self, version):
        url = reverse("admin:mlcore_evaluation_changelist") + f"?version__id__exact={version.pk}"
        return format_html('<a href="{}">Mark this version\'s evaluations as local or external</a>', url)

    @admin.display(description="monitoring")
    def monitoring_link(self, version):
        """By URL name only: the page is the diagnosis app's, and mlcore never imports diagnosis."""
        url = reverse("admin:diagnosis_scan_monitoring", args=[version.pk])
        return format_html('<a href="{}">Monitoring from doctors\' reviews</a>', url)

    @admin.display(description="confounding")
    def test_confounding(self, version):
        return confounding_html(version.metrics)

    @admin.display(description="confusion matrix")
    def test_confusion(self, version):
        return confusion_table(version.metrics)

    @admin.display(description="classification report")
    def classification_report(self, version):
        return report_table(version.metrics)

    @admin.display(description="baselines beside the model")
    def shortcut_audit_table(self, version):
        return shortcut_html(version)

    @admin.display(description="per source")
    def per_source(self, version):
        return per_source_table(version.metrics)

    @admin.display(description="metrics")
    def validation_summary(self, version):
        return metrics_table(version.validation_metrics)

    @admin.display(description="plots")
    def training_plots(self, version):
        return plots_html(version.plots.filter(evaluation__isnull=True))

    @admin.display(description="summary")
    def model_summary_table(self, version):
        summary = version.model_summary
        if not summary:
            return "—"
        return format_html_join(
            mark_safe("<br>"), "{}: {}", ((key.replace("_", " "), value) for key, value in summary.items())
        )

    @admin.display(description="images per class and split")
    def dataset_table(self, version):
        summary = version.dataset_summary
        if not summary.get("per_split"):
            return "—"
        classes = summary["class_names"]
        head = format_html_join("", "<th>{}</th>", ((name,) for name in classes))
        body = format_html_join(
            "",
            "<tr><th>{}</th>{}</tr>",
            (
                (split, format_html_join("", "<td>{}</td>", ((counts[c],) for c in classes)))
                for split, counts in summary["per_split"].items()
            ),
        )
        return format_html(
            "<p>{}</p><table><thead><tr><th>split</th>{}</tr></thead><tbody>{}</tbody></table>",
            summary["root"],
            head,
            body,
        )

    @admin.display(description="skipped files")
    def skipped_files(self, version):
        skipped = version.dataset_summary.get("skipped") or []
        if not skipped:
            return "none"
        return format_html(
            "<p>{} file(s)</p><ul>{}</ul>",
            len(skipped),
            format_html_join("", "<li>{}: {}</li>", ((s["path"], s["reason"]) for s in skipped)),
        )

    @admin.display(description="hyperparameters")
    def hyperparameters_json(self, version):
        return pretty_json(version.hyperparameters)

    @admin.display(description="history per epoch")
    def history_json(self, version):
        history = version.history
        if not history.get("loss"):
            return "—"
        columns = [c for c in HISTORY_COLUMNS if c in history]
        networks = history.get("member")  # an ensemble's: which network each row belongs to
        labels = ["network", "epoch"] if networks else ["epoch"]
        head = format_html_join("", "<th>{}</th>", ((c.replace("_", " "),) for c in [*labels, *columns]))
        rows = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (
                    format_html_join(
                        "", "<td>{}</td>", [(cell,) for cell in first] + [(_cell(history[c][row]),) for c in columns]
                    ),
                )
                for row, first in enumerate(_history_row_labels(history))
            ),
        )
        best = history.get("member_best_epochs") or [history.get("best_epoch")]
        return format_html(
            "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table><p>Best epoch{}: {}</p>",
            head,
            rows,
            " of each network" if networks else "",
            ", ".join("—" if epoch is None else str(epoch + 1) for epoch in best),
        )

    @admin.display(description="environment")
    def environment_json(self, version):
        return pretty_json(version.environment)


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    """Staff say here which evaluations are on this hospital's own images (local) and which are external."""

    list_display = (
        "pk",
        "version",
        "kind",
        "data_dir",
        "created_at",
        "images",
        "sensitivity",
        "specificity",
        "confounding",
    )
    list_filter = ("kind", "version")
    list_select_related = ("version",)
    actions = ["mark_local", "mark_external"]
    fields = ("version", "kind", "data_dir", "created_at", "threshold", "summary", "confounding", "per_source")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    @admin.action(description="Mark as local (this hospital's images)", permissions=["change"])
    def mark_local(self, request, queryset):
        self._mark(request, queryset, Evaluation.Kind.LOCAL)

    @admin.action(description="Mark as external", permissions=["change"])
    def mark_external(self, request, queryset):
        self._mark(request, queryset, Evaluation.Kind.EXTERNAL)

    def _mark(self, request, queryset, kind):
        marked = 0
        for evaluation in queryset:
            try:
                evaluation_kind_set(evaluation=evaluation, kind=kind)
            except ValidationError as error:
                self.message_user(request, "; ".join(error.messages), messages.ERROR)
            else:
                marked += 1
        if marked:
            label = Evaluation.Kind(kind).label
            self.message_user(request, f"{marked} evaluation(s) marked: {label}.", messages.SUCCESS)

    @admin.display(description="images")
    def images(self, evaluation):
        return evaluation.metrics.get("n")

    @admin.display(description="sensitivity")
    def sensitivity(self, evaluation):
        return interval(evaluation.metrics.get("sensitivity"))

    @admin.display(description="specificity")
    def specificity(self, evaluation):
        return interval(evaluation.metrics.get("specificity"))

    @admin.display(description="confounding")
    def confounding(self, evaluation):
        return confounding_html(evaluation.metrics)

    @admin.display(description="metrics")
    def summary(self, evaluation):
        return metrics_table(evaluation.metrics)

    @admin.display(description="per source")
    def per_source(self, evaluation):
        return per_source_table(evaluation.metrics)


@admin.register(ActiveModelVersion)
class ActiveModelVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "activated_at", "activated_by")
    readonly_fields = ("version", "activated_at", "activated_by")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
