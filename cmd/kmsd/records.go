package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"kmsd/internal/client"
	"kmsd/internal/kms"
	"kmsd/internal/products"
	"kmsd/internal/server"
	"kmsd/internal/store"
	"kmsd/internal/store/memory"
	"kmsd/internal/store/postgres"
	"kmsd/internal/store/sqlite"
	"kmsd/internal/wire"
)

// activationFromEvent turns a server event into a store record. Refusals
// have Count 0 and no ePID or intervals; a request that could not be
// decrypted keeps only its time, peer, protocol and HRESULT.
func activationFromEvent(e *server.Event, table *products.Table, hostname string, policy kms.Policy) store.Activation {
	d := e.Decision
	if d.Table != nil {
		table = d.Table // KMSItem indexes the table the host decided with
	}
	a := store.Activation{Received: e.Time.UTC(), Host: hostname, HResult: d.HResult}
	if e.Peer.IsValid() {
		a.Peer = e.Peer.String()
	}
	if d.Request.Outer != (kms.Version{}) {
		a.Protocol = d.Request.Outer.String()
	}
	if !d.Decrypted {
		return a
	}
	b := &d.Request.Base
	a.NPolicy, a.Workstation = b.NPolicy, b.WorkstationName()
	a.CMID, a.PreviousCMID = b.CMID.String(), b.CMIDPrev.String()
	a.ClientTime = wire.Time(b.ClientTime).UTC()
	a.VM, a.LicenseStatus, a.BindingExpiration = b.VMInfo != 0, b.LicenseStatus, b.BindingExpiration
	a.AppID, a.SKUID, a.KMSID = b.AppID.String(), b.ActID.String(), b.KMSID.String()
	if i := table.ProductBySKU(b.ActID); i >= 0 {
		a.Product = table.Products[i].Name
	}
	k := d.KMSItem
	if k < 0 {
		k = table.KMSByID(b.KMSID)
	}
	if k >= 0 {
		a.KMSName = table.KMSItems[k].Name
	}
	if d.HResult == 0 {
		a.Count, a.EPID = d.Count, d.EPID
		a.ActivationInterval, a.RenewalInterval = policy.ActivationInterval, policy.RenewalInterval
	}
	return a
}

// storeRecorder is a server.Recorder that queues every decision for the
// store; it never blocks (a full queue drops and counts).
type storeRecorder struct {
	queue    *store.Queue
	table    *products.Table
	hostname string
	policy   func() kms.Policy // the policy in force (it changes on SIGHUP)
}

// newStoreRecorder records into q; policy returns the current policy,
// e.g. func() kms.Policy { return srv.CurrentHost().Policy }.
func newStoreRecorder(q *store.Queue, t *products.Table, hostname string, policy func() kms.Policy) *storeRecorder {
	return &storeRecorder{queue: q, table: t, hostname: hostname, policy: policy}
}

// Record implements server.Recorder.
func (r *storeRecorder) Record(e *server.Event) {
	r.queue.EnqueueFunc(func() store.Activation {
		return activationFromEvent(e, r.table, r.hostname, r.policy())
	})
}

