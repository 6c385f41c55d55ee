"""Django app configuration: autodiscover workflows, register checks, set up logging."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SquidmeshConfig(AppConfig):
    name = "squidmesh"
    verbose_name = _("Workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from squidmesh import checks  # noqa: F401 - registers the system checks
        from squidmesh.registry import registry
        from squidmesh.runtime.context import install_log_record_factory

        install_log_record_factory()
        registry.autodiscover()
