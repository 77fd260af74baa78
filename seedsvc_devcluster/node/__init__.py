"""The real pod layer: kubelets, containerd and runc, one network namespace per pod on 198.18.0.0/15.

:class:`~seedsvc_devcluster.node.pod_layer.PodLayer` starts a fabric bridge, one node per fake zone
(each a network namespace and a mount namespace of its own holding containerd and a kubelet), and a
janitor that removes all of it when the layer stops or the process that started it dies. The
kubelet stand-in (:mod:`seedsvc_devcluster.kubelet`) stays for the fast tests and the faults only it
can make.
"""
