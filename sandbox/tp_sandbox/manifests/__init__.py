"""Manifests shipped with the package (package data): `demo.yaml`, the seed's demo app."""
