"""The demo application of the seed walkthrough (edgey-corp), as small aiohttp apps.

One module per service, run as ``python -m tp_sandbox.demo.<service>``:

- `dataprocessingservice` (port 3000): ``GET /color`` -> ``"green"`` (env `COLOR`);
- `verylargedatastore` (port 8080): ``GET /data`` -> a small JSON record set;
- `verylargejavaservice` (port 8080): a page that calls the other two by their
  Service DNS names (the pod's resolv.conf search path makes the short names work).

Every service answers ``GET /healthz`` for readiness probes and stops gracefully on
SIGTERM. `PORT` overrides the listening port (a developer's local copy).
"""
