"""``ulak rotate_secrets``: re-encrypt every webhook secret with the newest key.

Key rotation: put the new key in front of ``ULAK_SECRET_KEYS`` (the old ones stay behind it,
so everything still decrypts; by default the only key is Django's SECRET_KEY, so list it
second: ``ULAK_SECRET_KEYS=<new key>,<old SECRET_KEY>``), run this command, then drop the
old key. Legacy plaintext secrets are encrypted on the way.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from ulak import secrets
from ulak.models import Webhook, secret_keys

DEFAULT_BATCH_SIZE = 500


class Command(BaseCommand):
    help = "Re-encrypt every webhook secret with the newest key of ULAK_SECRET_KEYS."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)

    def handle(self, *args, batch_size: int, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        keys = secret_keys()
        table = connection.ops.quote_name(Webhook._meta.db_table)
        column = connection.ops.quote_name(Webhook._meta.get_field("secret_key").column)
        # Raw SQL: the ORM field decrypts on read and encrypts on write, but rotation has to
        # see the stored text (which key, or plaintext) and write the new ciphertext as is.
        select = (
            f"SELECT id, {column} FROM {table} "
            f"WHERE id > %s AND {column} IS NOT NULL AND {column} <> '' ORDER BY id LIMIT %s"
        )
        # Guarded by the old value: a secret changed through the API meanwhile is already
        # encrypted with the newest key and must not be overwritten with the stale one.
        update = f"UPDATE {table} SET {column} = %s WHERE id = %s AND {column} = %s"
        rotated = current = 0
        failed: list[int] = []
        last_id = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(select, [last_id, batch_size])
                rows = cursor.fetchall()
            if not rows:
                break
            last_id = rows[-1][0]
            changes = []
            for webhook_id, stored in rows:
                if secrets.is_encrypted_with_newest(stored, keys):
                    current += 1
                    continue
                try:
                    changes.append((secrets.reencrypt_secret(stored, keys), webhook_id, stored))
                except ValueError:
                    failed.append(webhook_id)
            if changes:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.executemany(update, changes)
                rotated += len(changes)
        self.stdout.write(
            f"re-encrypted {rotated} webhook secret(s); {current} already used the newest key"
        )
        if failed:
            shown = ", ".join(str(webhook_id) for webhook_id in failed[:20])
            more = f" and {len(failed) - 20} more" if len(failed) > 20 else ""
            raise CommandError(
                f"{len(failed)} secret(s) could not be decrypted with ULAK_SECRET_KEYS "
                f"(webhook ids {shown}{more}); add the key they were encrypted with and run again"
            )
