package vectors

import (
	"encoding/binary"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLoad checks the README's framing promises (point 1) and that every
// file pairs its request PDUs with its exchanges.
func TestLoad(t *testing.T) {
	files := Load(t)
	pdus, calls := 0, 0
	for i := range files {
		f := &files[i]
		if f.Name != f.Scenario {
			t.Errorf("%s: scenario %q", f.Name, f.Scenario)
		}
		for ci, c := range f.Connections {
			for pi, p := range c.PDUs {
				pdus++
				d := p.Data
				if len(d) < 16 || int(binary.LittleEndian.Uint16(d[8:])) != len(d) {
					t.Errorf("%s: connection %d PDU %d: frag_length does not match %d bytes", f.Name, ci, pi, len(d))
					continue
				}
				if d[0] != 5 || d[1] != 0 || binary.LittleEndian.Uint16(d[10:]) != 0 || d[4] != 0x10 || d[3]&3 != 3 {
					t.Errorf("%s: connection %d PDU %d: unexpected header % x", f.Name, ci, pi, d[:16])
				}
			}
		}
		cs, err := f.Calls()
		if err != nil {
			t.Error(err)
			continue
		}
		for _, c := range cs {
			calls++
			if c.Response == nil {
				t.Errorf("%s: request without response", f.Name)
			}
		}
	}
	t.Logf("%d files, %d PDUs, %d calls", len(files), pdus, calls)
	if len(files) == 0 || calls == 0 {
		t.Fatal("no recordings")
	}
}

func TestServerOption(t *testing.T) {
	f := File{ServerArgs: []string{"vlmcsd", "-D", "-K", "1", "-c1", "-R", "3d", "-K3"}}
	for _, c := range []struct {
		letter byte
		want   string
		found  bool
	}{{'K', "3", true}, {'c', "1", true}, {'R', "3d", true}, {'A', "", false}} {
		got, found := f.ServerOption(c.letter)
		if got != c.want || found != c.found {
			t.Errorf("-%c: got %q %v, want %q %v", c.letter, got, found, c.want, c.found)
		}
	}
}

func TestDirEnv(t *testing.T) {
	d := t.TempDir()
	t.Setenv(EnvVar, d)
	if got := Dir(); got != d {
		t.Errorf("Dir() = %q with %s=%q", got, EnvVar, d)
	}
	t.Setenv(EnvVar, filepath.Join(d, "missing"))
	if got := Dir(); got != "" {
		t.Errorf("Dir() = %q for a missing directory", got)
	}
}

// TestNoProgramImports makes sure only tests import this package.
func TestNoProgramImports(t *testing.T) {
	root := moduleRoot(t)
	self := strconv.Quote("kmsd/internal/vectors")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if filepath.Dir(path) == filepath.Join(root, "internal", "vectors") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			if imp.Path.Value == self {
				t.Errorf("%s imports %s; only _test.go files may", path, self)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func moduleRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("no go.mod above", wd)
		}
	}
}
