// Command localkube runs a small but real Kubernetes control plane on one machine for oxlink's
// end-to-end tests: an embedded etcd, the upstream kube-apiserver, kube-controller-manager and
// kube-scheduler, and a node simulator that stands in for kubelets. It also carries the upstream
// CoreDNS and kube-proxy, for a pod runtime to start on the nodes.
//
// It is wiring only. Every component is the upstream code, linked into this one binary; the
// binary re-executes itself with a sub-command for each component so that their process-wide
// state (flags, feature gates, metrics registries) stays apart, exactly as in a real cluster.
//
//	localkube up [--dir DIR] [--port 16443] [--etcd-port 16444] [--nodes 2] [--pod-runtime simulated|external]
//	localkube apiserver|controller-manager|scheduler FLAGS...   (started by `up`)
//	localkube coredns -conf COREFILE [FLAGS...]                 (CoreDNS's own flags)
//	localkube kube-proxy FLAGS...                               (kube-proxy's own flags)
package main

import (
	"fmt"
	"os"

	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"

	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: localkube up [flags] | apiserver|controller-manager|scheduler|coredns|kube-proxy [flags]")
		os.Exit(2)
	}
	var cmd *cobra.Command
	switch os.Args[1] {
	case "up":
		os.Exit(up(os.Args[2:]))
	case "apiserver":
		cmd = apiserver.NewAPIServerCommand()
	case "controller-manager":
		cmd = controllermanager.NewControllerManagerCommand()
	case "scheduler":
		cmd = scheduler.NewSchedulerCommand()
	case "coredns":
		coredns(os.Args[2:])
		return
	case "kube-proxy":
		cmd = proxy.NewProxyCommand()
	default:
		fmt.Fprintf(os.Stderr, "localkube: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	cmd.SetArgs(os.Args[2:])
	os.Exit(cli.Run(cmd))
}
