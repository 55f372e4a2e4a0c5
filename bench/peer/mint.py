"""Mints the peer's refresh tokens for bench/run: one per wrk connection, for one bench user.

    python mint.py COUNT TOKENS_FILE

Each token is what POST /api/token/ answers for that user (RefreshToken.for_user, recorded as
outstanding), minted without the password check: PBKDF2 at Django's cost would take minutes for
every connection of every run, and what is measured is the refresh.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from rest_framework_simplejwt.tokens import RefreshToken  # noqa: E402


def main():
    count, path = int(sys.argv[1]), sys.argv[2]
    user, created = get_user_model().objects.get_or_create(username="bench")
    if created:
        user.set_password("bench-password-1234")
        user.save()
    with open(path, "w") as f:
        f.write("".join(f"{RefreshToken.for_user(user)}\n" for _ in range(count)))


if __name__ == "__main__":
    main()
