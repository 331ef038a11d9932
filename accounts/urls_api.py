from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/login", api.LoginApi.as_view(), name="api-login"),
    path("auth/logout", api.LogoutApi.as_view(), name="api-logout"),
    path("auth/me", api.MeApi.as_view(), name="api-me"),
]
