package logfmt

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// reference is the standard handler configured as kmsd configured it
// before this package: UTC times to the second, or none. (It then also
// panicked on a top-level attribute named "time" that held no time; the
// kind check avoids that.)
func reference(w io.Writer, o Options) slog.Handler {
	so := &slog.HandlerOptions{Level: o.Level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 && a.Value.Kind() == slog.KindTime {
			if !o.Timestamps {
				return slog.Attr{}
			}
			return slog.String(slog.TimeKey, a.Value.Time().UTC().Format(time.RFC3339))
		}
		return a
	}}
	if o.JSON {
		return slog.NewJSONHandler(w, so)
	}
	return slog.NewTextHandler(w, so)
}

// pieces of strings chosen to hit every quoting and escaping rule.
var pieces = []string{"a", "Z", "9", "-", ".", ":", "/", "\\", "\"", "=", " ", "\t", "\n", "\r",
	"\x00", "\x01", "\x1f", "\x7f", "<", ">", "&", "é", "\u00a0", "\u2028", "\u2029", "\u200b",
	"\u3000", "日本", "\U0001F600", "\xff", "\xc3", "\xed\xa0\x80", "(hidden)", "127.0.0.1:50000", "[::1]:1688"}

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(6) {
		b.WriteString(pieces[r.IntN(len(pieces))])
	}
	return b.String()
}

type stringer struct{ s string }

func (s stringer) String() string { return s.s }

func randAttr(r *rand.Rand) slog.Attr {
	key := randString(r)
	if r.IntN(4) > 0 {
		key = []string{"peer", "product", "cmid", "time", "level", "msg", "n"}[r.IntN(7)]
	}
	switch r.IntN(12) {
	case 0:
		return slog.Int64(key, r.Int64()-r.Int64())
	case 1:
		return slog.Uint64(key, r.Uint64())
	case 2:
		return slog.Bool(key, r.IntN(2) == 0)
	case 3:
		return slog.Duration(key, time.Duration(r.Int64N(1e12)-1e11))
	case 4:
		return slog.Float64(key, r.NormFloat64()*1e6)
	case 5:
		return slog.Any(key, errors.New(randString(r)))
	case 6:
		return slog.Group(key, slog.String(randString(r), randString(r)), slog.Int("x", 1))
	case 7:
		return slog.Time(key, time.Unix(r.Int64N(4e9), r.Int64N(1e9)))
	case 8:
		return slog.Any(key, stringer{randString(r)})
	default:
		return slog.String(key, randString(r))
	}
}

// TestMatchesStandardHandlers compares every line with what slog's own
// handlers write for the same record, in both formats, with and without
// times, through WithAttrs and WithGroup.
func TestMatchesStandardHandlers(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	levels := []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError, slog.LevelInfo + 2, slog.LevelDebug - 3}
	native := 0
	for i := range 20000 {
		o := Options{Level: slog.LevelDebug - 4, JSON: i%2 == 0, Timestamps: i%3 != 0}
		var got, want bytes.Buffer
		var h slog.Handler = New(&got, o)
		var ref = reference(&want, o)
		switch r.IntN(6) {
		case 0:
			attrs := []slog.Attr{randAttr(r), randAttr(r)}
			h, ref = h.WithAttrs(attrs), ref.WithAttrs(attrs)
		case 1:
			g := randString(r)
			h, ref = h.WithGroup(g), ref.WithGroup(g)
		case 2:
			a := []slog.Attr{slog.String("listener", randString(r))}
			h, ref = h.WithAttrs(a), ref.WithAttrs(a)
		}
		tm := time.Unix(r.Int64N(4e9), r.Int64N(1e9))
		if r.IntN(10) == 0 {
			tm = time.Time{}
		}
		rec := slog.NewRecord(tm, levels[r.IntN(len(levels))], randString(r), 0)
		for range r.IntN(8) {
			if r.IntN(3) == 0 {
				rec.AddAttrs(randAttr(r))
			} else {
				rec.AddAttrs(slog.String([]string{"peer", "product", "result"}[r.IntN(3)], randString(r)))
			}
		}
		if hh, ok := h.(*Handler); ok && hh.native {
			native++
		}
		if err := h.Handle(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := ref.Handle(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if got.String() != want.String() {
			t.Fatalf("record %d (%+v):\ngot  %q\nwant %q", i, o, got.String(), want.String())
		}
	}
	if native < 10000 {
		t.Fatalf("only %d of 20000 records took the direct path", native)
	}
}

// TestLines pins the two formats of an activation line.
func TestLines(t *testing.T) {
	tm := time.Date(2026, 11, 23, 9, 1, 2, 345e6, time.FixedZone("x", 3600))
	rec := slog.NewRecord(tm, slog.LevelInfo, "activation", 0)
	rec.AddAttrs(slog.String("peer", "127.0.0.1:50000"), slog.String("product", "Windows 10/11 Professional"),
		slog.String("workstation", "PC-1"), slog.Int("count", 25), slog.Duration("took", 1500*time.Microsecond))
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Timestamps: true}, `time=2026-11-23T08:01:02Z level=INFO msg=activation peer=127.0.0.1:50000 product="Windows 10/11 Professional" workstation=PC-1 count=25 took=1.5ms` + "\n"},
		{Options{}, `level=INFO msg=activation peer=127.0.0.1:50000 product="Windows 10/11 Professional" workstation=PC-1 count=25 took=1.5ms` + "\n"},
		{Options{JSON: true, Timestamps: true}, `{"time":"2026-11-23T08:01:02Z","level":"INFO","msg":"activation","peer":"127.0.0.1:50000","product":"Windows 10/11 Professional","workstation":"PC-1","count":25,"took":1500000}` + "\n"},
	} {
		var b bytes.Buffer
		if err := New(&b, tc.o).Handle(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("%+v:\ngot  %s\nwant %s", tc.o, b.String(), tc.want)
		}
	}
}

