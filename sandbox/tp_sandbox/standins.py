"""Stand-ins for public web-server images, run as `python -m tp_sandbox.standins KIND`:

- `nginx`: serves `/usr/share/nginx/html` (a volume mounted there, as tutorials do) on
  port 80, and nginx's welcome page for `/` while it holds no index.html;
- `httpd`: the same for `/usr/local/apache2/htdocs`, with Apache's "It works!" page.

Access lines go to stdout as the real images log them; SIGTERM stops the server.
"""

from __future__ import annotations

import functools
import http.server
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

NGINX_WELCOME = """<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""
HTTPD_WELCOME = "<html><body><h1>It works!</h1></body></html>\n"

_KINDS = {
    "nginx": ("/usr/share/nginx/html", NGINX_WELCOME, "nginx/1.27.0"),
    "httpd": ("/usr/local/apache2/htdocs", HTTPD_WELCOME, "Apache/2.4.62 (Unix)"),
}


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_version = "nginx"
    sys_version = ""
    welcome = ""

    def do_GET(self) -> None:
        # the welcome page until an index.html shows up (written into a mounted volume)
        if self.path.split("?", 1)[0] in ("/", "/index.html") and not (
                Path(str(self.directory)) / "index.html").exists():
            body = self.welcome.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f'{self.client_address[0]} - - [{self.log_date_time_string()}] '
                         f'{format % args}\n')
        sys.stdout.flush()


def root_for(kind: str) -> Path:
    """The document root: the image's own path when it exists (a mounted volume), else
    an empty directory (the welcome page answers `/` while there is no index.html)."""
    path = Path(_KINDS[kind][0])
    return path if path.is_dir() else Path(tempfile.mkdtemp(prefix=f"tp-{kind}-"))


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in _KINDS:
        print(f"usage: python -m tp_sandbox.standins {{{','.join(_KINDS)}}}", file=sys.stderr)
        return 2
    kind = argv[0]
    port = int(os.environ.get("TP_STANDIN_PORT", "80"))
    handler = type("Handler", (_Handler,), {"server_version": _KINDS[kind][2],
                                            "welcome": _KINDS[kind][1]})
    server = http.server.ThreadingHTTPServer(
        ("", port), functools.partial(handler, directory=str(root_for(kind))))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(
        target=server.shutdown, name="standin-stop", daemon=True).start())
    print(f"{kind} stand-in listening on port {port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
