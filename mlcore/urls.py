from django.urls import path

from mlcore import views

app_name = "mlcore"

urlpatterns = [
    path("plots/<int:pk>.png", views.plot_image, name="plot_image"),
]
