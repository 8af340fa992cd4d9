"""The sandbox's Kubernetes controllers, speaking to the cluster only through the
official `kubernetes` client (adapter: `kube.py`), so they run against any cluster.

Modules: `deployment`, `replicaset`, `scheduler`, `endpoints` (Endpoints and
EndpointSlices), `gc` (garbage collector), `namespace`; shared machinery (informers,
work queues, expectations, events) in `machinery`; pure logic in `deployutil`,
`endpointsutil`, `objects`; errors in `errors`. Run with
`python -m tp_sandbox.controllers --kubeconfig PATH`.
"""
