"""Django app configuration: autodiscover workflows, register checks, set up logging, cron and the relay."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SquidmeshConfig(AppConfig):
    name = "squidmesh"
    verbose_name = _("Workflows")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.signals import setting_changed

        from squidmesh import checks  # noqa: F401 - registers the system checks
        from squidmesh.conf import reload_on_setting_changed
        from squidmesh.registry import registry
        from squidmesh.runtime import delivery
        from squidmesh.runtime.context import install_log_record_factory

        install_log_record_factory()
        setting_changed.connect(reload_on_setting_changed, dispatch_uid="squidmesh.conf.reload")
        delivery.connect()  # django-q2's pre_execute: the queue row a worker runs
        registry.autodiscover()
        self._connect_cron()
        self._connect_relay()

    def _connect_relay(self) -> None:
        from django_q.signals import post_spawn

        from squidmesh.runtime import relay

        # Each qcluster worker may become its machine's outbox relay
        # (non-transactional brokers only; docs/architecture.md).
        post_spawn.connect(relay.start_in_worker, dispatch_uid="squidmesh.runtime.relay")

    def _connect_cron(self) -> None:
        from django.db.models.signals import post_migrate, pre_save
        from django_q.models import Schedule

        from squidmesh.cron_schedules import receivers

        # Keep the cron schedules in step with the workflows on every deploy.
        post_migrate.connect(
            receivers.sync_after_migrate, sender=self, dispatch_uid="squidmesh.schedules.sync"
        )
        pre_save.connect(
            receivers.align_next_run,
            sender=Schedule,
            dispatch_uid="squidmesh.schedules.align_next_run",
        )
