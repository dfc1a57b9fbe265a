package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"kmsd/internal/bench"
	"kmsd/internal/products"
)

const benchUsage = `Usage: kmsd bench [TARGET] [options]

Load a KMS host (kmsd, vlmcsd, py-kms) with activation requests and verify
every answer as 'kmsd client' does (a wrong answer counts as an error). It
stops after COUNT activations or DURATION, whichever comes first, prints a
summary and ends with one JSON line.

TARGET is host, host:port or [v6addr]:port (default 127.0.0.1:1688). It must
be a loopback address (127.0.0.0/8, ::1, localhost) unless --allow-remote
is given.

Options:
  --mode new|keepalive  new: connect, bind, request, close for every
                        activation, as Windows clients do; keepalive: K
                        activations per connection (default new)
  -c N                  concurrent workers, one connection each (default 16, max 4096)
  --per-conn K          keepalive: activations per connection (default 50)
  -n COUNT              activations in total (default 10000, max 10000000)
  -d DURATION           maximum run time: 30s, 2m, or seconds (default 30s, max 10m)
  --protocol 4|5|6      KMS protocol version (default 6)
  -l PRODUCT            product number, name or SKU ID as 'kmsd products'
                        lists them (default 64, Windows 10/11 Professional)
  --timeout DURATION    limit of each connect and each activation (default 5s)
  --null                also measure the ceiling: start an in-process null host
                        on 127.0.0.1 and run the same load against it after
                        TARGET (without TARGET, only against the null host)
  --json-only           print only the JSON line (no summary, no progress)
  --allow-remote        allow a target that is not a loopback address

Latency runs from the connect (new) or the request write (keepalive) to the
verified answer. Error kinds: connect, timeout, closed, protocol,
invalid-response, refused-0xHRESULT.

The null host does no KMS work: it negotiates binds as kmsd does and answers
every request with one response built at start for one fixed request. A V6
response echoes the request's client machine ID and time under an HMAC, so
one answer cannot fit random requests: against the null host every
activation sends that one fixed request (fixed client machine ID, time and
IV), and the answers are still fully verified. Its rate is the most this
machine's load generator can drive; the JSON line carries it as "ceiling".

Exit status: 0 when every activation was verified, 1 when some failed or
none finished, 2 for a bad command line.
`

// durationValue accepts a Go duration or whole seconds.
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		*v.d = time.Duration(n) * time.Second
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("want a duration such as 30s or 2m, or seconds")
	}
	*v.d = d
	return nil
}

func benchMain(args []string) int {
	cfg := bench.DefaultConfig()
	t := products.Builtin()
	fs := flag.NewFlagSet("kmsd bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "")
	fs.IntVar(&cfg.Concurrency, "c", cfg.Concurrency, "")
	fs.IntVar(&cfg.PerConn, "per-conn", cfg.PerConn, "")
	fs.IntVar(&cfg.Count, "n", cfg.Count, "")
	fs.Var(durationValue{&cfg.Duration}, "d", "")
	fs.Var(durationValue{&cfg.Timeout}, "timeout", "")
	protocol := fs.Uint("protocol", uint(cfg.Major), "")
	product := fs.String("l", "64", "")
	null := fs.Bool("null", false, "")
	jsonOnly := fs.Bool("json-only", false, "")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "")
	help := fs.Bool("help", false, "")
	fs.BoolVar(help, "h", false, "")

	// Flags and the one TARGET may come in any order.
	var positional []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return benchUsageError(err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if *help {
		fmt.Print(benchUsage)
		return 0
	}
	if len(positional) > 1 {
		return benchUsageError(fmt.Errorf("one target expected, got %q", positional))
	}
	if *protocol < 4 || *protocol > 6 {
		return benchUsageError(fmt.Errorf("--protocol %d: want 4, 5 or 6", *protocol))
	}
	cfg.Major = uint16(*protocol)
	i, ok := t.Lookup(*product)
	if !ok {
		return benchUsageError(fmt.Errorf("-l %s: no such product (see 'kmsd products')", *product))
	}
	cfg.Product = i
	for _, c := range []struct {
		name string
		v    int
	}{{"-c", cfg.Concurrency}, {"-n", cfg.Count}, {"--per-conn", cfg.PerConn}} {
		if c.v < 1 {
			return benchUsageError(fmt.Errorf("%s %d: must be at least 1", c.name, c.v))
		}
	}
	if cfg.Duration <= 0 || cfg.Timeout <= 0 {
		return benchUsageError(errors.New("-d and --timeout must be positive"))
	}
	target := ""
	if len(positional) == 1 {
		host, port, err := splitTarget(positional[0])
		if err != nil {
			return benchUsageError(err)
		}
		target = net.JoinHostPort(host, port)
	}
	if target == "" && !*null {
		target = bench.DefaultTarget
	}
	if !*jsonOnly {
		cfg.Progress = os.Stderr
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var rep *bench.Report
	if target != "" {
		c := cfg
		c.Target = target
		r, err := bench.Run(ctx, c)
		if err != nil {
			return benchUsageError(err)
		}
		rep = &r
		if !*jsonOnly {
			rep.WriteText(os.Stdout)
		}
	}
	if *null && ctx.Err() == nil {
		h, err := bench.StartNullHost(cfg.Product, cfg.Major)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kmsd bench: %v\n", err)
			return 1
		}
		c := cfg
		c.Target, c.FixedRequest = h.Addr(), h.Request()
		r, err := bench.Run(ctx, c)
		h.Close()
		if err != nil {
			return benchUsageError(err)
		}
		if !*jsonOnly {
			if rep != nil {
				fmt.Println()
			}
			fmt.Println("ceiling (in-process null host, one fixed request):")
			r.WriteText(os.Stdout)
		}
		if rep == nil {
			rep = &r
		} else {
			rep.Ceiling = &r
			if !*jsonOnly && r.RatePerSec > 0 {
				fmt.Printf("\ntarget rate is %.1f%% of the ceiling\n", 100*rep.RatePerSec/r.RatePerSec)
			}
		}
	}
	if rep == nil {
		return 1
	}
	b, err := json.Marshal(rep)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kmsd bench: %v\n", err)
		return 1
	}
	if !*jsonOnly {
		fmt.Println()
	}
	fmt.Printf("%s\n", b)
	failed := rep.OK == 0 || rep.ErrorCount() > 0
	if rep.Ceiling != nil {
		failed = failed || rep.Ceiling.OK == 0 || rep.Ceiling.ErrorCount() > 0
	}
	if failed {
		return 1
	}
	return 0
}

func benchUsageError(err error) int {
	fmt.Fprintf(os.Stderr, "kmsd bench: %s\nRun 'kmsd bench --help' for the options.\n", strings.TrimPrefix(err.Error(), "bench: "))
	return 2
}
