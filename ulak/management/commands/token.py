"""``ulak token create --username U [--superuser]`` and ``ulak token revoke --username U``."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ulak.models import ApiToken


class Command(BaseCommand):
    help = "Create or revoke API tokens. `create` prints the new key and nothing else."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a token (and the user if needed)")
        create.add_argument("--username", required=True)
        create.add_argument("--superuser", action="store_true", help="make the user a superuser")
        revoke = actions.add_parser("revoke", help="revoke every token of a user")
        revoke.add_argument("--username", required=True)

    def handle(self, *args, action: str, username: str, **options):
        User = get_user_model()
        if action == "create":
            with transaction.atomic():
                user, created = User.objects.get_or_create(username=username)
                if created:
                    user.set_unusable_password()
                if options["superuser"] and not user.is_superuser:
                    user.is_superuser = user.is_staff = True
                user.save()
                key = ApiToken.create_for(user)
            # Only the key on stdout, so scripts can capture it.
            self.stdout.write(key)
            return
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist:
            raise CommandError(f"no user named {username!r}") from None
        count = ApiToken.objects.filter(user=user, revoked=False).update(revoked=True)
        self.stderr.write(f"revoked {count} token(s) of {username}")
