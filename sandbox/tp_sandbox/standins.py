"""Stand-ins for public web-server images, run as `python -m tp_sandbox.standins KIND`:

- `nginx`: serves `/usr/share/nginx/html` (a volume mounted there, as tutorials do) on
  port 80, or nginx's welcome page when nothing is mounted;
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

    def log_message(self, format: str, *args: Any) -> None:
        sys.stdout.write(f'{self.client_address[0]} - - [{self.log_date_time_string()}] '
                         f'{format % args}\n')
        sys.stdout.flush()


def root_for(kind: str) -> Path:
    """The document root: the image's own path when something is in it (a mounted
    volume), else the welcome page (containers share the host's filesystem, where
    another pod's mount may have left the directory behind, empty)."""
    path, welcome, _ = _KINDS[kind]
    if Path(path).is_dir() and any(Path(path).iterdir()):
        return Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f"tp-{kind}-"))
    (tmp / "index.html").write_text(welcome)
    return tmp


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in _KINDS:
        print(f"usage: python -m tp_sandbox.standins {{{','.join(_KINDS)}}}", file=sys.stderr)
        return 2
    kind = argv[0]
    port = int(os.environ.get("TP_STANDIN_PORT", "80"))
    handler = type("Handler", (_Handler,), {"server_version": _KINDS[kind][2]})
    server = http.server.ThreadingHTTPServer(
        ("", port), functools.partial(handler, directory=str(root_for(kind))))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(
        target=server.shutdown, name="standin-stop", daemon=True).start())
    print(f"{kind} stand-in listening on port {port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
