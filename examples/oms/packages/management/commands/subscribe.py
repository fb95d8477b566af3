"""``python manage.py subscribe URL [--secret S]``: a webhook for package.status.shipped."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ulak.api.serializers import WebhookSerializer


class Command(BaseCommand):
    help = "Subscribe URL to package.status.shipped (validated as the API validates it)."

    def add_arguments(self, parser):
        parser.add_argument("url")
        parser.add_argument("--secret", default="", help='a secret to sign with, or "generate"')
        parser.add_argument("--retry-seconds", type=int, default=5)

    def handle(self, *args, url: str, secret: str, retry_seconds: int, **options):
        serializer = WebhookSerializer(
            data={
                "target_url": url,
                "event_type": "package.status.shipped",
                "retry_countdown_config": {"choice": "fixed", "kwargs": {"seconds": retry_seconds}},
                "secret_key": secret,
            }
        )
        if not serializer.is_valid():
            raise CommandError(f"invalid webhook: {dict(serializer.errors)}")
        webhook = serializer.save()
        self.stdout.write(f"webhook {webhook.id}: package.status.shipped -> {webhook.target_url}")
        if secret == "generate":
            self.stdout.write(f"secret (shown once): {webhook.secret_key}")
