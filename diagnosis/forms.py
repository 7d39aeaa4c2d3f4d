from django import forms
from django.conf import settings

from diagnosis.models import Patient, Review, Scan
from mlcore.core.imaging import ImageDecodeError, read_image_size


class PatientForm(forms.ModelForm):
    class Meta:
        model = Patient
        fields = ["mrn", "full_name", "date_of_birth", "sex", "contact", "notes"]
        widgets = {
            "date_of_birth": forms.DateInput(attrs={"type": "date"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }
        error_messages = {"mrn": {"unique": "Another patient already has this medical record number."}}


class PatientShareForm(forms.Form):
    email = forms.EmailField(
        label="Doctor's e-mail address", help_text="The doctor sees, edits and reviews this patient's scans."
    )


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files in one field (Django's documented pattern)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".png,.jpg,.jpeg,.dcm,.dicom,image/*"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if not data:  # an empty list would otherwise pass as "no files, no error"
            single(None, initial)
            return []
        if isinstance(data, list | tuple):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class ScanUploadForm(forms.Form):
    images = MultipleFileField(
        label="Chest X-ray images",
        help_text="PNG, JPEG or DICOM; several at once if you like.",
        error_messages={"required": "Choose at least one image to upload."},
    )
    view = forms.ChoiceField(choices=Scan.View.choices, required=False, label="View")
    acquisition_date = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Acquired on"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # upload.js refuses a too large file before sending it
        self.fields["images"].widget.attrs["data-max-bytes"] = settings.SCAN_MAX_UPLOAD_BYTES

    def clean_images(self):
        """All the images of one request within its pixel budget, counted from their headers before any decoding.

        Each image is decoded once to be checked, so the budget bounds the work one request can ask for.
        An unreadable header does not count here: that file's own check refuses it, saying why.
        """
        images = self.cleaned_data["images"]
        total = 0
        for image in images:
            try:
                total += read_image_size(image, max_pixels=settings.SCAN_MAX_PIXELS).pixels
            except ImageDecodeError:
                continue
        budget = settings.SCAN_MAX_REQUEST_PIXELS
        if total > budget:
            raise forms.ValidationError(
                f"These {len(images)} images hold {total / 1e6:,.0f} megapixels together; one upload may hold "
                f"at most {budget / 1e6:,.0f} megapixels. Upload them in smaller groups.",
                code="request_pixels",
            )
        return images


class ReviewForm(forms.Form):
    agrees_with_model = forms.TypedChoiceField(
        label="Do you agree with the model?",
        choices=[("yes", "Agree"), ("no", "Disagree")],
        coerce=lambda value: value == "yes",
        widget=forms.RadioSelect,
    )
    final_finding = forms.ChoiceField(label="Final finding", choices=Review.Finding.choices)
    comment = forms.CharField(label="Comment", required=False, widget=forms.Textarea(attrs={"rows": 3}))
