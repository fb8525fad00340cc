"""The Kubernetes test cluster: etcd, kube-apiserver, kube-controller-manager and KEDA, built
from the Go module proxy into the testbed's cache and run on 127.0.0.1 (cluster.py)."""
