package main

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/config"
	"kmsd/internal/kms"
	"kmsd/internal/products"
)

func clientMain(args []string, asVlmcs bool) int {
	usageExit := client.ExitUsage
	if asVlmcs {
		usageExit = 22
	}
	cfg, err := config.ParseClient(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd client: %v\nRun 'kmsd client --help' for the options.\n", err)
		return usageExit
	}
	t, _, err := loadTable(cfg.KMDFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd client: %v\n", err)
		return usageExit
	}
	switch {
	case cfg.Help && asVlmcs:
		fmt.Printf("KMS client emulator (kmsd %s, running as vlmcs)\n\nUsage:\n\t%s [options] [<host>[:<port>] | .<domain> | -] [options]\n\nOptions:\n%s", version, os.Args[0], config.ShortUsage(config.ClientOptions))
		return 0
	case cfg.Help:
		fmt.Printf("Usage: kmsd client [host[:port] | [v6addr]:port | .domain] [options]   (also: vlmcs)\n\nOptions:\n%s\n%s", config.Usage(config.ClientOptions), exitCodesHelp)
		return 0
	case cfg.Version:
		fmt.Println("kmsd", version)
		return 0
	case cfg.List:
		t.WriteList(os.Stdout)
		return 0
	case cfg.Examples:
		fmt.Print(clientExamples)
		return 0
	}
	prod := 0
	if cfg.Product != "" {
		i, ok := t.Lookup(cfg.Product)
		if !ok {
			fmt.Fprintf(os.Stderr, "Invalid client application %q.\n\n", cfg.Product)
			t.WriteList(os.Stderr)
			if asVlmcs {
				return 0
			}
			return usageExit
		}
		prod = i
	}
	opt := clientOptions(&cfg, t, prod, kms.Env{Rand: crand.Reader, Now: time.Now})

	ctx := context.Background()
	addrs, err := targets(ctx, &cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd client: %v\n", err)
		if asVlmcs {
			return 103
		}
		return client.ExitUnreachable
	}
	if cfg.GrabFile != "" {
		return grabMain(ctx, &cfg, t, opt, addrs, usageExit, asVlmcs)
	}
	var results []*client.Result
	for i, addr := range addrs {
		c := &client.Client{Addr: addr, Opt: opt, Report: reportFor(&cfg, t)}
		results = c.Run(ctx)
		last := results[len(results)-1]
		if !errors.Is(last.Err, client.ErrConnect) || i == len(addrs)-1 {
			break
		}
		fmt.Fprintf(os.Stderr, "Warning: %v; trying the next host\n", last.Err)
	}
	base, _ := (&client.Client{Opt: opt}).BuildBase()
	code := client.ExitCode(results, base.NPolicy)
	if asVlmcs {
		if code == client.ExitUnreachable {
			return 103
		}
		return 0
	}
	return code
}

// grabMain runs -G: one request per CSVLK, then the ini file.
func grabMain(ctx context.Context, cfg *config.Client, t *products.Table, opt client.Options, addrs []string, usageExit int, asVlmcs bool) int {
	if cfg.Product != "" || cfg.VersionSet || cfg.AppID != nil || cfg.SKUID != nil || cfg.KMSID != nil || cfg.NPolicy != nil || cfg.Requests != 0 {
		fmt.Fprintln(os.Stderr, "kmsd client: -G cannot be combined with -l, -4, -5, -6, -K, -a, -s, -k, -r or -n")
		return usageExit
	}
	c := &client.Client{Addr: addrs[0], Opt: opt, Report: reportFor(cfg, t)}
	lines, results := c.Grab(ctx)
	names := make([]string, len(t.CSVLKs))
	for i, k := range t.CSVLKs {
		names[i] = k.IniName
	}
	if cfg.GrabFile != "-" {
		fmt.Printf("\nCreating file %s\n", cfg.GrabFile)
	}
	text, err := client.WriteGrabFile(cfg.GrabFile, lines, names)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd client: %v\n", err)
		return 1
	}
	if cfg.GrabFile == "-" {
		fmt.Print(text)
	} else if cfg.Verbose {
		for i, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			if l != "" {
				fmt.Printf("line %2d: %s\n", i+1, l)
			}
		}
	}
	if asVlmcs {
		return 0
	}
	if len(results) > 0 && results[len(results)-1].Err != nil {
		return client.ExitCode(results[len(results)-1:], 0)
	}
	if len(lines) == 0 {
		return client.ExitRefused
	}
	return 0
}

