// Command kmsd is a KMS host and client emulator. Run as "vlmcsd" it is the
// host with vlmcsd's command line; run as "vlmcs" it is the client.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args))
}

func run(argv []string) int {
	name := strings.ToLower(strings.TrimSuffix(filepath.Base(argv[0]), ".exe"))
	args := argv[1:]
	switch name {
	case "vlmcsd":
		return serveMain(args, true)
	case "vlmcs":
		return clientMain(args, true)
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return serveMain(args, false)
	}
	// "kmsd /usr/bin/vlmcsd -D -e" (the command of vlmcsd's container
	// images after the kmsd image's entry point) runs as that program.
	if p := strings.ToLower(strings.TrimSuffix(filepath.Base(args[0]), ".exe")); p == "vlmcsd" || p == "vlmcs" {
		return run(args)
	}
	switch args[0] {
	case "serve":
		return serveMain(args[1:], false)
	case "client":
		return clientMain(args[1:], false)
	case "products":
		return productsMain(args[1:])
	case "clients":
		return clientsMain(args[1:])
	case "stats":
		return statsMain(args[1:])
	case "bench":
		return benchMain(args[1:])
	case "service":
		return serviceMain(args[1:])
	case "version":
		fmt.Println("kmsd", version)
		return 0
	case "help":
		fmt.Print(topUsage)
		return 0
	}
	fmt.Fprintf(os.Stderr, "kmsd: unknown command %q\n\n%s", args[0], topUsage)
	return 2
}

const topUsage = `kmsd - KMS host and client emulator

Usage:
  kmsd [serve] [options]        run the KMS host (vlmcsd options; kmsd serve --help)
  kmsd client [host[:port]] [options]
                                send activation requests (vlmcs options; kmsd client --help)
  kmsd products [filter] [--json]
                                list the product table
  kmsd bench [TARGET] [options] load a KMS host and measure it (kmsd bench --help)
  kmsd clients [--db DSN] [--json] [--search S] [--since AGE]
                                the client inventory, like slmgr /dli on a real host
  kmsd stats [--db DSN] [--json]
                                activation counts per KMS ID
  kmsd service install|uninstall|start|stop [options]
                                run the host as a Windows service (kmsd service help)
  kmsd version                  print the version

Run through a link named vlmcsd or vlmcs, kmsd behaves as that program.
`
