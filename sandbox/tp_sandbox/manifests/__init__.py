"""Manifests shipped with the package (package data): `demo.yaml`, the seed's demo app;
`demo-statefulset.yaml`, the same app as a StatefulSet with a configMap volume."""