// openStore opens the store a --db value names: "memory", "sqlite:PATH",
// a plain PATH, or "" for defaultDBPath(). The sqlite file's directory is
// created if needed.
func openStore(dsn string) (store.Store, error) {
	switch {
	case dsn == "memory":
		return memory.New(0), nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		// Connecting and migrating get 10 s; the error names what failed
		// (postgres: connecting to HOST:PORT: connection refused).
		ctx, cancel := context.WithTimeout(context.Background(), postgres.DefaultConnectTimeout)
		defer cancel()
		s, err := postgres.Open(ctx, dsn)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	path := dbPath(dsn)
	if path != sqlite.Memory {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, err
		}
	}
	s, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// dbPath is the sqlite path of a --db value that is not "memory" or a
// postgres URL.
func dbPath(dsn string) string {
	if path := strings.TrimPrefix(dsn, "sqlite:"); path != "" {
		return path
	}
	return defaultDBPath()
}

// defaultDBPath is where the database lives without --db: systemd's
// $STATE_DIRECTORY, else /var/lib/kmsd when writable (or creatable), else
// $XDG_STATE_HOME/kmsd or ~/.local/state/kmsd (on Windows
// %ProgramData%\kmsd first).
func defaultDBPath() string {
	return defaultDBPathFrom(os.Getenv, writableDir, os.UserHomeDir)
}

func defaultDBPathFrom(getenv func(string) string, writable func(string) bool, home func() (string, error)) string {
	if d, _, _ := strings.Cut(getenv("STATE_DIRECTORY"), ":"); d != "" {
		return filepath.Join(d, "kmsd.db")
	}
	system := "/var/lib/kmsd"
	if runtime.GOOS == "windows" {
		system = ""
		if d := getenv("ProgramData"); d != "" {
			system = filepath.Join(d, "kmsd")
		}
	}
	if system != "" && writable(system) {
		return filepath.Join(system, "kmsd.db")
	}
	if d := getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "kmsd", "kmsd.db")
	}
	if h, err := home(); err == nil && h != "" {
		return filepath.Join(h, ".local", "state", "kmsd", "kmsd.db")
	}
	return "kmsd.db"
}

const defaultDBHelp = `
The default database is $STATE_DIRECTORY/kmsd.db (systemd), else
/var/lib/kmsd/kmsd.db when writable, else $XDG_STATE_HOME/kmsd/kmsd.db or
~/.local/state/kmsd/kmsd.db.
`

// writableDir reports whether a file can be created in dir, or dir in its
// parent when it does not exist.
func writableDir(dir string) bool {
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return writableDir(filepath.Dir(dir))
	}
	f, err := os.CreateTemp(dir, ".kmsd-probe-*")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// openForReading opens the store for `kmsd clients` and `kmsd stats`,
// refusing to create a database file that does not exist.
func openForReading(dsn string) (store.Store, error) {
	if dsn != "memory" && !strings.Contains(dsn, "://") {
		if path := dbPath(dsn); path != sqlite.Memory {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("no activation database at %s (give its location with --db): %w", path, err)
			}
		}
	}
	return openStore(dsn)
}

// parseAge reads a duration, also in days ("30d").
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		return time.Duration(days * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	return d, nil
}

func clientsMain(args []string) int { return clientsTo(os.Stdout, os.Stderr, args, time.Now()) }

func statsMain(args []string) int { return statsTo(os.Stdout, os.Stderr, args, time.Now()) }

type clientsOptions struct {
	db, search, product, since, order string
	json                              bool
	limit                             int
}

