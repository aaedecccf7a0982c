// Command etcd is the etcd server, built from its Go module at the version the pinned
// Kubernetes release is tested with (go.mod), for the e2e test cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
