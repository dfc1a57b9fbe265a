package products_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"kmsd/internal/products"
	"kmsd/internal/wire"
)

// vectorsDir locates the recorded vlmcs/vlmcsd traffic
// (shared/testdata/vectors, or $KMSD_VECTORS); the files are read in place.
func vectorsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KMSD_VECTORS")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "testdata", "vectors")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Skipf("recorded vectors not found at %s (set KMSD_VECTORS)", dir)
	}
	return dir
}

// vector is the part of a recording this package checks.
type vector struct {
	ClientArgs  []string `json:"client_args"`
	ClientBuild string   `json:"client_build"`
	Exchanges   []struct {
		Request *vectorRequest `json:"request"`
	} `json:"exchanges"`
}

// vectorRequest is vlmcs's "Request Parameters" block.
type vectorRequest struct {
	ProtocolVersion string `json:"protocol_version"`
	ApplicationID   string `json:"application_id"`
	ApplicationName string `json:"application_name"`
	SKUID           string `json:"sku_id"`
	SKUName         string `json:"sku_name"`
	KMSID           string `json:"kms_id"`
	KMSName         string `json:"kms_name"`
	NPolicy         uint32 `json:"n_policy"`
}

// clientOptions reads the vlmcs options of a recording: the -l argument,
// whether a request field is overridden and whether the version is forced.
func clientOptions(args []string) (product string, overridden, forcedVersion bool) {
	if len(args) > 1 {
		args = args[1 : len(args)-1] // drop argv[0] and the server address
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			continue
		}
		switch a[1] {
		case 'l':
			if len(a) > 2 {
				product = a[2:]
			} else if i+1 < len(args) {
				product = args[i+1]
				i++
			}
		case 'a', 's', 'k', 'r', 'K':
			overridden = true
		case '4', '5', '6':
			forcedVersion = true
		}
	}
	return product, overridden, forcedVersion
}

func loadVectors(t *testing.T) map[string]vector {
	dir := vectorsDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings in %s: %v", dir, err)
	}
	out := map[string]vector{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(f)] = v
	}
	return out
}

// TestVectorsProductNumbers checks every recorded `vlmcs -l N` request made
// without field overrides against product N of the table.
func TestVectorsProductNumbers(t *testing.T) {
	tab := products.Builtin()
	checked := map[int]bool{}
	for name, v := range loadVectors(t) {
		arg, overridden, forced := clientOptions(v.ClientArgs)
		if arg == "" || overridden || v.ClientBuild != "current" || strings.Trim(arg, "0123456789") != "" {
			continue // the older vlmcs numbers its products differently (§6.1)
		}
		if len(v.Exchanges) == 0 || v.Exchanges[0].Request == nil {
			continue
		}
		i, ok := tab.Lookup(arg)
		if !ok {
			t.Errorf("%s: -l %s not found", name, arg)
			continue
		}
		checked[i+1] = true
		for _, d := range compareRequest(tab, i, v.Exchanges[0].Request, !forced) {
			t.Errorf("%s: -l %s: %s", name, arg, d)
		}
	}
	if len(checked) == 0 {
		t.Fatal("no recording selects a product by number")
	}
	nums := make([]int, 0, len(checked))
	for n := range checked {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	t.Logf("%d distinct products checked: %v", len(nums), nums)
}

func compareRequest(tab *products.Table, i int, r *vectorRequest, checkVersion bool) []string {
	p := tab.Products[i]
	k := tab.KMSItems[p.KMS]
	a := tab.Apps[k.App]
	var diffs []string
	cmp := func(field, got, want string) {
		if got != want {
			diffs = append(diffs, fmt.Sprintf("%s: recorded %q, table %q", field, got, want))
		}
	}
	cmp("application_id", r.ApplicationID, a.ID.String())
	cmp("application_name", r.ApplicationName, a.Name)
	cmp("sku_id", r.SKUID, p.SKU.String())
	cmp("sku_name", r.SKUName, p.Name)
	cmp("kms_id", r.KMSID, k.ID.String())
	cmp("kms_name", r.KMSName, k.Name)
	cmp("n_policy", fmt.Sprint(r.NPolicy), fmt.Sprint(k.NPolicy))
	if checkVersion {
		cmp("protocol_version", r.ProtocolVersion, fmt.Sprintf("%d.0", k.Protocol))
	}
	return diffs
}

// TestVectorsNames checks, in every recording made by the current vlmcs,
// that the names it printed for the request's IDs are those of the table
// ("Unknown" for IDs the table lacks).
func TestVectorsNames(t *testing.T) {
	tab := products.Builtin()
	n := 0
	for name, v := range loadVectors(t) {
		if v.ClientBuild != "current" || len(v.Exchanges) == 0 || v.Exchanges[0].Request == nil {
			continue // the older vlmcs has other names (§5.1)
		}
		r := v.Exchanges[0].Request
		for _, c := range []struct {
			field, id, name string
			lookup          func(wire.GUID) string
		}{
			{"application", r.ApplicationID, r.ApplicationName, func(g wire.GUID) string {
				if i := tab.AppByID(g); i >= 0 {
					return tab.Apps[i].Name
				}
				return "Unknown"
			}},
			{"sku", r.SKUID, r.SKUName, func(g wire.GUID) string {
				if i := tab.ProductBySKU(g); i >= 0 {
					return tab.Products[i].Name
				}
				return "Unknown"
			}},
			{"kms", r.KMSID, r.KMSName, func(g wire.GUID) string {
				if i := tab.KMSByID(g); i >= 0 {
					return tab.KMSItems[i].Name
				}
				return "Unknown"
			}},
		} {
			g, err := wire.ParseGUID(c.id)
			if err != nil {
				continue
			}
			n++
			if want := c.lookup(g); c.name != want {
				t.Errorf("%s: %s %s: recorded name %q, table %q", name, c.field, c.id, c.name, want)
			}
		}
	}
	if n == 0 {
		t.Fatal("no recorded request to check")
	}
}
