"""The WSGI application gunicorn serves (`gunicorn --chdir bench/peer wsgi:application`)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
application = get_wsgi_application()