func parseClientsFlags(errw io.Writer, args []string) (*clientsOptions, int) {
	var o clientsOptions
	fs := flag.NewFlagSet("kmsd clients", flag.ContinueOnError)
	fs.SetOutput(errw)
	fs.StringVar(&o.db, "db", "", "activation database: sqlite:PATH, PATH or memory")
	fs.BoolVar(&o.json, "json", false, "print a JSON array, one object per client")
	fs.StringVar(&o.search, "search", "", "show clients whose CMID, name, product or address contains `TEXT`")
	fs.StringVar(&o.product, "product", "", "show clients of a KMS ID, or whose product or KMS name contains `TEXT`")
	fs.StringVar(&o.since, "since", "", "show clients seen within `DURATION` (e.g. 36h, 30d)")
	fs.StringVar(&o.order, "order", "", "sort by last_seen, first_seen, workstation, product or renewal_due")
	fs.IntVar(&o.limit, "limit", 0, "show at most `N` clients")
	fs.Usage = func() {
		fmt.Fprint(errw, "Usage: kmsd clients [options]\n\nLists the client machines that asked this host for activation.\n\nOptions:\n")
		fs.PrintDefaults()
		fmt.Fprint(errw, defaultDBHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(errw, "kmsd clients: unexpected argument %q\n", fs.Arg(0))
		return nil, 2
	}
	return &o, -1
}

// clientsTo is `kmsd clients`: the inventory, like slmgr /dli lists one
// client.
func clientsTo(w, errw io.Writer, args []string, now time.Time) int {
	o, code := parseClientsFlags(errw, args)
	if o == nil {
		return code
	}
	f, match, err := o.filter(products.Builtin(), now)
	if err != nil {
		fmt.Fprintf(errw, "kmsd clients: %v\n", err)
		return 2
	}
	s, err := openForReading(o.db)
	if err != nil {
		fmt.Fprintf(errw, "kmsd clients: %v\n", err)
		return 1
	}
	defer s.Close()
	cs, err := s.Clients(context.Background(), f)
	if err != nil {
		fmt.Fprintf(errw, "kmsd clients: %v\n", err)
		return 1
	}
	if match != nil {
		cs = store.Page(slices.DeleteFunc(cs, func(c store.Client) bool { return !match(&c) }), 0, o.limit)
	}
	if o.json {
		err = writeClientsJSON(w, cs)
	} else {
		err = writeClientsTable(w, cs)
	}
	if err != nil {
		fmt.Fprintf(errw, "kmsd clients: %v\n", err)
		return 1
	}
	return 0
}

// filter builds the store filter; a --product that is not a KMS ID
// becomes a match function applied afterwards (then the limit is too).
func (o *clientsOptions) filter(t *products.Table, now time.Time) (store.ClientFilter, func(*store.Client) bool, error) {
	f := store.ClientFilter{Search: o.search, Limit: o.limit, OrderBy: o.order}
	if err := store.CheckOrder(o.order); err != nil {
		return f, nil, err
	}
	if o.limit < 0 {
		return f, nil, errors.New("--limit must not be negative")
	}
	if o.since != "" {
		d, err := parseAge(o.since)
		if err != nil {
			return f, nil, err
		}
		f.SeenSince = now.Add(-d)
	}
	if o.product == "" {
		return f, nil, nil
	}
	if g, err := wire.ParseGUID(o.product); err == nil {
		f.KMSID = g.String()
		return f, nil, nil
	}
	f.Limit = 0
	q := strings.ToLower(o.product)
	return f, func(c *store.Client) bool {
		return strings.Contains(strings.ToLower(c.Product), q) || strings.Contains(strings.ToLower(kmsItemName(t, c.KMSID)), q)
	}, nil
}

// kmsItemName names a KMS ID from the product table, or returns "".
func kmsItemName(t *products.Table, kmsID string) string {
	g, err := wire.ParseGUID(kmsID)
	if err != nil {
		return ""
	}
	if i := t.KMSByID(g); i >= 0 {
		return t.KMSItems[i].Name
	}
	return ""
}

const recordTimeLayout = "2006-01-02 15:04"

func recordTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(recordTimeLayout)
}

func writeClientsTable(w io.Writer, cs []store.Client) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CMID\tWORKSTATION\tPRODUCT\tLAST SEEN (UTC)\tRENEWAL DUE\tLICENSE STATUS\tLAST RESULT\tVM\tCLONED")
	for i := range cs {
		c := &cs[i]
		result, vm, cloned := "activated", "no", ""
		if c.LastHResult != 0 {
			result = fmt.Sprintf("0x%08X", c.LastHResult)
		}
		if c.VM {
			vm = "yes"
		}
		if c.Cloned() {
			cloned = fmt.Sprintf("yes (%d names)", len(c.Names))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.CMID, cmp.Or(c.Workstation, "-"),
			cmp.Or(c.Product, c.SKUID, "-"), recordTime(c.LastSeen), recordTime(c.RenewalDue),
			client.LicenseStatusName(c.LicenseStatus), result, vm, cloned)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d client(s)\n", len(cs))
	return err
}

