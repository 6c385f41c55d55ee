"""The harness serves no pages."""

urlpatterns: list = []
