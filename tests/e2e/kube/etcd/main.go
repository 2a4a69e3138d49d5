// Command etcd is upstream's etcd server (go.etcd.io/etcd/server/v3/etcdmain) at the release the
// pinned Kubernetes release is tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
