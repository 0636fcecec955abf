package main

import (
	"os"

	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	// Only the plugins a cluster's DNS needs; github.com/coredns/coredns/core/plugin would link
	// all of them, cloud SDKs included.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/whoami"
)

// corednsDirectives are the plugins above, in the order of CoreDNS's plugin.cfg: the order in
// which they handle a query, whatever their order in the Corefile.
var corednsDirectives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes", "whoami"}

// coredns runs CoreDNS as its own main would; coremain reads its flags from the standard flag
// set, that is from os.Args.
func coredns(args []string) {
	dnsserver.Directives = corednsDirectives
	os.Args = append([]string{os.Args[0]}, args...)
	coremain.Run()
}
