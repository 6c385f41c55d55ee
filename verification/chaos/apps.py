from django.apps import AppConfig


class ChaosConfig(AppConfig):
    name = "verification.chaos"
    label = "chaos"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from verification.chaos import receivers

        receivers.connect()