// clientRow is one object of `kmsd clients --json`.
type clientRow struct {
	CMID              string     `json:"cmid"`
	Workstation       string     `json:"workstation"`
	Names             []string   `json:"names"`
	Address           string     `json:"address"`
	Addresses         []string   `json:"addresses"`
	Product           string     `json:"product"`
	SKUID             string     `json:"sku_id"`
	KMSID             string     `json:"kms_id"`
	LicenseStatus     uint32     `json:"license_status"`
	LicenseStatusName string     `json:"license_status_name"`
	VM                bool       `json:"vm"`
	Cloned            bool       `json:"cloned"`
	FirstSeen         time.Time  `json:"first_seen"`
	LastSeen          time.Time  `json:"last_seen"`
	RenewalDue        *time.Time `json:"renewal_due"`
	ClockSkewSeconds  float64    `json:"clock_skew_seconds"`
	LastHResult       string     `json:"last_hresult"`
	Activations       int        `json:"activations"`
}

func writeClientsJSON(w io.Writer, cs []store.Client) error {
	out := make([]clientRow, 0, len(cs))
	for i := range cs {
		c := &cs[i]
		j := clientRow{CMID: c.CMID, Workstation: c.Workstation, Names: nonNilStrings(c.Names), Address: c.Peer,
			Addresses: nonNilStrings(c.Addresses), Product: c.Product, SKUID: c.SKUID, KMSID: c.KMSID,
			LicenseStatus: c.LicenseStatus, LicenseStatusName: client.LicenseStatusName(c.LicenseStatus),
			VM: c.VM, Cloned: c.Cloned(), FirstSeen: c.FirstSeen.UTC(), LastSeen: c.LastSeen.UTC(),
			ClockSkewSeconds: c.ClockSkew.Seconds(), LastHResult: fmt.Sprintf("0x%08X", c.LastHResult),
			Activations: c.Activations}
		if !c.RenewalDue.IsZero() {
			due := c.RenewalDue.UTC()
			j.RenewalDue = &due
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// statsWindow is the window a KMS host counts clients over.
const statsWindow = 30 * 24 * time.Hour

// kmsStats is one KMS ID in `kmsd stats --json`.
type kmsStats struct {
	KMSID          string         `json:"kms_id"` // "" for requests that could not be decoded
	Name           string         `json:"name"`
	ActiveClients  int            `json:"active_clients"` // distinct CMIDs activated in the window
	Threshold      uint32         `json:"threshold"`      // N policy; 0 when unknown
	ThresholdMet   bool           `json:"threshold_met"`
	Activations1d  int            `json:"activations_1d"`
	Activations7d  int            `json:"activations_7d"`
	Activations30d int            `json:"activations_30d"`
	Refusals       map[string]int `json:"refusals"` // by HRESULT, in the window
	LastActivity   *time.Time     `json:"last_activity"`
}

// statsReport is the output of `kmsd stats`.
type statsReport struct {
	Generated  time.Time   `json:"generated"`
	WindowDays int         `json:"window_days"`
	Requests   int         `json:"requests"` // in the window
	KMS        []*kmsStats `json:"kms"`
}

// statsTo is `kmsd stats`: per KMS ID, the count a KMS host keeps and
// what it answered, like slmgr /dli on a real host.
func statsTo(w, errw io.Writer, args []string, now time.Time) int {
	fs := flag.NewFlagSet("kmsd stats", flag.ContinueOnError)
	fs.SetOutput(errw)
	db := fs.String("db", "", "activation database: sqlite:PATH, PATH or memory")
	asJSON := fs.Bool("json", false, "print one JSON object")
	fs.Usage = func() {
		fmt.Fprint(errw, "Usage: kmsd stats [options]\n\nShows per KMS ID the active clients of the last 30 days against the\nactivation threshold, activations, refusals and the last activity.\n\nOptions:\n")
		fs.PrintDefaults()
		fmt.Fprint(errw, defaultDBHelp)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(errw, "kmsd stats: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	s, err := openForReading(*db)
	if err != nil {
		fmt.Fprintf(errw, "kmsd stats: %v\n", err)
		return 1
	}
	defer s.Close()
	sum, err := store.Summarize(context.Background(), s, now, statsWindow)
	if err == nil {
		r := newStatsReport(sum, products.Builtin())
		if *asJSON {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			err = enc.Encode(r)
		} else {
			err = r.write(w)
		}
	}
	if err != nil {
		fmt.Fprintf(errw, "kmsd stats: %v\n", err)
		return 1
	}
	return 0
}

// newStatsReport names the KMS IDs and sets their thresholds: the N policy
// of the KMS ID in the product table (25 for Windows clients, 5 for
// servers and Office), else the largest one its clients asked for. KMS
// IDs with the most active clients come first, undecoded requests last.
func newStatsReport(sum *store.Summary, t *products.Table) *statsReport {
	r := &statsReport{Generated: sum.Until.UTC(), WindowDays: int(sum.Until.Sub(sum.Since) / (24 * time.Hour)),
		Requests: sum.Requests}
	for i := range sum.KMS {
		k := &sum.KMS[i]
		s := &kmsStats{KMSID: k.KMSID, Name: cmp.Or(kmsItemName(t, k.KMSID), k.KMSName, "unknown KMS ID"),
			ActiveClients: k.ActiveClients, Threshold: k.MaxNPolicy, Activations1d: k.Activations1d,
			Activations7d: k.Activations7d, Activations30d: k.ActivationsWindow, Refusals: map[string]int{}}
		if g, err := wire.ParseGUID(k.KMSID); err == nil {
			if j := t.KMSByID(g); j >= 0 {
				s.Threshold = t.KMSItems[j].NPolicy
			}
		}
		if k.KMSID == "" {
			s.Name, s.Threshold = "(requests that could not be decoded)", 0
		}
		s.ThresholdMet = s.Threshold > 0 && uint32(s.ActiveClients) >= s.Threshold
		for hr, n := range k.Refusals {
			s.Refusals[fmt.Sprintf("0x%08X", hr)] = n
		}
		if !k.LastActivity.IsZero() {
			last := k.LastActivity.UTC()
			s.LastActivity = &last
		}
		r.KMS = append(r.KMS, s)
	}
	slices.SortStableFunc(r.KMS, func(a, b *kmsStats) int {
		return cmp.Or(undecodedLast(a, b), cmp.Compare(b.ActiveClients, a.ActiveClients),
			cmp.Compare(b.Activations30d, a.Activations30d), cmp.Compare(a.Name, b.Name))
	})
	return r
}

func undecodedLast(a, b *kmsStats) int {
	switch {
	case a.KMSID == "" && b.KMSID != "":
		return 1
	case a.KMSID != "" && b.KMSID == "":
		return -1
	}
	return 0
}

func (r *statsReport) write(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "KMS host activity, %d days to %s UTC: %d request(s)\n", r.WindowDays,
		r.Generated.Format(recordTimeLayout), r.Requests)
	for _, k := range r.KMS {
		fmt.Fprintf(&b, "\n%s\n", k.Name)
		if k.KMSID != "" {
			fmt.Fprintf(&b, "  KMS ID          %s\n", k.KMSID)
			fmt.Fprintf(&b, "  Active clients  %s\n", k.activeText())
		}
		fmt.Fprintf(&b, "  Activations     %d (1 day), %d (7 days), %d (%d days)\n", k.Activations1d,
			k.Activations7d, k.Activations30d, r.WindowDays)
		fmt.Fprintf(&b, "  Refusals        %s\n", refusalsText(k.Refusals))
		last := time.Time{}
		if k.LastActivity != nil {
			last = *k.LastActivity
		}
		fmt.Fprintf(&b, "  Last activity   %s\n", recordTime(last))
	}
	if len(r.KMS) == 0 {
		b.WriteString("\nNo activation recorded.\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (k *kmsStats) activeText() string {
	switch {
	case k.Threshold == 0:
		return fmt.Sprintf("%d (threshold unknown)", k.ActiveClients)
	case k.ThresholdMet:
		return fmt.Sprintf("%d of %d needed (threshold met)", k.ActiveClients, k.Threshold)
	}
	return fmt.Sprintf("%d of %d needed (%d short)", k.ActiveClients, k.Threshold, int(k.Threshold)-k.ActiveClients)
}

func refusalsText(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, hr := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", hr, m[hr]))
	}
	return strings.Join(parts, ", ")
}
