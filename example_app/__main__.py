"""Serve the example app with waitress on 127.0.0.1:8080."""

from __future__ import annotations

from .app import app
from .serve import serve


def main() -> None:
    serve(app, app)


if __name__ == '__main__':
    main()
