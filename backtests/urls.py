"""Server-rendered pages: backtests, sweeps and schedules."""

from django.urls import URLPattern

app_name = "backtests"

urlpatterns: list[URLPattern] = []