func TestEnabled(t *testing.T) {
	var lv slog.LevelVar
	h := New(&bytes.Buffer{}, Options{Level: &lv})
	if h.Enabled(context.Background(), slog.LevelDebug) || !h.Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("info level")
	}
	lv.Set(slog.LevelDebug)
	if !h.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("level change not seen")
	}
	if !New(&bytes.Buffer{}, Options{}).Enabled(context.Background(), slog.LevelInfo) {
		t.Fatal("default level")
	}
}

func BenchmarkActivationLine(b *testing.B) {
	tm := time.Now()
	o := Options{Timestamps: true, Level: slog.LevelInfo}
	for _, tc := range []struct {
		name string
		h    slog.Handler
	}{{"logfmt", New(discard{}, o)}, {"slog", reference(discard{}, o)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rec := slog.NewRecord(tm, slog.LevelInfo, "activation", 0)
				rec.AddAttrs(slog.String("peer", "127.0.0.1:50000"), slog.String("product", "Windows 10/11 Professional"),
					slog.String("protocol", "6.0"), slog.String("cmid", "9f8c2a1e-6f0b-4bb5-a2b7-3a9d7c1e5f20"),
					slog.String("workstation", "PC-1.example.org"), slog.String("result", "activated"))
				tc.h.Handle(context.Background(), rec)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// FuzzMatchesSlog: client-supplied text (workstation names, product
// names, addresses) reaches log lines; whatever it holds, a line must be
// the one slog writes, one line, newlines and quotes escaped.
func FuzzMatchesSlog(f *testing.F) {
	for _, s := range []string{"", "PC-1", "a b", "x=y", "\"", "\\", "\n", "line\nlevel=ERROR msg=forged",
		"\x7f", "\u2028", "\xff\xfe", "日本語", "\u00a0", "\x00"} {
		f.Add(s, s+"2", int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, a, b string, n int64) {
		for _, o := range []Options{{}, {JSON: true}, {Timestamps: true}} {
			var got, want bytes.Buffer
			rec := slog.NewRecord(time.Unix(n, 0), slog.LevelInfo, a, 0)
			rec.AddAttrs(slog.String("workstation", b), slog.String(b, a), slog.Int64("n", n))
			New(&got, o).Handle(context.Background(), rec)
			reference(&want, o).Handle(context.Background(), rec)
			if got.String() != want.String() {
				t.Fatalf("%+v:\ngot  %q\nwant %q", o, got.String(), want.String())
			}
			if bytes.Count(got.Bytes(), []byte("\n")) != 1 {
				t.Fatalf("%+v: %q is not one line", o, got.String())
			}
		}
	})
}
