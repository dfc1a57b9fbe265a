package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"kmsd/internal/dnssrv"
)

// publishOptions are the --publish-* options: where and how the host
// publishes its _vlmcs._tcp SRV record (as Windows KMS hosts do unless
// DisableDnsPublishing is set; DnsDomainPublishList is --publish-domain).
type publishOptions struct {
	Domains          []string      // --publish-domain, repeatable; none = no publishing
	Server           string        // --publish-server HOST[:PORT]; "" = each domain's primary (SOA MNAME)
	Target           string        // --publish-name; "" = this machine's host name
	TTL              time.Duration // --publish-ttl; 0 = dnssrv.DefaultTTL (1h)
	Priority, Weight uint16        // --publish-priority, --publish-weight (default 0, 0 as Windows)
	TSIG             string        // --publish-tsig [ALG:]NAME:SECRET
	TSIGFile         string        // --publish-tsig-file FILE (bind or knot key file)
}

// startPublisher starts publishing the host (listening on hostPort) in DNS
// in the background and returns at once: DNS failures are logged and
// retried, never returned, so activation never waits on DNS. It returns an
// error only for a bad configuration. stop withdraws the record (bounded
// by a few seconds) and returns when that is done; call it on a clean
// shutdown.
func startPublisher(opts publishOptions, hostPort uint16, logger *slog.Logger) (stop func(), err error) {
	if len(opts.Domains) == 0 {
		if opts.Server != "" || opts.Target != "" || opts.TSIG != "" || opts.TSIGFile != "" {
			return nil, errors.New("--publish-server, --publish-name and --publish-tsig need --publish-domain")
		}
		return func() {}, nil
	}
	p := &dnssrv.Publisher{
		Server:   opts.Server,
		Domains:  opts.Domains,
		Target:   opts.Target,
		Port:     hostPort,
		Priority: opts.Priority,
		Weight:   opts.Weight,
		TTL:      opts.TTL,
		Logger:   logger,
	}
	switch {
	case opts.TSIG != "" && opts.TSIGFile != "":
		return nil, errors.New("give --publish-tsig or --publish-tsig-file, not both")
	case opts.TSIG != "":
		if p.TSIG, err = dnssrv.ParseTSIG(opts.TSIG); err != nil {
			return nil, fmt.Errorf("--publish-tsig: %w", err)
		}
	case opts.TSIGFile != "":
		if p.TSIG, err = dnssrv.ReadTSIGFile(opts.TSIGFile); err != nil {
			return nil, fmt.Errorf("--publish-tsig-file: %w", err)
		}
	}
	if p.Target == "" {
		if p.Target, err = defaultTarget(opts.Domains[0]); err != nil {
			return nil, err
		}
	}
	if err := p.Check(); err != nil {
		return nil, fmt.Errorf("DNS publishing: %w", err)
	}
	key := "none"
	if p.TSIG != nil {
		key = p.TSIG.String()
	}
	server := opts.Server
	if server == "" {
		server = "primary from SOA"
	}
	logger.Info("DNS SRV publishing on", "domains", strings.Join(opts.Domains, ","),
		"target", p.Target, "port", hostPort, "server", server, "tsig", key)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx) // outcomes are logged by Run
	}()
	return func() {
		cancel()
		<-done
	}, nil
}

// defaultTarget is this machine's host name, qualified with domain when it
// has no dot (Windows registers its full computer name).
func defaultTarget(domain string) (string, error) {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("--publish-name is needed: cannot read the host name: %v", err)
	}
	h = strings.TrimSuffix(h, ".")
	if !strings.Contains(h, ".") {
		h += "." + strings.Trim(domain, ".")
	}
	return h + ".", nil
}
