#!/usr/bin/env python
"""The example OMS's manage.py (Ulak's commands are here too: `python manage.py worker`)."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "oms_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
