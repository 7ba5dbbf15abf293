"""WSGI entry point for servers that want a module-level app (`web.wsgi:app`)."""

from web import create_app

app = create_app()
