// Command coredns is upstream CoreDNS with only the plugins the tests use. Importing the whole
// plugin set would pull in every cloud SDK (route53, azure, clouddns) for nothing.
package main

import (
	"github.com/coredns/coredns/coremain"

	// Plugins register themselves in init; the order they run in comes from dnsserver.Directives.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/file"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