func reportFor(cfg *config.Client, t *products.Table) client.Report {
	if cfg.JSON {
		return &client.JSONReport{W: os.Stdout, Table: t}
	}
	return &client.TextReport{W: os.Stdout, Err: os.Stderr, Verbose: cfg.Verbose, Table: t}
}

// targets resolves the target argument to the addresses to try, in order
// (kms-client.md §1).
func targets(ctx context.Context, cfg *config.Client) ([]string, error) {
	t := cfg.Target
	switch {
	case t == "":
		if cfg.IPVersion == 6 {
			return []string{"[::1]:1688"}, nil
		}
		return []string{"127.0.0.1:1688"}, nil
	case t == "-" || strings.HasPrefix(t, "."):
		look := client.SRVLookup{Servers: cfg.DNSServers, Timeout: cfg.Timeout}
		recs, warns, err := look.Lookup(ctx, strings.TrimPrefix(t, "-"))
		for _, w := range warns {
			fmt.Fprintf(os.Stderr, "Warning: %s\n", w)
		}
		if err != nil {
			return nil, err
		}
		if !cfg.IgnoreSRVPriority {
			client.OrderSRV(recs, crand.Reader)
		}
		addrs := make([]string, len(recs))
		for i, r := range recs {
			addrs[i] = r.Addr()
		}
		return addrs, nil
	}
	host, port, err := splitTarget(t)
	if err != nil {
		return nil, err
	}
	return []string{net.JoinHostPort(host, port)}, nil
}

func splitTarget(t string) (string, string, error) {
	if strings.HasPrefix(t, "[") {
		end := strings.Index(t, "]")
		if end < 0 {
			return "", "", fmt.Errorf("target %q: missing ]", t)
		}
		host, rest := t[1:end], t[end+1:]
		if rest == "" {
			return host, "1688", nil
		}
		if !strings.HasPrefix(rest, ":") || len(rest) == 1 {
			return "", "", fmt.Errorf("target %q: expected :port after ]", t)
		}
		return host, rest[1:], nil
	}
	if strings.Count(t, ":") > 1 {
		return t, "1688", nil
	}
	host, port, found := strings.Cut(t, ":")
	if !found {
		return host, "1688", nil
	}
	return host, port, nil
}

const exitCodesHelp = `Exit codes: 0 activated, 2 bad command line, 3 host unreachable, 4 refused
with an HRESULT, 5 invalid answer, 6 timeout, 7 count below the N policy.
Run as vlmcs, the exit codes are vlmcs's: 0, 22 bad command line, 103 no host.
`

const clientExamples = `Examples:
  kmsd client                          Windows Vista Business against 127.0.0.1:1688
  kmsd client kms.example.com -l 64    Windows 10/11 Professional against kms.example.com
  kmsd client [::1]:1688 -l 238 -v     Office LTSC 2024 over IPv6 with every field shown
  kmsd client .example.com -6          find hosts through _vlmcs._tcp.example.com SRV records
  kmsd client host -l 64 -n 30 -T      30 requests, a new connection for each
  kmsd client host -l 133 --json       one JSON object per request, for scripts
`

// clientOptions turns the parsed command line into the client's options.
func clientOptions(cfg *config.Client, t *products.Table, prod int, env kms.Env) client.Options {
	opt := client.DefaultOptions(t, env)
	opt.Product = prod
	opt.AppID, opt.SKUID, opt.KMSID, opt.NPolicy = cfg.AppID, cfg.SKUID, cfg.KMSID, cfg.NPolicy
	if cfg.VersionSet {
		opt.Version = &kms.Version{Major: cfg.Major, Minor: cfg.Minor}
	}
	opt.VM, opt.LicenseStatus, opt.BindingExpiration = cfg.VM, cfg.LicenseStatus, cfg.BindingExpiration
	opt.CMID, opt.CMIDPrev, opt.Workstation, opt.NetBIOS = cfg.CMID, cfg.CMIDPrev, cfg.Workstation, cfg.NetBIOS
	opt.Requests, opt.NewConnPerRequest = cfg.Requests, cfg.NewConnPerRequest
	opt.NDR64, opt.BTFN, opt.Multiplex, opt.Timeout = cfg.NDR64, cfg.BTFN, !cfg.NoMultiplex, cfg.Timeout
	if cfg.IPVersion != 0 {
		opt.Network = fmt.Sprintf("tcp%d", cfg.IPVersion)
	}
	return opt
}
