"""Plot images of model versions, for staff only: sample grids show patients' radiographs."""

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse
from django.shortcuts import get_object_or_404

from mlcore.models import Plot


@staff_member_required
def plot_image(request, pk: int):
    plot = get_object_or_404(Plot, pk=pk)
    response = FileResponse(plot.image.open("rb"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    return response
